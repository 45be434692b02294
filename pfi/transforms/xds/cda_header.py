"""Reading the CDA R2 header fields that XDS metadata is derived from.

Kept apart from the mapping so that the XPath knowledge of the CI-SIS header (where the INS
sits, which performer carries the practice setting...) lives in one place.
"""

from __future__ import annotations

import threading

from lxml import etree

from pfi.transforms.xds import ns
from pfi.transforms.xds.errors import XdsMetadataError

V3 = {"h": ns.HL7V3}

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=False
)


def parse_cda(cda: bytes) -> etree._Element:
    """The ClinicalDocument root, or an error saying why these bytes are not a CDA."""
    try:
        root = etree.fromstring(cda, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XdsMetadataError("document", f"the CDA is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{ns.HL7V3}}}ClinicalDocument":
        raise XdsMetadataError(
            "document", f"not a CDA R2 document: root element is {root.tag!r}, not ClinicalDocument"
        )
    return root


_compiled = threading.local()


def _xpath(path: str) -> etree.XPath:
    """`path` compiled once per thread (a few dozen paths, read for every DMP submission:
    `root.xpath(path)` compiled each of them again on every call). Per thread because
    lxml does not promise that one XPath object may be evaluated by two threads at once."""
    cache: dict[str, etree.XPath] | None = getattr(_compiled, "cache", None)
    if cache is None:
        cache = _compiled.cache = {}
    found = cache.get(path)
    if found is None:
        if len(cache) > 1024:  # bounded: the paths are literals of this package
            cache.clear()
        found = cache[path] = etree.XPath(path, namespaces=V3)
    return found


def first(root: etree._Element, path: str) -> etree._Element | None:
    found = _xpath(path)(root)
    assert isinstance(found, list)
    return found[0] if found else None  # type: ignore[return-value]


def all_of(root: etree._Element, path: str) -> list[etree._Element]:
    found = _xpath(path)(root)
    assert isinstance(found, list)
    return found  # type: ignore[return-value]


def attr(root: etree._Element, path: str, name: str) -> str:
    el = first(root, path)
    return (el.get(name) or "").strip() if el is not None else ""


def text(el: etree._Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def required_attr(root: etree._Element, path: str, name: str, attribute: str) -> str:
    value = attr(root, path, name)
    if not value:
        raise XdsMetadataError(attribute, f"missing {path}/@{name} in the CDA")
    return value


def _preferred(name: etree._Element, path: str) -> etree._Element | None:
    birth = first(name, f"{path}[@qualifier='BR']")
    return birth if birth is not None else first(name, path)


def person_name(el: etree._Element | None) -> tuple[str, str, str]:
    """(family, given, prefix) of an HL7 v3 person, preferring the birth name (qualifier BR)."""
    if el is None:
        return "", "", ""
    name = first(el, "h:name")
    if name is None:
        return "", "", ""
    family = _preferred(name, "h:family")
    given = _preferred(name, "h:given")
    prefix = first(name, "h:prefix")
    return text(family), text(given), text(prefix)
