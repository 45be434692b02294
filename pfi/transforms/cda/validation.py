"""Check a CDA document against the official ANS kit before PFI sends it anywhere.

A document is sent only if it passes: the CDA R2 XSD (CDA_extended.xsd, the kit's
extended schema) and the CI-SIS schematrons (five profiles, then the volet's own; see
`volets.py`). `CdaValidator` loads and compiles all of that once; `validate` then does no
I/O and compiles nothing.

What cannot be checked is said, never silently passed nor turned into a false error:
- terminology look-ups whose code system file the kit lacks (LOINC, SNOMED CT...):
  one "not verifiable" warning per code system (`terminologies.py`);
- value-set checks whose value-set file the kit lacks: their failures become "not
  verifiable" warnings naming the file (`schematron.py`);
- a volet version whose schematron the kit lacks (CR-BIO 2023.01): a warning, and only
  the profiles run (`volets.py`).
docs/cda-validation.md has the full account.

Threads: one validator may be shared by threads. Saxon executables are not thread-safe,
so each thread gets its own clones (made lazily from the compiled ones, in memory); the
XSD step is serialised by a lock (it is the cheap part). Processes each build their own
validator; with a warm cache directory that costs the Saxon compile only.
"""

from __future__ import annotations

import codecs
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from saxonche import PySaxonProcessor, PyXsltExecutable

from pfi.transforms.cda.findings import Finding, Severity
from pfi.transforms.cda.kit import (
    CDA_XSD,
    KIT_DIR,
    TERMINOLOGY_DIR,
    TERMINOLOGY_INDEX,
    read_kit_data_files,
)
from pfi.transforms.cda.schematron import (
    DOCUMENTS_PARAM,
    CompiledSchematron,
    CompileStats,
    SchematronCompiler,
    findings_from_svrl,
    preload_documents,
)
from pfi.transforms.cda.terminologies import TerminologyCoverage, element_location
from pfi.transforms.cda.volets import PROFILE_SCHEMATRONS, VOLETS, VoletStatus, choose_volet

__all__ = ["CdaValidator", "Finding", "Severity", "ValidationReport"]

