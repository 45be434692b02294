"""What routing knows about one document event: the facts `decide` works from.

The routing stage assembles a `RoutingInput` from the document event, the patient store
and the delivery ledger; nothing here reads them, so a decision can be replayed and
explained from its input alone, and re-run when a fact changes (identity qualified, hold
released, operator masking).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pfi.routes.metadata import MASKING_HL7_TO_XDS, SenderMetadata
from pfi.routes.model import PATIENT_MAIL_DOMAIN, RELEASABLE_HOLDS, Action, DocumentKind, HoldKind

#: ZFA-9 (PAM-FR "Information et opposition à l'alimentation du DMP").
ZFA9_OPPOSITION = {"IO": True, "INO": False}
CONFIDENTIALITY_CODES = ("N", "R", "V")  # CDA confidentialityCode, 2.16.840.1.113883.5.25


class RecipientRole(StrEnum):
    PRESCRIBER = "prescriber"  # ORC-12 / OBR-16, or the PRT RCT the stage knows prescribed
    COPY = "copy"  # OBR-28, or any other PRT RCT professional / organisation


@dataclass(frozen=True, slots=True)
class Recipient:
    """A professional or organisation with a known MSSanté address."""

    address: str
    role: RecipientRole = RecipientRole.COPY
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", RecipientRole(self.role))
        if "@" not in self.address:
            raise ValueError(f"recipient {self.name or '?'}: not a mail address: {self.address!r}")
        if self.address.strip().lower().endswith("@" + PATIENT_MAIL_DOMAIN):
            raise ValueError(
                f"recipient {self.address!r} is the patient's mailbox: pass it as "
                "patient_address (the patient's mail follows the INS rules)"
            )


#: Ledger recipient of a professional without a known address: not a mail address, so
#: that it can never be sent to, and distinct per professional (one refused row each).
UNRESOLVED_PREFIX = "unresolved:"


@dataclass(frozen=True, slots=True)
class UnresolvedRecipient:
    """A professional to mail (way b: named by RPPS) whose MSSanté address could not be
    found; routing records a refused mss_pro row for them instead of dropping them."""

    role: RecipientRole
    id: str
    reason: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", RecipientRole(self.role))

    @property
    def ledger_recipient(self) -> str:
        return f"{UNRESOLVED_PREFIX}{self.id}"


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """Identity and DMP consent of the patient, as the identity stage knows them now.

    `dmp_opposition`: True when the patient, informed, opposed feeding the DMP (ZFA-9
    IO), False when informed without opposition (INO), None when unknown (no ZFA, NA).
    """

    ins_qualified: bool
    ins: str = ""
    dmp_status: str = ""  # ZFA-1 as sent (ACTIF, FERME...), for explanations
    dmp_opposition: bool | None = None

    def __post_init__(self) -> None:
        if self.ins_qualified and not self.ins.strip():
            raise ValueError("patient facts: a qualified identity needs its INS (matricule)")

    @classmethod
    def from_store(
        cls, *, qualified: bool, ins: str | None, pam: Mapping[str, Any] | None
    ) -> PatientFacts:
        """From the patient store row: `qualified`, `ins`, `pam` ({"ZFA": {"ZFA-9": "IO"}})."""
        zfa = (pam or {}).get("ZFA") or {}
        status = _first_component(str(zfa.get("ZFA-1", "")))
        opposition_code = _first_component(str(zfa.get("ZFA-9", ""))).upper()
        return cls(
            ins_qualified=bool(qualified and ins),
            ins=ins or "",
            dmp_status=status,
            dmp_opposition=ZFA9_OPPOSITION.get(opposition_code),
        )

    @property
    def mail_address(self) -> str:
        """The patient's MSSanté address, only ever from a qualified INS."""
        return f"{self.ins}@{PATIENT_MAIL_DOMAIN}" if self.ins_qualified else ""


def _first_component(value: str) -> str:
    return value.split("^", 1)[0].strip()


class DestinationKind(StrEnum):
    DMP = "dmp"
    MSS_PRO = "mss_pro"
    MSS_PATIENT = "mss_patient"


