"""ISO Schematron (queryBinding xslt2) compiled to XSLT by SchXslt, run by Saxon-HE.

Why this stack:
- The CI-SIS schematrons are XSLT 2 schematrons (XPath 2 functions, `document()`,
  abstract patterns and rules, phases). Only an XSLT 2/3 processor runs them as written;
  saxonche (SaxonC-HE, PyPI) is the maintained one for Python. lxml's `isoschematron`
  ships the XSLT 1 skeleton only, which refuses queryBinding="xslt2", and pyschematron
  needs Python 3.12 (PFI runs 3.11; the 0.1.0 release that installs here is an empty stub).
- The Schematron -> XSLT compiler is SchXslt 1.10.1 (David Maus, MIT), the maintained
  successor of the ISO skeleton, as shipped unmodified in the PyPI package camat 0.2.8
  (`camat/schemas/schxslt/`). Those XSLT files are vendored under
  `pfi/resources/schxslt/` (provenance and checksums in SOURCES.md there) rather than
  depending on camat, which would pull a music-notation stack (music21, bokeh, jupyter)
  into a hospital engine.

What PFI adds to the compiled XSLT (`rewrite_document_calls`):
- `document()`, `doc()` and `doc-available()` calls are redirected to functions that look
  the file up in a map of documents PFI loaded once at construction (a stylesheet
  parameter). So a validation reads no file, and relative paths are resolved against the
  schematron's place in the kit exactly as the official engine does.
- A check whose test reads a kit file that the kit does not ship cannot be decided. Its
  failed asserts / reports are tagged `pfi-unverifiable="<path>"` and become "not
  verifiable" warnings instead of errors (see docs/cda-validation.md).

Compiling the biggest schematron (structuration minimale, 13 MB of XSLT once its abstract
rules are expanded) costs seconds; the generated XSLT is cached on disk, keyed by a hash
of every input, and Saxon compiles it once per process. Nothing is compiled per document.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lxml import etree
from saxonche import PySaxonProcessor, PyXsltExecutable

from pfi.transforms.cda.findings import Finding, Severity
from pfi.transforms.cda.kit import KIT_DIR, SCHXSLT_DIR, path_in_kit, virtual_uri

SCHXSLT_VERSION = "1.10.1"
REWRITE_VERSION = "1"
"""Bump when `rewrite_document_calls` changes: it is part of the cache key."""

PFI_NS = "urn:pfi:cda-validation"
DOCUMENTS_PARAM = f"{{{PFI_NS}}}documents"
UNVERIFIABLE_ATTR = "pfi-unverifiable"

_XSL_NS = "http://www.w3.org/1999/XSL/Transform"
_SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_SVRL = f"{{{_SVRL_NS}}}"
_XPATH_ATTRIBUTES = ("select", "test", "match", "use", "group-by", "group-adjacent")
_DOC_CALL = re.compile(r"(?<![\w.:$-])(?:fn:)?(document|doc|doc-available)\s*\(")
_STATIC_ARGUMENT = re.compile(
    r"(?<![\w.:$-])(?:fn:)?(?:document|doc)\s*\(\s*('[^']*'|\"[^\"]*\"|\$[\w.-]+)\s*\)"
)
_LITERAL = re.compile(r"^\s*('([^']*)'|\"([^\"]*)\")\s*$")
_WARNING_ROLES = frozenset({"warning", "warn", "info", "information", "note", "hint"})
_QNAME_STEP = re.compile(r"Q\{([^}]*)\}")
_PREFIXES = {"urn:hl7-org:v3": "cda:", "": ""}

# Functions the rewritten calls land on. Each element declares the namespaces its own
# expressions use, because the generated stylesheet does not declare `map` or `pfi`.
_HELPERS = f"""
<xsl:stylesheet xmlns:xsl="{_XSL_NS}" version="3.0">
 <xsl:param xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:pfi="{PFI_NS}"
   name="pfi:documents" as="map(xs:string, document-node())" required="yes"/>
 <xsl:function xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:pfi="{PFI_NS}"
   name="pfi:resolve" as="xs:string">
  <xsl:param name="uri" as="item()"/>
  <xsl:sequence select="string(resolve-uri(string($uri), $pfi:base))"/>
 </xsl:function>
 <xsl:function xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:pfi="{PFI_NS}"
   name="pfi:document" as="document-node()*">
  <xsl:param name="uris" as="item()*"/>
  <xsl:sequence select="for $u in $uris return $pfi:documents(pfi:resolve($u))"/>
 </xsl:function>
 <xsl:function xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:pfi="{PFI_NS}"
   name="pfi:doc" as="document-node()?">
  <xsl:param name="uri" as="xs:string?"/>
  <xsl:sequence select="if (empty($uri)) then () else $pfi:documents(pfi:resolve($uri))"/>
 </xsl:function>
 <xsl:function xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:pfi="{PFI_NS}"
   xmlns:map="http://www.w3.org/2005/xpath-functions/map"
   name="pfi:doc-available" as="xs:boolean">
  <xsl:param name="uri" as="xs:string?"/>
  <xsl:sequence select="exists($uri) and map:contains($pfi:documents, pfi:resolve($uri))"/>
 </xsl:function>