_CDA = "urn:hl7-org:v3"
_SUMMARY_MESSAGE_CHARS = 160


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The verdict on one document: `valid` is False as soon as one error was found."""

    findings: tuple[Finding, ...]
    schematrons: tuple[str, ...] = ()
    """Schematron files applied, in order."""
    volet: str = ""
    """Which volet rules applied, or why none did."""

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def summary(self, max_errors: int = 3) -> str:
        """One line for logs and dead-letter reasons: verdict, counts, the first errors."""
        counts = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        head = f"CDA {'valid' if self.valid else 'invalid'} ({self.volet}; {counts})"
        if self.valid:
            return head
        shown = []
        for finding in self.errors[:max_errors]:
            message = finding.message
            if len(message) > _SUMMARY_MESSAGE_CHARS:
                message = message[: _SUMMARY_MESSAGE_CHARS - 1] + "…"
            where = f" at {finding.location}" if finding.location else ""
            where = where or (f" line {finding.line}" if finding.line else "")
            shown.append(f"{finding.source}{where}: {message}")
        more = len(self.errors) - len(shown)
        tail = f" | +{more} more" if more > 0 else ""
        return head + ": " + " | ".join(shown) + tail


@dataclass(frozen=True, slots=True)
class StartupStats:
    """What building the validator cost (for logs and bench/cda_validation.py)."""

    total_seconds: float
    xsd_seconds: float
    preload_seconds: float
    schematrons: tuple[CompileStats, ...] = field(default_factory=tuple)
    schxslt_ran: bool = False

    @property
    def all_from_cache(self) -> bool:
        return all(s.from_cache for s in self.schematrons)


class CdaValidator:
    """XSD + CI-SIS schematron validation of CDA R2 documents, compiled once.

    `cache_dir` holds the XSLT generated from the schematrons, in a sub-directory named
    after a hash of every input (kit schematrons, SchXslt, Saxon version, PFI's rewrite):
    a second validator, in this process or another, skips the generation. None keeps it
    in memory only.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        started = time.perf_counter()
        self._processor = PySaxonProcessor(license=False)
        xsd_started = time.perf_counter()
        self._schema = etree.XMLSchema(etree.parse(str(CDA_XSD)))
        preload_started = time.perf_counter()
        data_files = read_kit_data_files()
        self._documents, available = preload_documents(
            self._processor, ((f.uri, f.content) for f in data_files)
        )
        terminology_dir = TERMINOLOGY_DIR.relative_to(KIT_DIR).as_posix() + "/"
        self.coverage = TerminologyCoverage.from_index(
            TERMINOLOGY_INDEX.read_text(encoding="utf-8"),
            (f.path_in_kit.removeprefix(terminology_dir) for f in data_files),
        )
        compile_started = time.perf_counter()
        compiler = SchematronCompiler(self._processor, available, cache_dir)
        volet_schematrons = tuple(v.schematron for v in VOLETS if v.schematron)
        self._schematrons: dict[str, CompiledSchematron] = {
            name: compiler.compile(name) for name in PROFILE_SCHEMATRONS + volet_schematrons
        }
        self.startup = StartupStats(
            total_seconds=time.perf_counter() - started,
            xsd_seconds=preload_started - xsd_started,
            preload_seconds=compile_started - preload_started,
            schematrons=tuple(s.stats for s in self._schematrons.values()),
            schxslt_ran=compiler.pipeline_loaded,
        )
        self.cache_dir = compiler.cache_dir
        self._xsd_lock = threading.Lock()
        self._local = threading.local()

    def validate(self, cda: bytes) -> ValidationReport:
        """Validate one document. Never raises for a bad document: the report says why."""
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
        )
        try:
            tree = etree.ElementTree(etree.fromstring(cda, parser))
        except etree.XMLSyntaxError as error:
            line = error.lineno if error.lineno else None
            finding = Finding(Severity.ERROR, "xml", f"not well-formed XML: {error.msg}", line=line)
            return ValidationReport((finding,), (), "not parsed")
        findings = self._xsd_findings(tree)
        choice = choose_volet(_template_ids(tree))
        if choice.status in (VoletStatus.UNAVAILABLE, VoletStatus.UNKNOWN):
            findings.append(Finding(Severity.WARNING, "pfi", choice.explanation, rule_id="volet"))
        names = PROFILE_SCHEMATRONS + ((choice.schematron,) if choice.schematron else ())
        findings.extend(self._schematron_findings(cda, tree, names))
        findings.extend(self.coverage.unverifiable_codes(tree))
        return ValidationReport(
            tuple(findings), tuple(n.rsplit("/", 1)[-1] for n in names), choice.explanation
        )

    def validate_xsd(self, cda: bytes) -> ValidationReport:
        """XSD only: the cheap first gate, and the baseline bench/cda_validation.py measures."""
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
        )
        try:
            tree = etree.ElementTree(etree.fromstring(cda, parser))
        except etree.XMLSyntaxError as error:
            finding = Finding(
                Severity.ERROR, "xml", f"not well-formed XML: {error.msg}", line=error.lineno
            )
            return ValidationReport((finding,), (), "not parsed")
        return ValidationReport(tuple(self._xsd_findings(tree)), (), "XSD only")

    def _xsd_findings(self, tree: etree._ElementTree) -> list[Finding]:
        with self._xsd_lock:
            if self._schema.validate(tree):
                return []
            entries = list(self._schema.error_log)
        return [
            Finding(
                Severity.ERROR,
                "xsd",
                entry.message,
                line=entry.line or None,
                location=_xsd_location(tree, entry.path),
            )
            for entry in entries
        ]

    def _schematron_findings(
        self, cda: bytes, tree: etree._ElementTree, names: tuple[str, ...]
    ) -> list[Finding]:
        encoding = _python_codec(tree.docinfo.encoding)
        text = cda.decode(encoding)
        node = self._processor.parse_xml(xml_text=text, encoding=_saxon_encoding(encoding))
        executables = self._thread_executables()
        findings: list[Finding] = []
        for name in names:
            source = name.rsplit("/", 1)[-1]
            try:
                svrl = executables[name].transform_to_string(xdm_node=node)
            except Exception as error:  # a dynamic XPath error raised by the document's data
                message = f"the schematron could not evaluate this document: {error}".strip()
                findings.append(Finding(Severity.ERROR, source, " ".join(message.split())))
                continue
            findings.extend(findings_from_svrl(svrl, source))
        return findings

    def _thread_executables(self) -> dict[str, PyXsltExecutable]:
        """This thread's clones (PyXsltExecutable is not thread-safe; clone, then set params)."""
        executables: dict[str, PyXsltExecutable] | None = getattr(self._local, "executables", None)
        if executables is None:
            executables = {}
            for name, compiled in self._schematrons.items():
                clone = compiled.executable.clone()
                clone.set_parameter(DOCUMENTS_PARAM, self._documents)
                executables[name] = clone
            self._local.executables = executables
        return executables


def _xsd_location(tree: etree._ElementTree, path: str | None) -> str | None:
    """libxml2 reports `/*/*[15]/*/*[1]`; say `/cda:ClinicalDocument[1]/cda:recordTarget[1]/...`."""
    if not path:
        return None
    try:
        nodes = tree.xpath(path)
    except etree.XPathError:
        return path
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], etree._Element):
        return element_location(nodes[0])
    return path


def _template_ids(tree: etree._ElementTree) -> list[tuple[str, str | None]]:
    root = tree.getroot()
    return [
        (element.get("root", ""), element.get("extension"))
        for element in root.iterchildren(f"{{{_CDA}}}templateId")
    ]


def _python_codec(declared: str | None) -> str:
    name = codecs.lookup(declared or "utf-8").name
    return "utf-8-sig" if name == "utf-8" else name


def _saxon_encoding(codec: str) -> str:
    return "utf-8" if codec == "utf-8-sig" else codec
