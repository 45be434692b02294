"""Which code systems the kit can check codes against, and the codes it cannot check.

The kit's terminology schematron (terminologie.sch, rule `is-code-exist`) looks every
`code` element and every `value` of type CD/CE up in `terminologie/<codeSystem>.rdf`,
but only `if doc-available(...)`: when the file is absent the check passes silently. The
kit copy PFI vendors has no RDF at all: LOINC (2.16.840.1.113883.6.1), SNOMED CT
(2.16.840.1.113883.6.96), UCD (1.2.250.1.213.2.62) and NCIT (2.16.840.1.113883.3.26.1.1)
are missing from the upstream snapshot itself; CCAM, CIM-10, CIM-11, ATC, EMDN, EDQM,
ADICAP, CLADIMED and Medicabase were left out for size; TA_ASIP is not in the copy. Only
UCUM (units, `2.16.840.1.113883.6.8.xml`) is there, and unit checks run for real.

PFI keeps the official behaviour (no error for a code it cannot look up: reporting every
LOINC code as invalid would block every report) but does not stay silent either: for
each code system of the kit's terminology index that has no file, it adds ONE warning
per document, with the number of codes concerned and a few examples, marked
`unverifiable` with the missing file name. Code systems outside the index are not the
terminology schematron's business (value sets check them) and are not reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from pfi.transforms.cda.findings import Finding, Severity

TERMINOLOGY_SCHEMATRON = "terminologie.sch"
_RULE_ID = "is-code-exist"
_CDA = "urn:hl7-org:v3"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_INDEX_LINE = re.compile(r"^\s*([0-9.]+)\s*==>\s*(.+?)\s*$")
_EXAMPLES = 5

MISSING_UPSTREAM = frozenset(
    {
        "2.16.840.1.113883.6.1",
        "2.16.840.1.113883.6.96",
        "1.2.250.1.213.2.62",
        "2.16.840.1.113883.3.26.1.1",
    }
)
"""Terminology files absent from the upstream kit snapshot itself (see SOURCES.md)."""

LEFT_OUT_FOR_SIZE = frozenset(
    {
        "1.2.250.1.213.2.5",  # CCAM
        "2.16.840.1.113883.6.3",  # CIM-10
        "2.16.840.1.113883.6.347",  # CIM-11
        "2.16.840.1.113883.6.73",  # ATC
        "1.2.250.1.213.2.68",  # EMDN
        "0.4.0.127.0.16.1.1.2.1",  # EDQM
        "1.2.250.1.213.2.11",  # ADICAP
        "1.2.250.1.213.2.65",  # CLADIMED
        "1.2.250.1.213.2.59",  # Medicabase
    }
)
"""Terminology files the upstream kit has but the shared copy left out (>100 kB each)."""


@dataclass(frozen=True, slots=True)
class TerminologyCoverage:
    """The kit's terminology index and which of its files PFI actually has."""

    names: dict[str, str]
    """code system OID -> name, from Terminologies.txt."""
    available: frozenset[str]
    """OIDs whose `<oid>.rdf` is vendored (codes of those systems are really checked)."""

    @classmethod
    def from_index(cls, index_text: str, rdf_files: Iterable[str]) -> TerminologyCoverage:
        names = {}
        for line in index_text.splitlines():
            match = _INDEX_LINE.match(line)
            if match:
                names[match.group(1)] = match.group(2)
        available = frozenset(
            name.removesuffix(".rdf") for name in rdf_files if name.endswith(".rdf")
        )
        return cls(names, available)

    def reason(self, oid: str) -> str:
        if oid in MISSING_UPSTREAM:
            return f"{oid}.rdf is missing from the upstream kit snapshot"
        if oid in LEFT_OUT_FOR_SIZE:
            return f"{oid}.rdf was left out of the kit copy for size"
        return f"{oid}.rdf is not in the kit copy"

    def unverifiable_codes(self, document: etree._ElementTree) -> list[Finding]:
        """One warning per code system of the index whose codes this document uses unchecked."""
        seen: dict[str, list[tuple[str, etree._Element]]] = {}
        for element in _coded_elements(document):
            system = element.get("codeSystem")
            if system in self.names and system not in self.available:
                seen.setdefault(system, []).append((element.get("code") or "", element))
        findings = []
        for system, uses in seen.items():
            examples = ", ".join(list(dict.fromkeys(code for code, _ in uses if code))[:_EXAMPLES])
            findings.append(
                Finding(
                    severity=Severity.WARNING,
                    source=TERMINOLOGY_SCHEMATRON,
                    rule_id=_RULE_ID,
                    location=element_location(uses[0][1]),
                    unverifiable=f"{system}.rdf",
                    message=(
                        f"not verifiable: {len(uses)} code(s) of {self.names[system]}"
                        f" ({system}) were not looked up because {self.reason(system)}"
                        f" (e.g. {examples or 'no @code'})"
                    ),
                )
            )
        return findings


def _coded_elements(document: etree._ElementTree) -> Iterable[etree._Element]:
    """The contexts of `is-code-exist`: //hl7:code and //hl7:value[@xsi:type='CD' or 'CE']."""
    root = document.getroot()
    for element in root.iter(f"{{{_CDA}}}code", f"{{{_CDA}}}value"):
        if element.tag == f"{{{_CDA}}}code" or element.get(_XSI_TYPE) in ("CD", "CE"):
            yield element


def element_location(element: etree._Element) -> str:
    """XPath of an element in the same style as the SVRL locations (`/cda:X[1]/...`)."""
    steps = []
    node: etree._Element | None = element
    while node is not None:
        qname = etree.QName(node)
        prefix = (
            "cda:"
            if qname.namespace == _CDA
            else (f"Q{{{qname.namespace}}}" if qname.namespace else "")
        )
        parent = node.getparent()
        position = 1
        if parent is not None:
            position = 1 + sum(
                1 for sibling in node.itersiblings(preceding=True) if sibling.tag == node.tag
            )
        steps.append(f"{prefix}{qname.localname}[{position}]")
        node = parent
    return "/" + "/".join(reversed(steps))
