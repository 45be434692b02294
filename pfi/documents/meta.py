"""What a stored document version keeps from its message for routing and delivery.

`document_versions.meta` (JSON) holds one `VersionMeta`: the routing stage rebuilds its
`RoutingInput` from it plus the patient store and the ledger, so nothing routing needs
may be left only in the HL7 message:

- way (a), the CI-SIS transmission volet: the MetaDMPMSS values exactly as sent
  (`sender_metadata`, OBX-3.1 → OBX-5, flags as "Y"/"N"), every PRT participant (SB
  sender for the VIHF, RCT recipients with their MSSanté addresses, REPLY), the patient
  may-not-reply flag (NTE "FIN"), the MDM TXA numbers;
- way (b), a CR-BIO PFI built: no MetaDMPMSS (routes and defaults decide), the
  prescriber (ORC-12 / OBR-16) and copy recipients (OBR-28) with their RPPS, whose
  MSSanté addresses the annuaire resolves, the validating biologist, the order numbers,
  the unmapped local codes and the message fingerprint (re-sent unchanged = no new
  version);
- way (b), a CR-IMG PFI built: the same, the radiologist as validator, plus the exam's
  accession number (OBR-18: what a RIS release trigger names), the MDM document numbers
  (TXA-12/13), the PRT participants the message carries (an RCT with its MSSanté
  address is a recipient, as in way a), and the level built (3, or 1 with the parts the
  message lacked for 3).

`RoutingInput` pieces come out with `sender_metadata_for_routing()`,
`routing_recipients()`, `patient_address`, `patient_may_not_reply`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pfi.routes.inputs import Recipient, RecipientRole
from pfi.routes.model import PATIENT_MAIL_DOMAIN
from pfi.transforms.cda.transmission import CdaTransmission, DmpMssMetadata, Participant
from pfi.transforms.imaging import ImagingReport
from pfi.transforms.lab.model import Practitioner

WAY_TRANSMISSION = "transmission"
WAY_BUILT = "built"


@dataclass(frozen=True, slots=True)
class PractitionerRef:
    """A professional named in the message (RPPS/ADELI or local id) and its role."""

    role: str  # prescriber | copy | validator | sender | recipient | reply
    id: str = ""
    id_type: str = ""  # RPPS, ADELI, IDNPS, INS (a patient PRT)...
    id_authority: str = ""
    family: str = ""
    given: str = ""
    prefix: str = ""
    organization_id: str = ""
    organization_id_type: str = ""
    organization_name: str = ""
    device_id: str = ""
    mssante_address: str = ""
    is_patient: bool = False

    @classmethod
    def from_practitioner(cls, role: str, p: Practitioner) -> PractitionerRef:
        return cls(
            role=role,
            id=p.id,
            id_type=p.id_type,
            id_authority=p.id_authority_oid,
            family=p.family,
            given=p.given,
            prefix=p.prefix,
        )

    @classmethod
    def from_participant(cls, p: Participant) -> PractitionerRef:
        role = {"SB": "sender", "RCT": "recipient", "REPLY": "reply"}[p.role.value]
        return cls(
            role=role,
            id=p.person_id,
            id_type=p.person_id_type,
            id_authority=p.person_id_authority,
            family=p.family,
            given=p.given,
            organization_id=p.organization_id,
            organization_id_type=p.organization_id_type,
            organization_name=p.organization_name,
            device_id=p.device_id,
            mssante_address=p.mssante_address,
            is_patient=p.is_patient,
        )

    @property
    def display_name(self) -> str:
        return " ".join(x for x in (self.given, self.family) if x) or self.organization_name


def metadata_as_sent(m: DmpMssMetadata) -> dict[str, str]:
    """MetaDMPMSS as OBX-3.1 → OBX-5 strings (what `RoutingInput.sender_metadata` takes);
    an optional value the message did not carry is absent, not "N"."""
    flags: dict[str, bool | None] = {
        "MASQUE_PS": m.masque_ps,
        "INVISIBLE_PATIENT": m.invisible_patient,
        "INVISIBLE_REP_LEGAUX": m.invisible_rep_legaux,
        "CONNEXION_SECRETE": m.connexion_secrete,
        "MODIF_CONF_CODE": m.modif_conf_code,
        "DESTDMP": m.dest_dmp,
        "DESTMSSANTEPS": m.dest_mssante_ps,
        "DESTMSSANTEPAT": m.dest_mssante_patient,
        "ACK_RECEPTION": m.ack_reception,
        "ACK_LECTURE_MSS": m.ack_lecture_mss,
    }
    out = {k: ("Y" if v else "N") for k, v in flags.items() if v is not None}
    if m.corpsmail_ps is not None:
        out["CORPSMAIL_PS"] = m.corpsmail_ps
    if m.corpsmail_patient is not None:
        out["CORPSMAIL_PATIENT"] = m.corpsmail_patient
    return out


@dataclass(frozen=True, slots=True)
class VersionMeta:
    """The routing-relevant facts of one version (JSON in `document_versions.meta`)."""

    way: str
    message_type: str
    control_id: str
    sender: str  # MSH-3|MSH-4
    sender_metadata: dict[str, str] | None = None
    people: tuple[PractitionerRef, ...] = ()
    patient_may_not_reply: bool = False
    placer_order: str = ""
    filler_order: str = ""
    accession_number: str = ""  # imaging: OBR-18 (routing reads it, pfi/routes/document_meta)
    cda_version_number: int | None = None
    txa_unique_document_number: str = ""
    txa_parent_document_number: str = ""
    unmapped_codes: tuple[str, ...] = ()
    fingerprint: str = ""
    cr_img_level: int | None = None  # 3 (structured) or 1 (PDF body), for a built CR-IMG
    cr_img_gaps: tuple[str, ...] = ()  # what the message lacked for level 3
    warnings: tuple[str, ...] = field(default=())

    # -- routing -------------------------------------------------------------------
    def sender_metadata_for_routing(self) -> dict[str, str] | None:
        return dict(self.sender_metadata) if self.sender_metadata is not None else None

    def routing_recipients(self) -> tuple[Recipient, ...]:
        """Professionals with an MSSanté address (PRT RCT); way (b) has none until the
        annuaire resolves the prescriber's and copies' RPPS (`people`)."""
        prescriber_ids = {p.id for p in self.people if p.role == "prescriber" and p.id}
        out: list[Recipient] = []
        seen: set[str] = set()
        for p in self.people:
            address = p.mssante_address.strip()
            if p.role != "recipient" or p.is_patient or not address or "@" not in address:
                continue
            if address.lower().endswith("@" + PATIENT_MAIL_DOMAIN) or address.lower() in seen:
                continue
            seen.add(address.lower())
            role = RecipientRole.PRESCRIBER if p.id in prescriber_ids else RecipientRole.COPY
            out.append(Recipient(address, role, p.display_name))
        return tuple(out)

    @property
    def patient_address(self) -> str:
        return next(
            (
                p.mssante_address
                for p in self.people
                if p.role == "recipient" and p.is_patient and p.mssante_address
            ),
            "",
        )

    @property
    def sender_participant(self) -> PractitionerRef | None:
        return next((p for p in self.people if p.role == "sender"), None)

    @property
    def reply_to(self) -> str:
        return next((p.mssante_address for p in self.people if p.role == "reply"), "")

    # -- JSON ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["people"] = [asdict(p) for p in self.people]
        data["unmapped_codes"] = list(self.unmapped_codes)
        data["cr_img_gaps"] = list(self.cr_img_gaps)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionMeta:
        values = dict(data)
        values["people"] = tuple(PractitionerRef(**p) for p in values.get("people", ()))
        values["unmapped_codes"] = tuple(values.get("unmapped_codes", ()))
        values["cr_img_gaps"] = tuple(values.get("cr_img_gaps", ()))
        values["warnings"] = tuple(values.get("warnings", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def transmission_people(
    t: CdaTransmission, prescriber_ids: set[str]
) -> tuple[PractitionerRef, ...]:
    """PRT participants, plus the prescriber ids the message names (ORC-12 / OBR-16) so
    that a PRT RCT naming the prescriber becomes a prescriber recipient."""
    people = [PractitionerRef.from_participant(p) for p in t.participants]
    people += [PractitionerRef(role="prescriber", id=i) for i in sorted(prescriber_ids) if i]
    return tuple(people)


def imaging_people(
    report: ImagingReport, participants: tuple[Participant, ...]
) -> tuple[PractitionerRef, ...]:
    """The prescriber (OBR-16 / ORC-12), copies (OBR-28), the radiologist who validated,
    and the message's PRT participants (an RCT naming the prescriber's id is routed as
    the prescriber, like way a)."""
    people: list[PractitionerRef] = []
    if report.prescriber is not None:
        people.append(PractitionerRef.from_practitioner("prescriber", report.prescriber))
    people += [PractitionerRef.from_practitioner("copy", c) for c in report.copy_to]
    if report.radiologist is not None:
        people.append(PractitionerRef.from_practitioner("validator", report.radiologist))
    people += [PractitionerRef.from_participant(p) for p in participants]
    return tuple(people)