</xsl:stylesheet>
"""


class SchematronCompileError(RuntimeError):
    """A schematron of the kit could not be turned into a validation stylesheet."""


@dataclass(frozen=True, slots=True)
class RewrittenStylesheet:
    """The validation XSLT after PFI's rewrite, and what the rewrite found."""

    xslt: str
    redirected_calls: int
    unverifiable: Mapping[str, int]
    """Kit files (path in kit) that checks read but the kit lacks -> number of checks."""
    dynamic_calls: int
    """Calls whose file name is only known at run time (the terminology look-ups)."""


def rewrite_document_calls(
    xslt: str, schematron_in_kit: str, available: frozenset[str]
) -> RewrittenStylesheet:
    """Redirect document()/doc()/doc-available() to the preloaded map; tag unverifiable checks.

    `schematron_in_kit` is the main schematron's path in the kit: relative file names
    resolve against it. `available` holds the virtual URIs of the files PFI preloads.
    """
    root = etree.fromstring(xslt.encode("utf-8"))
    base = virtual_uri(schematron_in_kit)
    literals = _global_string_variables(root)
    redirected = dynamic = 0
    unverifiable: dict[str, int] = {}
    for element in root.iter(f"{{{_XSL_NS}}}*"):
        for attribute in _XPATH_ATTRIBUTES:
            expression = element.get(attribute)
            if not expression or not _DOC_CALL.search(expression):
                continue
            if "schxslt.validate.initial-document-uri" in expression:
                continue  # SchXslt's own "validate another document" entry point, unused.
            missing, unresolved = _missing_files(expression, base, literals, available)
            dynamic += unresolved
            element.set(attribute, _DOC_CALL.sub(rf"Q{{{PFI_NS}}}\1(", expression))
            redirected += len(_DOC_CALL.findall(expression))
            if missing:
                tagged = _tag_checks(element, attribute, missing)
                for path in missing:
                    unverifiable[path] = unverifiable.get(path, 0) + tagged
    root.append(_base_variable(base))
    for helper in etree.fromstring(_HELPERS.encode("utf-8")):
        root.append(etree.fromstring(etree.tostring(helper)))
    return RewrittenStylesheet(
        xslt=etree.tostring(root, encoding="unicode"),
        redirected_calls=redirected,
        unverifiable=unverifiable,
        dynamic_calls=dynamic,
    )


def _global_string_variables(root: etree._Element) -> dict[str, str]:
    """Top-level variables bound to a string literal (the schematrons' value-set paths)."""
    found: dict[str, str] = {}
    for variable in root.findall(f"{{{_XSL_NS}}}variable"):
        match = _LITERAL.match(variable.get("select") or "")
        if match:
            found[variable.get("name", "")] = match.group(2) or match.group(3) or ""
    return found


def _missing_files(
    expression: str, base: str, literals: Mapping[str, str], available: frozenset[str]
) -> tuple[list[str], int]:
    """Files named (statically) in `expression` that are not preloaded; count of dynamic calls."""
    missing: list[str] = []
    static = _STATIC_ARGUMENT.findall(expression)
    for argument in static:
        name = literals.get(argument[1:]) if argument.startswith("$") else argument[1:-1]
        if name is None:
            continue
        uri = _resolve(name, base)
        if uri not in available and path_in_kit(uri) not in missing:
            missing.append(path_in_kit(uri))
    calls = len(re.findall(r"(?<![\w.:$-])(?:fn:)?(?:document|doc)\s*\(", expression))
    return missing, calls - len(static)


def _resolve(name: str, base: str) -> str:
    """RFC 3986 resolution of a relative path against a `ci-sis:/...` base."""
    if ":" in name.split("/")[0]:
        return name
    parts: list[str] = []
    for part in (PurePosixPath(base[len("ci-sis:") :]).parent / name).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", "/"):
            parts.append(part)
    return "ci-sis:/" + "/".join(parts)