def destination_key(kind: DestinationKind | str, address: str = "") -> str:
    """The stable name of a destination across versions and re-evaluations.

    The patient's mailbox is one destination whatever its address (which only exists
    once the INS is qualified), so that a mail held for the identity is the same ledger
    row as the mail sent after qualification.
    """
    if kind == "mss_pro":
        return f"mss_pro:{address.strip().lower()}"
    return DestinationKind(kind).value


@dataclass(frozen=True, slots=True)
class RoutingInput:
    """One document event to route.

    - `sender_metadata`: the MetaDMPMSS OBX (OBX-3.1 -> OBX-5, as parsed strings) when
      the message carried them, None otherwise (PFI built the CDA from a plain ORU).
    - `recipients`: professionals with an MSSanté address (PRT RCT, ORC-12, OBR-28).
    - `patient_address`: the patient's address if a PRT RCT gave one (checked against
      the INS; the INS wins).
    - `delivered_before`: keys (`destination_key`) that received an earlier version.
    - `released_holds`: holds released by an operator or an HL7 release trigger.
    - `operator_masking`: MASQUE_PS / INVISIBLE_PATIENT / INVISIBLE_REP_LEGAUX set by an
      audited operator act; they win over the sender and the route.
    - `unresolved_recipients`: professionals named by id whose address the annuaire did
      not give (refused rows, never a silent drop); `recipient_notes`: how the others were
      resolved, for the trace.
    """

    source: str
    document_kind: DocumentKind
    patient: PatientFacts
    document_code: str = ""
    action: Action = Action.INITIAL
    sender_metadata: Mapping[str, str] | None = None
    confidentiality: str = "N"
    recipients: tuple[Recipient, ...] = ()
    patient_address: str = ""
    patient_may_not_reply: bool = False
    delivered_before: frozenset[str] = frozenset()
    released_holds: frozenset[HoldKind] = frozenset()
    operator_masking: Mapping[str, bool] = field(default_factory=dict)
    unresolved_recipients: tuple[UnresolvedRecipient, ...] = ()
    recipient_notes: tuple[str, ...] = ()
    metadata: SenderMetadata | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "document_kind", DocumentKind(self.document_kind))
        object.__setattr__(self, "action", Action(self.action))
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "unresolved_recipients", tuple(self.unresolved_recipients))
        object.__setattr__(self, "recipient_notes", tuple(self.recipient_notes))
        object.__setattr__(self, "delivered_before", frozenset(self.delivered_before))
        released = frozenset(HoldKind(h) for h in self.released_holds)
        if released - RELEASABLE_HOLDS:
            names = ", ".join(sorted(h.value for h in released - RELEASABLE_HOLDS))
            raise ValueError(
                f"released_holds: {names} cannot be released by an act; they follow the "
                "facts (identity, masking)"
            )
        object.__setattr__(self, "released_holds", released)
        confidentiality = self.confidentiality.strip().upper() or "N"
        if confidentiality not in CONFIDENTIALITY_CODES:
            raise ValueError(
                f"confidentiality: expected N, R or V (CDA confidentialityCode), got "
                f"{self.confidentiality!r}"
            )
        object.__setattr__(self, "confidentiality", confidentiality)
        masking: dict[str, bool] = {}
        for name, value in self.operator_masking.items():
            hl7 = _hl7_masking_name(name)
            if hl7 is None:
                raise ValueError(
                    f"operator_masking: {name!r} is not a masking flag (MASQUE_PS, "
                    "INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX)"
                )
            masking[hl7] = bool(value)
        object.__setattr__(self, "operator_masking", masking)
        if self.sender_metadata is not None:
            object.__setattr__(self, "metadata", SenderMetadata.parse(self.sender_metadata))


def _hl7_masking_name(name: str) -> str | None:
    upper = name.strip().upper()
    if upper in MASKING_HL7_TO_XDS:
        return upper
    return next((h for h, x in MASKING_HL7_TO_XDS.items() if x == upper), None)
