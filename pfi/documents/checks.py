"""Building and validating one document: the CPU-heavy part of the documents stage.

These functions run in the document worker processes (`workers.py`), each of which
holds one validator compiled at start-up; with `validation_processes: 0` they run in the
stage's own thread. They take and return plain picklable values and touch no database.

Why not in the stage's thread: Saxon holds the interpreter lock while it validates
(measured: a Python thread runs at ~0.2x its speed next to a validating thread), and the
worker process runs every stage and the outbox relay as threads of one interpreter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lxml import etree

from pfi.transforms.cda.context import CdaContext
from pfi.transforms.cda.cr_bio import build_cr_bio
from pfi.transforms.cda.cr_img import build_cr_img_with_pdf
from pfi.transforms.cda.findings import Finding, Severity
from pfi.transforms.cda.kit import CDA_XSD
from pfi.transforms.cda.pdf import render_lab_report_pdf
from pfi.transforms.cda.terminologies import element_location
from pfi.transforms.cda.validation import CdaValidator, ValidationReport
from pfi.transforms.imaging import ImagingReport
from pfi.transforms.lab.model import LabReport

SchematronMode = Literal["required", "off"]

_XSD_ONLY = "XSD only (documents.schematron: off)"


class DocumentBuildError(Exception):
    """Building failed in a worker; the message names the original error (picklable)."""


@dataclass(frozen=True, slots=True)
class CheckedDocument:
    """A document as it will be stored: its bytes, its PDF rendering, its verdict."""

    cda: bytes = field(repr=False)
    pdf: bytes | None = field(repr=False)
    report: ValidationReport
    build_seconds: float = 0.0
    check_seconds: float = 0.0


class _XsdChecker:
    """`schematron: off`: the CDA XSD only (CDA_extended.xsd), ~1 ms a document."""

    def __init__(self) -> None:
        self._schema = etree.XMLSchema(etree.parse(str(CDA_XSD)))

    def validate(self, cda: bytes) -> ValidationReport:
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
        if self._schema.validate(tree):
            return ValidationReport((), (), _XSD_ONLY)
        findings = []
        for entry in self._schema.error_log:
            location = None
            if entry.path:
                try:
                    nodes = tree.xpath(entry.path)
                    if isinstance(nodes, list) and nodes and isinstance(nodes[0], etree._Element):
                        location = element_location(nodes[0])
                except etree.XPathError:
                    location = entry.path
            findings.append(
                Finding(Severity.ERROR, "xsd", entry.message, line=entry.line, location=location)
            )
        return ValidationReport(tuple(findings), (), _XSD_ONLY)


class DocumentChecker:
    """The validator of one process: compiled once, reused for every document."""

    def __init__(self, mode: SchematronMode, cache_dir: Path | None) -> None:
        started = time.perf_counter()
        self.mode = mode
        self._validator: CdaValidator | _XsdChecker = (
            CdaValidator(cache_dir) if mode == "required" else _XsdChecker()
        )
        self.startup_seconds = time.perf_counter() - started

    def check(self, cda: bytes) -> CheckedDocument:
        started = time.perf_counter()
        report = self._validator.validate(cda)
        return CheckedDocument(cda, None, report, 0.0, time.perf_counter() - started)

    def build_lab(self, report: LabReport, context: CdaContext) -> CheckedDocument:
        """CR-BIO with its PDF (the lab's own, else rendered), then validated."""
        started = time.perf_counter()
        pdf = report.lab_pdf or render_lab_report_pdf(report, context)
        cda = build_cr_bio(report, context, pdf)
        built = time.perf_counter()
        verdict = self._validator.validate(cda)
        return CheckedDocument(cda, pdf, verdict, built - started, time.perf_counter() - built)

    def build_imaging(self, report: ImagingReport, context: CdaContext) -> CheckedDocument:
        """CR-IMG (level 3 or 1) with its PDF (`build_cr_img_with_pdf`), then validated."""
        started = time.perf_counter()
        cda, pdf = build_cr_img_with_pdf(report, context)
        built = time.perf_counter()
        verdict = self._validator.validate(cda)
        return CheckedDocument(cda, pdf, verdict, built - started, time.perf_counter() - built)


# -- entry points of the worker processes ----------------------------------------------
_CHECKER: DocumentChecker | None = None


def init_process(mode: SchematronMode, cache_dir: str | None) -> None:
    """Pool initializer: compile the validator once for this process's lifetime."""
    global _CHECKER
    _CHECKER = DocumentChecker(mode, Path(cache_dir) if cache_dir else None)


def _checker() -> DocumentChecker:
    if _CHECKER is None:
        raise RuntimeError("document worker used before init_process")
    return _CHECKER


def startup_seconds() -> float:
    """What compiling this process's validator cost (also: it is ready)."""
    return _checker().startup_seconds


def check_cda(cda: bytes) -> CheckedDocument:
    try:
        return _checker().check(cda)
    except Exception as exc:  # the original type may not pickle back to the stage
        raise DocumentBuildError(f"validation failed to run: {type(exc).__name__}: {exc}") from None


def build_and_check_lab(report: LabReport, context: CdaContext) -> CheckedDocument:
    try:
        return _checker().build_lab(report, context)
    except Exception as exc:
        raise DocumentBuildError(f"CR-BIO not built: {type(exc).__name__}: {exc}") from None


def build_and_check_imaging(report: ImagingReport, context: CdaContext) -> CheckedDocument:
    try:
        return _checker().build_imaging(report, context)
    except Exception as exc:
        raise DocumentBuildError(f"CR-IMG not built: {type(exc).__name__}: {exc}") from None
