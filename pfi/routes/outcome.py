"""What routing decided for one document event, and why.

Every destination ends in exactly one of three states, each with what the stage needs:
send now (with the operation), held (with the holds that keep it and what releases
them), refused (with the reason). Nothing the sender asked for is left out; ops read
`explain()` to answer "why did the patient not get this report?".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pfi.routes.inputs import DestinationKind, destination_key
from pfi.routes.model import HoldKind
from pfi.transforms.xds import ns
from pfi.transforms.xds.model import MaskingFlags

CDA_CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"


class Outcome(StrEnum):
    SEND = "send"
    HOLD = "hold"
    REFUSE = "refuse"


class Operation(StrEnum):
    """What to do at the destination. For a mailbox: the document, its corrected
    version, or the notice of its withdrawal; UPDATE_MASKING is the DMP's own
    confidentiality update of a document it already has."""

    SUBMIT = "submit"
    REPLACE = "replace"
    DELETE = "delete"
    UPDATE_MASKING = "update_masking"


class Origin(StrEnum):
    """Who set a value: the message, the route file, an operator act, or nobody."""

    SENDER = "sender"
    ROUTE = "route"
    OPERATOR = "operator"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a delivery waits and what lets it go."""

    kind: HoldKind
    reason: str
    released_by: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "released_by": list(self.released_by),
        }


@dataclass(frozen=True, slots=True)
class Destination:
    """One document/destination pair of the delivery ledger."""

    kind: DestinationKind
    role: str  # dmp, prescriber, copy, fixed, patient, earlier
    outcome: Outcome
    operation: Operation
    address: str = ""
    holds: tuple[Hold, ...] = ()
    refusal: str = ""
    requested_by: tuple[str, ...] = ()
    no_reply: bool = False  # patient mail: X-MSS-MES: FIN
    #: Holds that do not keep it but that it still answers to: the DMP copy sent at once,
    #: invisible to the patient, under an announcement hold. Recorded as open holds on
    #: its row so that the operator or a release trigger can end them (then an ITI-57
    #: update makes it visible), even when no other destination is held.
    watching: tuple[Hold, ...] = ()

    @property
    def key(self) -> str:
        return destination_key(self.kind, self.address)

    @property
    def hold(self) -> Hold | None:
        """The first hold that keeps it; the others still apply once it is released."""
        return self.holds[0] if self.holds else None

    @property
    def reason(self) -> str:
        if self.outcome is Outcome.HOLD:
            return "; ".join(h.reason for h in self.holds)
        return self.refusal

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind.value,
            "role": self.role,
            "address": self.address,
            "outcome": self.outcome.value,
            "operation": self.operation.value,
            "reason": self.reason,
            "holds": [h.to_json() for h in self.holds],
            "requested_by": list(self.requested_by),
            "no_reply": self.no_reply,
        } | ({"watching": [h.to_json() for h in self.watching]} if self.watching else {})


@dataclass(frozen=True, slots=True)
class MaskingFlag:
    value: bool
    origin: Origin
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "origin": self.origin.value, "note": self.note}


@dataclass(frozen=True, slots=True)
class Masking:
    """DMP visibility of the document: the three JDV_J08 flags (code system
    1.2.250.1.213.1.1.4.13) with who set each, CONNEXION_SECRETE (a property of the DMP
    access, carried in the VIHF) and the CDA confidentialityCode (N/R/V)."""

    masque_ps: MaskingFlag
    invisible_patient: MaskingFlag
    invisible_representants_legaux: MaskingFlag
    connexion_secrete: bool = False
    confidentiality: str = "N"

    def to_xds(self) -> MaskingFlags:
        return MaskingFlags(
            masque_ps=self.masque_ps.value,
            invisible_patient=self.invisible_patient.value,
            invisible_representants_legaux=self.invisible_representants_legaux.value,
            connexion_secrete=self.connexion_secrete,
        )

    def confidentiality_codes(self) -> tuple[tuple[str, str], ...]:
        """(code, code system) pairs of the XDS confidentialityCode, N/R/V first."""
        codes = [(self.confidentiality, CDA_CONFIDENTIALITY_SYSTEM)]
        for code, flag in (
            ("MASQUE_PS", self.masque_ps),
            ("INVISIBLE_PATIENT", self.invisible_patient),
            ("INVISIBLE_REPRESENTANTS_LEGAUX", self.invisible_representants_legaux),
        ):
            if flag.value:
                codes.append((code, ns.MASKING_CODE_SYSTEM))
        return tuple(codes)

    def to_json(self) -> dict[str, Any]:
        return {
            "MASQUE_PS": self.masque_ps.to_json(),
            "INVISIBLE_PATIENT": self.invisible_patient.to_json(),
            "INVISIBLE_REPRESENTANTS_LEGAUX": self.invisible_representants_legaux.to_json(),
            "connexion_secrete": self.connexion_secrete,
            "confidentiality": self.confidentiality,
        }


