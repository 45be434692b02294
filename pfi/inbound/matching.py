"""Finding the hospital's patient for a document received by MSSanté.

Identity vigilance (RNIV) decides the order: a qualified INS identifies the patient; the
traits (birth name, first name, birth date, sex) may identify them only when exactly one
known patient has them all, and never a patient whose own INS differs from the one the
document carries. Anything else is a KO with the reason spelled out for the operator:
attaching a document to the wrong record is worse than not attaching it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.store.models import Patient
from pfi.transforms.mssante.cda_header import CdaPatient


@dataclass(frozen=True, slots=True)
class PatientMatch:
    patient: Patient
    matched_by: str  # "ins" | "traits"


@dataclass(frozen=True, slots=True)
class NoMatch:
    reason: str


def match_patient(session: Session, cda_patient: CdaPatient) -> PatientMatch | NoMatch:
    ins = cda_patient.ins.extension if cda_patient.ins else ""
    ins_note = ""
    if ins:
        known = _survivors(
            session,
            session.scalars(select(Patient).where(Patient.ins == ins).order_by(Patient.id)).all(),
        )
        qualified = [p for p in known if p.qualified and p.ins == ins]
        if len(qualified) == 1:
            return PatientMatch(qualified[0], "ins")
        if len(qualified) > 1:
            ids = ", ".join(str(p.id) for p in qualified)
            return NoMatch(f"INS {ins} is qualified on {len(qualified)} patients ({ids})")
        if known:
            ins_note = (
                f"INS {ins} not qualified (patient {', '.join(str(p.id) for p in known)}: "
                f"identity status {known[0].identity_status or 'none'})"
            )
        else:
            ins_note = f"INS {ins} unknown"
    else:
        ins_note = "no INS in the document"
    traits, missing = _traits(cda_patient)
    if missing:
        return NoMatch(f"{ins_note}; traits incomplete for a match ({', '.join(missing)})")
    assert traits is not None
    same_traits = _by_traits(session, traits)
    candidates = [p for p in same_traits if not (ins and p.ins and p.ins != ins)]
    described = traits.describe()
    if len(candidates) == 1:
        return PatientMatch(candidates[0], "traits")
    if not candidates:
        conflicting = [p for p in same_traits if p not in candidates]
        if conflicting:
            other = ", ".join(f"{p.id} (INS {p.ins})" for p in conflicting)
            return NoMatch(f"{ins_note}; patients matching {described} have another INS: {other}")
        return NoMatch(f"{ins_note}; no patient matches {described}")
    ids = ", ".join(str(p.id) for p in candidates)
    return NoMatch(f"{ins_note}; {len(candidates)} patients match {described} ({ids})")


@dataclass(frozen=True, slots=True)
class _Traits:
    birth_name: str
    first_name: str
    birth_date: date
    sex: str

    def describe(self) -> str:
        return (
            f"{self.birth_name} {self.first_name} born {self.birth_date.isoformat()} sex {self.sex}"
        )


def _traits(p: CdaPatient) -> tuple[_Traits | None, list[str]]:
    missing = []
    birth_name = p.birth_family_name or p.used_family_name
    first = p.first_given_name or (p.given_names.split(" ")[0] if p.given_names else "")
    birth_date = _date(p.birth_date)
    if not birth_name:
        missing.append("birth name")
    if not first:
        missing.append("first name")
    if birth_date is None:
        missing.append("birth date")
    if p.sex not in ("F", "M"):
        missing.append("sex")
    if missing or birth_date is None:
        return None, missing
    return _Traits(birth_name, first, birth_date, p.sex), []


def _by_traits(session: Session, t: _Traits) -> list[Patient]:
    rows = session.scalars(
        select(Patient)
        .where(
            Patient.birth_date == t.birth_date,
            Patient.sex == t.sex,
            Patient.merged_into_id.is_(None),
        )
        .order_by(Patient.id)
    ).all()
    name, first = _norm(t.birth_name), _norm(t.first_name)
    return [
        p
        for p in rows
        if _norm(p.birth_name or p.used_name) == name
        and (_norm(p.first_name) == first or first in _norm(p.first_names).split())
    ]


def _survivors(session: Session, rows: Sequence[Patient]) -> list[Patient]:
    out: list[Patient] = []
    for patient in rows:
        for _ in range(32):  # a merge chain is short; a cycle must not hang the poller
            if patient.merged_into_id is None:
                break
            survivor = session.get(Patient, patient.merged_into_id)
            if survivor is None:
                break
            patient = survivor
        if patient not in out:
            out.append(patient)
    return out


def _norm(text: str) -> str:
    """Upper-case, accents removed, hyphens and apostrophes as spaces, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    for sep in ("-", "'", "’"):
        plain = plain.replace(sep, " ")
    return " ".join(plain.upper().split())


def _date(value: str) -> date | None:
    if len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None
