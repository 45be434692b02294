"""One problem found in a CDA document, whatever checked it (XSD, schematron, PFI itself)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Errors block sending; warnings are logged and kept with the document."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """A finding, with enough context to find and fix the problem in the document.

    `source` is "xml" (not well-formed), "xsd" (CDA_extended.xsd), a schematron file
    name of the kit ("IHE.sch", "CI-SIS_BIO-CR-BIO_2024.01.sch"...), or "pfi" for what
    PFI itself reports about the validation (which volet applied, what could not be
    checked). `rule_id` is the assert id, else the id of the rule or pattern that fired.
    `unverifiable` is set when the check could not be made because the kit lacks the
    data it needs (a value set or terminology file): it names that data and the finding
    is then a warning, never an error.
    """

    severity: Severity
    source: str
    message: str
    rule_id: str | None = None
    location: str | None = None
    line: int | None = None
    unverifiable: str | None = None

    def __str__(self) -> str:
        where = self.location or (f"line {self.line}" if self.line else "")
        rule = f" [{self.rule_id}]" if self.rule_id else ""
        at = f" at {where}" if where else ""
        return f"{self.severity} {self.source}{rule}{at}: {self.message}"