def _tag_checks(element: etree._Element, attribute: str, missing: list[str]) -> int:
    """Mark the SVRL outputs of the checks that depend on `missing` files; return their count."""
    if attribute == "test":
        scope = [element]
    elif element.tag == f"{{{_XSL_NS}}}variable" and element.getparent() is not None:
        # A rule-level `let`: the checks of the same rule that use the variable.
        name = element.get("name", "")
        scope = [
            sibling
            for sibling in element.itersiblings()
            if re.search(rf"\${re.escape(name)}(?![\w.-])", sibling.get("test") or "")
        ]
    else:
        return 0
    tagged = 0
    for node in scope:
        for output in node.iter(f"{_SVRL}failed-assert", f"{_SVRL}successful-report"):
            output.set(UNVERIFIABLE_ATTR, " ".join(missing))
            tagged += 1
    return tagged


def _base_variable(base: str) -> etree._Element:
    return etree.fromstring(
        f'<xsl:variable xmlns:xsl="{_XSL_NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema"'
        f' xmlns:pfi="{PFI_NS}" name="pfi:base" as="xs:string" select="\'{base}\'"/>'
    )


@dataclass(frozen=True, slots=True)
class CompileStats:
    """How one schematron got ready: from the disk cache or generated, and the time spent."""

    schematron: str
    from_cache: bool
    generate_seconds: float
    compile_seconds: float
    unverifiable: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class CompiledSchematron:
    """A schematron ready to run: its Saxon executable and what PFI knows about it."""

    path_in_kit: str
    executable: PyXsltExecutable
    stats: CompileStats

    @property
    def name(self) -> str:
        return PurePosixPath(self.path_in_kit).name


