"""Reading a patient's identity from an HL7 message (PAM-FR 2.11): pure functions.

PID-3 carries the identifiers: the local IPP per assigning authority, and the INS
(identifier type INS, authority OID 1.2.250.1.213.1.4.8 NIR / .9 NIA, .10 / .11 for
tests), which PAM-FR sends only for a qualified identity. PID-32 carries the identity
reliability status (table 0445: VIDE, PROV, VALI, DOUT, FICT...). PID-5 repetitions are
typed: L = birth name (with the birth first name and the list of first names), D = used
name. PID-11 with address type BDL carries the birth place INSEE code in XAD.9.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pfi.transforms.hl7 import Hl7Message, Identifier, Segment
from pfi.transforms.hl7.dtm import parse_date, parse_dtm

INS_TYPE = "INS"


@dataclass(frozen=True)
class PatientTraits:
    """The identity a message states for one patient."""

    identifiers: tuple[Identifier, ...]
    ins: Identifier | None
    identity_status: str
    qualified: bool
    birth_name: str = ""
    used_name: str = ""
    first_name: str = ""
    first_names: str = ""
    birth_date: date | None = None
    sex: str = ""
    birth_place: str = ""

    @property
    def local_identifiers(self) -> tuple[Identifier, ...]:
        return tuple(i for i in self.identifiers if i is not self.ins)

    def comparable(self) -> dict[str, Any]:
        """The traits whose change is recorded in the identity history."""
        return {
            "ins": self.ins.value if self.ins else None,
            "ins_oid": self.ins.authority_oid if self.ins else None,
            "identity_status": self.identity_status,
            "qualified": self.qualified,
            "birth_name": self.birth_name,
            "used_name": self.used_name,
            "first_name": self.first_name,
            "first_names": self.first_names,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "sex": self.sex,
            "birth_place": self.birth_place,
        }


@dataclass(frozen=True)
class IdentityRules:
    qualifying_statuses: frozenset[str]
    ins_authority_oids: frozenset[str]
    local_zone: ZoneInfo


@dataclass(frozen=True)
class AdtEvent:
    """What an ADT message says about identity."""

    trigger: str
    event_at: datetime | None
    patients: tuple[PatientTraits, ...]  # PID (two for A24/A37 links)
    prior_identifiers: tuple[Identifier, ...]  # MRG-1 (A40 merge, A47 change)
    attending: dict[str, Any] | None = None  # ROL ODRP: the médecin traitant
    pam: dict[str, Any] = field(default_factory=dict)  # ZBE, ZFA, ZFD, PD1 as sent


def read_identifiers(seg: Segment, n: int) -> tuple[Identifier, ...]:
    out = []
    for rep in range(1, len(seg.repetitions(n)) + 1):
        value = seg.get(n, 1, rep=rep).strip()
        if not value:
            continue
        out.append(
            Identifier(
                value=value,
                authority=seg.get(n, 4, 1, rep=rep),
                authority_oid=seg.get(n, 4, 2, rep=rep),
                type_code=seg.get(n, 5, rep=rep).strip().upper(),
            )
        )
    return tuple(out)


def read_patient(pid: Segment, rules: IdentityRules) -> PatientTraits:
    identifiers = read_identifiers(pid, 3)
    ins = next(
        (
            i
            for i in identifiers
            if i.type_code == INS_TYPE and i.authority_oid in rules.ins_authority_oids
        ),
        None,
    )
    status = pid.get(32).strip().upper()
    names = _names(pid)
    birth_place = ""
    for rep in range(1, len(pid.repetitions(11)) + 1):
        if pid.get(11, 7, rep=rep).strip().upper() == "BDL":
            birth_place = pid.get(11, 9, rep=rep).strip()
            break
    return PatientTraits(
        identifiers=identifiers,
        ins=ins,
        identity_status=status,
        qualified=ins is not None and status in rules.qualifying_statuses,
        birth_name=names.get("L", ("", "", ""))[0],
        used_name=names.get("D", ("", "", ""))[0],
        first_name=names.get("L", names.get("D", ("", "", "")))[1],
        first_names=names.get("L", names.get("D", ("", "", "")))[2],
        birth_date=parse_date(pid.get(7)),
        sex=pid.get(8).strip().upper()[:2],
        birth_place=birth_place,
    )


def _names(pid: Segment) -> dict[str, tuple[str, str, str]]:
    """PID-5 by name type: family name, first given name, other given names."""
    out: dict[str, tuple[str, str, str]] = {}
    for rep in range(1, len(pid.repetitions(5)) + 1):
        kind = pid.get(5, 7, rep=rep).strip().upper() or "L"
        out.setdefault(
            kind,
            (
                pid.get(5, 1, rep=rep).strip(),
                pid.get(5, 2, rep=rep).strip(),
                pid.get(5, 3, rep=rep).strip(),
            ),
        )
    return out


def read_adt(msg: Hl7Message, rules: IdentityRules) -> AdtEvent:
    header = msg.header
    evn = msg.first("EVN")
    event_at = parse_dtm(evn.get(2), rules.local_zone) if evn else None
    if event_at is None:
        event_at = parse_dtm(header.message_datetime, rules.local_zone)
    patients = tuple(read_patient(pid, rules) for pid in msg.all("PID"))
    mrg = msg.first("MRG")
    prior = read_identifiers(mrg, 1) if mrg else ()
    return AdtEvent(
        trigger=header.trigger_event or (evn.get(1) if evn else ""),
        event_at=event_at,
        patients=patients,
        prior_identifiers=prior,
        attending=_attending(msg),
        pam={
            name: _fields(seg)
            for name in ("ZBE", "ZFA", "ZFD", "PD1")
            if (seg := msg.first(name)) is not None
        },
    )


def _attending(msg: Hl7Message) -> dict[str, Any] | None:
    for rol in msg.all("ROL"):
        if rol.get(3).strip().upper() == "ODRP":
            return {
                "id": rol.get(4, 1),
                "family_name": rol.get(4, 2),
                "given_name": rol.get(4, 3),
                "authority": rol.get(4, 9, 1),
                "authority_oid": rol.get(4, 9, 2),
                "id_type": rol.get(4, 13),
                "address": rol.text(11),
                "phone": rol.get(12, 12) or rol.get(12, 1),
            }
    return None


def _fields(seg: Segment) -> dict[str, str]:
    """A segment kept as sent (escaped): {"ZFA-1": "ACTIF", ...}, empty fields left out."""
    return {f"{seg.name}-{n}": seg.raw(n) for n in range(1, len(seg.fields)) if seg.raw(n)}
