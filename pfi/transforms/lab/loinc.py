"""Transcoding of a lab's local test codes to LOINC (CR-BIO requires LOINC entries).

The mapping is a CSV per lab (`config/loinc/<lab>.csv`), maintained by the lab's
biologists: `local_code,loinc_code,display_name,ucum_unit`. An unmapped code is never
dropped: `transcode` returns it, and the policy says what happens to the document —
`hold` (routing holds it with the reason) or `keep_local` (the CR-BIO carries the local
code as a translation with no LOINC @code, the form the CI-SIS 2024.01 schematrons accept,
see the official example BIO-CR-BIO_2024.01_CRP_non_LOINC.xml).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from pfi.transforms.lab.model import Battery, Coded, LabReport

_LOINC_CODE = re.compile(r"(\d{1,7})-(\d)")
_COLUMNS = ("local_code", "loinc_code", "display_name", "ucum_unit")


class MappingError(ValueError):
    """A mapping file PFI will not load, with the line that is wrong."""


def loinc_check_digit_ok(code: str) -> bool:
    """LOINC codes end with a mod-10 check digit (Luhn over the number part)."""
    m = _LOINC_CODE.fullmatch(code)
    if not m:
        return False
    digits = m.group(1)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10 == int(m.group(2))


@dataclass(frozen=True, slots=True)
class LoincEntry:
    local_code: str
    loinc_code: str
    display_name: str
    ucum_unit: str


@dataclass(frozen=True, slots=True)
class LoincMapping:
    """Local code → LOINC code, French display name and UCUM unit."""

    entries: dict[str, LoincEntry]

    @classmethod
    def from_csv(cls, text: str) -> LoincMapping:
        """Parse and check the whole file; `MappingError` names the line at fault."""
        reader = csv.reader(io.StringIO(text))
        rows = [(n, r) for n, r in enumerate(reader, start=1) if r and not r[0].startswith("#")]
        if not rows:
            raise MappingError("empty LOINC mapping")
        header_line, header = rows[0]
        if tuple(h.strip() for h in header) != _COLUMNS:
            raise MappingError(
                f"line {header_line}: header must be {','.join(_COLUMNS)}, got {','.join(header)}"
            )
        entries: dict[str, LoincEntry] = {}
        for line, row in rows[1:]:
            if len(row) != len(_COLUMNS):
                raise MappingError(f"line {line}: expected 4 columns, got {len(row)}")
            local, loinc, display, unit = (c.strip() for c in row)
            if not local:
                raise MappingError(f"line {line}: empty local_code")
            if not loinc_check_digit_ok(loinc):
                raise MappingError(
                    f"line {line}: {loinc!r} is not a LOINC code (wrong form or check digit)"
                )
            if not display:
                raise MappingError(f"line {line}: display_name is required (CR-BIO shows it)")
            if local in entries:
                raise MappingError(f"line {line}: local code {local!r} is mapped twice")
            entries[local] = LoincEntry(local, loinc, display, unit)
        return cls(entries)

    def get(self, local_code: str) -> LoincEntry | None:
        return self.entries.get(local_code)

    def __len__(self) -> int:
        return len(self.entries)


class TranscodePolicy(StrEnum):
    HOLD = "hold"
    KEEP_LOCAL = "keep_local"


@dataclass(frozen=True, slots=True)
class UnmappedCode:
    code: str
    display: str
    obx_set_id: int
    battery_code: str

    def __str__(self) -> str:
        return f"{self.code} ({self.display})" if self.display else self.code


@dataclass(frozen=True, slots=True)
class TranscodeResult:
    report: LabReport
    unmapped: tuple[UnmappedCode, ...]
    policy: TranscodePolicy

    @property
    def must_hold(self) -> bool:
        return bool(self.unmapped) and self.policy is TranscodePolicy.HOLD

    @property
    def hold_reason(self) -> str:
        """The reason routing stores with the held document (empty when nothing to hold)."""
        if not self.must_hold:
            return ""
        codes = ", ".join(str(u) for u in self.unmapped)
        return f"unmapped code{'s' if len(self.unmapped) > 1 else ''} {codes}"


def transcode(
    report: LabReport, mapping: LoincMapping, policy: TranscodePolicy | str
) -> TranscodeResult:
    """LOINC for every result (and battery) code the mapping knows; the rest listed.

    Results the lab already sent in LOINC are kept. The UCUM unit of the mapping replaces
    the unit as sent: the mapping is where the lab declares which unit the code reports in.
    """
    policy = TranscodePolicy(policy)
    unmapped: list[UnmappedCode] = []
    batteries: list[Battery] = []
    for battery in report.batteries:
        observations = []
        for obs in battery.observations:
            entry = mapping.get(obs.local_code.code)
            if entry is not None:
                obs = obs.transcoded(
                    Coded(entry.loinc_code, entry.display_name, "LN"), entry.ucum_unit
                )
            elif obs.loinc is None:
                unmapped.append(
                    UnmappedCode(
                        obs.local_code.code, obs.local_code.display, obs.set_id, battery.code.code
                    )
                )
            observations.append(obs)
        code = battery.code
        if not code.is_loinc and (entry := mapping.get(code.code)) is not None:
            code = Coded(entry.loinc_code, entry.display_name, "LN")
        batteries.append(replace(battery, code=code, observations=tuple(observations)))
    return TranscodeResult(replace(report, batteries=tuple(batteries)), tuple(unmapped), policy)