class SchematronCompiler:
    """Turns kit schematrons into Saxon executables, through the on-disk XSLT cache.

    One compiler per Saxon processor. `cache_dir=None` keeps everything in memory (each
    process then generates the XSLT again).
    """

    def __init__(
        self,
        processor: PySaxonProcessor,
        available_uris: frozenset[str],
        cache_dir: Path | None,
        kit_dir: Path = KIT_DIR,
        schxslt_dir: Path = SCHXSLT_DIR,
    ) -> None:
        self._processor = processor
        self._xslt = processor.new_xslt30_processor()
        self._available = available_uris
        self._kit_dir = kit_dir
        self._schxslt_dir = schxslt_dir
        self._pipeline: PyXsltExecutable | None = None
        self.cache_key = self._sources_key()
        self.cache_dir = cache_dir / self.cache_key if cache_dir is not None else None

    @property
    def pipeline_loaded(self) -> bool:
        """Whether SchXslt had to run (False when every schematron came from the cache)."""
        return self._pipeline is not None

    def compile(self, schematron_in_kit: str) -> CompiledSchematron:
        started = time.perf_counter()
        cached = self._cache_file(schematron_in_kit)
        rewritten: RewrittenStylesheet | None = None
        if cached is not None and cached.is_file():
            xslt = cached.read_text(encoding="utf-8")
            unverifiable = _read_unverifiable(xslt)
            from_cache = True
        else:
            rewritten = self._generate(schematron_in_kit)
            xslt = rewritten.xslt
            unverifiable = dict(rewritten.unverifiable)
            from_cache = False
            if cached is not None:
                _write_atomically(cached, xslt)
        generated = time.perf_counter()
        try:
            executable = self._xslt.compile_stylesheet(stylesheet_text=xslt, encoding="utf-8")
        except Exception as error:  # saxonche raises PySaxonApiError, a bare Exception
            raise SchematronCompileError(
                f"{schematron_in_kit}: Saxon rejected the generated XSLT: {error}"
            ) from error
        stats = CompileStats(
            schematron=schematron_in_kit,
            from_cache=from_cache,
            generate_seconds=generated - started,
            compile_seconds=time.perf_counter() - generated,
            unverifiable=unverifiable,
        )
        return CompiledSchematron(schematron_in_kit, executable, stats)

    def _generate(self, schematron_in_kit: str) -> RewrittenStylesheet:
        source = self._kit_dir / schematron_in_kit
        if not source.is_file():
            raise SchematronCompileError(f"{schematron_in_kit}: not in the vendored kit")
        pipeline = self._load_pipeline()
        try:
            xslt = pipeline.transform_to_string(source_file=str(source))
        except Exception as error:
            raise SchematronCompileError(
                f"{schematron_in_kit}: SchXslt could not compile it: {error}"
            ) from error
        if not xslt:
            raise SchematronCompileError(f"{schematron_in_kit}: SchXslt produced nothing")
        rewritten = rewrite_document_calls(xslt, schematron_in_kit, self._available)
        summary = " ".join(f"{path}={count}" for path, count in rewritten.unverifiable.items())
        marker = f"<!-- {UNVERIFIABLE_ATTR}: {summary} -->\n" if summary else ""
        return RewrittenStylesheet(
            xslt=marker + rewritten.xslt,
            redirected_calls=rewritten.redirected_calls,
            unverifiable=rewritten.unverifiable,
            dynamic_calls=rewritten.dynamic_calls,
        )

    def _load_pipeline(self) -> PyXsltExecutable:
        if self._pipeline is None:
            pipeline = self._xslt.compile_stylesheet(
                stylesheet_file=str(self._schxslt_dir / "pipeline-for-svrl.xsl")
            )
            # No timestamp/processor metadata in the report: it would read the clock.
            pipeline.set_parameter(
                "schxslt.compile.metadata", self._processor.make_boolean_value(False)
            )
            self._pipeline = pipeline
        return self._pipeline

    def _cache_file(self, schematron_in_kit: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (schematron_in_kit.replace("/", "__") + ".xsl")

    def _sources_key(self) -> str:
        """Hash of everything the generated XSLT depends on."""
        digest = hashlib.sha256()
        digest.update(f"schxslt {SCHXSLT_VERSION} rewrite {REWRITE_VERSION}\n".encode())
        digest.update(f"{self._processor.version}\n".encode())
        inputs = sorted(self._schxslt_dir.rglob("*.xsl")) + sorted(
            (self._kit_dir / "schematrons").rglob("*.sch")
        )
        for path in inputs:
            digest.update(path.relative_to(path.anchor).as_posix().encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        for uri in sorted(self._available):
            digest.update(uri.encode())
        return digest.hexdigest()[:24]


def _read_unverifiable(xslt: str) -> dict[str, int]:
    match = re.match(rf"<!-- {UNVERIFIABLE_ATTR}: (.*?) -->", xslt)
    if not match:
        return {}
    pairs = (item.rsplit("=", 1) for item in match.group(1).split())
    return {path: int(count) for path, count in pairs}


def _write_atomically(target: Path, text: str) -> None:
    """Concurrent engines may fill the same cache: write aside, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def findings_from_svrl(svrl: str, source: str) -> list[Finding]:
    """Failed asserts and successful reports of an SVRL report, in document order."""
    root = etree.fromstring(svrl.encode("utf-8"))
    findings: list[Finding] = []
    pattern: str | None = None
    rule: str | None = None
    for element in root:
        tag = element.tag
        if tag == f"{_SVRL}active-pattern":
            pattern, rule = element.get("id"), None
        elif tag == f"{_SVRL}fired-rule":
            rule = element.get("id")
        elif tag in (f"{_SVRL}failed-assert", f"{_SVRL}successful-report"):
            findings.append(_finding(element, source, element.get("id") or rule or pattern))
    return findings


def _finding(element: Any, source: str, rule_id: str | None) -> Finding:
    text = " ".join("".join(element.itertext()).split())
    role = (element.get("role") or element.get("flag") or "").strip().lower()
    unverifiable = element.get(UNVERIFIABLE_ATTR)
    if unverifiable:
        return Finding(
            severity=Severity.WARNING,
            source=source,
            message=f"not verifiable: the kit lacks {unverifiable}; the rule says: {text}",
            rule_id=rule_id,
            location=readable_location(element.get("location")),
            unverifiable=unverifiable,
        )
    severity = Severity.WARNING if role in _WARNING_ROLES else Severity.ERROR
    return Finding(
        severity=severity,
        source=source,
        message=text,
        rule_id=rule_id,
        location=readable_location(element.get("location")),
    )


def readable_location(location: str | None) -> str | None:
    """`/Q{urn:hl7-org:v3}ClinicalDocument[1]` -> `/cda:ClinicalDocument[1]`."""
    if not location:
        return None
    return _QNAME_STEP.sub(lambda m: _PREFIXES.get(m.group(1), m.group(0)), location)


def preload_documents(
    processor: PySaxonProcessor, files: Iterable[tuple[str, bytes]]
) -> tuple[Any, frozenset[str]]:
    """Parse the kit's data files once; return the XDM map handed to every schematron."""
    nodes: dict[str, Any] = {}
    for uri, content in files:
        try:
            nodes[uri] = processor.parse_xml(xml_text=content.decode("utf-8"), encoding="utf-8")
        except Exception as error:
            raise SchematronCompileError(
                f"{path_in_kit(uri)}: not parseable XML: {error}"
            ) from error
    return processor.make_map2(nodes), frozenset(nodes)