@dataclass(frozen=True, slots=True)
class AckRequests:
    """ACK_RECEPTION (ZAM^Z01 DMP, ZAM^Z02 MSSanté DSN) and ACK_LECTURE_MSS (ZAM^Z03 MDN)."""

    reception: bool
    read: bool
    reception_origin: Origin
    read_origin: Origin

    def to_json(self) -> dict[str, Any]:
        return {
            "ACK_RECEPTION": {"value": self.reception, "origin": self.reception_origin.value},
            "ACK_LECTURE_MSS": {"value": self.read, "origin": self.read_origin.value},
        }


@dataclass(frozen=True, slots=True)
class MailContent:
    """Mail bodies (CORPSMAIL_PS / CORPSMAIL_PATIENT, or the route's, or the default)."""

    ps_body: str
    patient_body: str
    ps_origin: Origin
    patient_origin: Origin

    def to_json(self) -> dict[str, Any]:
        return {
            "CORPSMAIL_PS": {"text": self.ps_body, "origin": self.ps_origin.value},
            "CORPSMAIL_PATIENT": {"text": self.patient_body, "origin": self.patient_origin.value},
        }


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One rule that decided something: ops read these to explain a routing."""

    rule: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    route: str | None
    route_line: int | None
    destinations: tuple[Destination, ...]
    masking: Masking
    acks: AckRequests
    mail: MailContent
    #: Holds this very message releases (a sender's visibility update): record the act.
    released_holds: tuple[HoldKind, ...]
    trace: tuple[TraceStep, ...]
    warnings: tuple[str, ...]

    def get(self, key: str) -> Destination | None:
        return next((d for d in self.destinations if d.key == key), None)

    @property
    def to_send(self) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if d.outcome is Outcome.SEND)

    @property
    def held(self) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if d.outcome is Outcome.HOLD)

    @property
    def refused(self) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if d.outcome is Outcome.REFUSE)

    def explain(self) -> str:
        """A plain-text account for ops: route, each destination, masking, trace."""
        where = f" (line {self.route_line})" if self.route_line else ""
        lines = [f"route: {self.route!r}{where}" if self.route else "route: none matched"]
        for d in self.destinations:
            reason = f" — {d.reason}" if d.reason else ""
            lines.append(f"  {d.key}: {d.outcome.value} {d.operation.value}{reason}")
        flags = [
            f"{code}={'Y' if flag.value else 'N'} ({flag.origin.value})"
            for code, flag in (
                ("MASQUE_PS", self.masking.masque_ps),
                ("INVISIBLE_PATIENT", self.masking.invisible_patient),
                ("INVISIBLE_REPRESENTANTS_LEGAUX", self.masking.invisible_representants_legaux),
            )
        ]
        lines.append("masking: " + ", ".join(flags))
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.append("trace:")
        lines.extend(f"  {step}" for step in self.trace)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "route_line": self.route_line,
            "destinations": [d.to_json() for d in self.destinations],
            "masking": self.masking.to_json(),
            "acks": self.acks.to_json(),
            "mail": self.mail.to_json(),
            "released_holds": [h.value for h in self.released_holds],
            "trace": [
                {"rule": s.rule, "subject": s.subject, "detail": s.detail} for s in self.trace
            ],
            "warnings": list(self.warnings),
        }
