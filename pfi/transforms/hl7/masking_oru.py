"""The "ORU with masking data" to the DPI: which document went where, with which
visibility, so that the patient record shows what was shared and with whom.

PFI sends it to the DPI when a destination's outcome is known (the DMP accepted or
refused the document, a mail left, a hold was released). It reuses the shape the DPI
already reads for the CI-SIS transmission volet (ORU^R01 2.5, MSH-21
`2.1^CISIS_CDA_HL7_V2`):

    MSH ... ORU^R01^ORU_R01 ... 2.5 ... 2.1^CISIS_CDA_HL7_V2
    PID  the patient (INS first), PID-32 identity status
    ORC  NW / RO / CA (initial, replacement, deletion), ORC-2 placer, ORC-3 filler
    OBR  the document type (LOINC), OBR-25 F / C / X
    OBX 1  ED: the CDA in base64 (OBX-11 F/C/D), or RP: its id when the CDA is left out
    OBX    MetaDMPMSS as applied: MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX,
           CONNEXION_SECRETE, DESTDMP, DESTMSSANTEPS, DESTMSSANTEPAT (Y/N)
    OBX    one per destination, coding system PFIDeliveryStatus: DELIVERY_DMP,
           DELIVERY_MSSANTE_PS, DELIVERY_MSSANTE_PATIENT; OBX-4 groups it with the
           destination's address (OBX XTN DESTINATAIRE_MSS, as in ZAM^Z02); OBX-5 the
           status (DELIVERED, PENDING, HELD, REFUSED, FAILED, DEAD_LETTER, SUPERSEDED);
           OBX-14 when; an NTE after it gives the reason of a hold or a refusal.

The first two groups follow the volet; the destination statuses are PFI's own
(PFIDeliveryStatus), documented here, since no CI-SIS table carries them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pfi.transforms.hl7.charset import CODECS
from pfi.transforms.hl7.outgoing import ReplyHeader, msh
from pfi.transforms.hl7.outgoing import esc as _e
from pfi.transforms.hl7.outgoing import segment as _fields

PROFILE = "2.1^CISIS_CDA_HL7_V2"
META_SYSTEM = "MetaDMPMSS"
YES_NO_SYSTEM = "expandedYes-NoIndicator"
STATUS_SYSTEM = "PFIDeliveryStatus"

_ACTIONS = {  # action -> ORC-1, OBR-25, OBX-11
    "initial": ("NW", "F", "F"),
    "replacement": ("RO", "C", "C"),
    "deletion": ("CA", "X", "D"),
}
_DESTINATIONS = {
    "dmp": "DELIVERY_DMP^Dépôt DMP",
    "mss_pro": "DELIVERY_MSSANTE_PS^Envoi MSSanté professionnel",
    "mss_patient": "DELIVERY_MSSANTE_PATIENT^Envoi MSSanté patient",
}
STATUS_LABELS = {
    "delivered": "DELIVERED^Délivré",
    "acknowledged": "DELIVERED^Délivré",
    "pending": "PENDING^En cours",
    "sending": "PENDING^En cours",
    "held": "HELD^Retenu",
    "refused": "REFUSED^Refusé",
    "failed": "FAILED^Échec temporaire, nouvel essai prévu",
    "dead_letter": "DEAD_LETTER^Échec définitif",
    "superseded": "SUPERSEDED^Remplacé par une version plus récente",
}
_META = (
    ("MASQUE_PS", "Masqué aux professionnels de Santé", "masque_ps"),
    ("INVISIBLE_PATIENT", "Document Non Visible par le patient", "invisible_patient"),
    (
        "INVISIBLE_REP_LEGAUX",
        "Non visible par les représentants Légaux du patient",
        "invisible_rep_legaux",
    ),
    ("CONNEXION_SECRETE", "Connexion Secrete", "connexion_secrete"),
)


@dataclass(frozen=True, slots=True)
class OruPatientId:
    value: str
    authority_oid: str = ""
    authority_name: str = ""
    type_code: str = "PI"  # INS for the INS


@dataclass(frozen=True, slots=True)
class OruPatient:
    ids: tuple[OruPatientId, ...]  # the INS first when qualified
    family: str
    given: str = ""
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""
    identity_status: str = ""  # PID-32


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    kind: str  # dmp, mss_pro, mss_patient
    status: str  # a delivery ledger status
    address: str = ""
    reason: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DocumentMasking:
    masque_ps: bool = False
    invisible_patient: bool = False
    invisible_rep_legaux: bool = False
    connexion_secrete: bool = False


@dataclass(frozen=True, slots=True)
class MaskingReport:
    patient: OruPatient
    action: str  # initial, replacement, deletion
    document_uid: str  # root^extension of the CDA id
    type_code: str
    type_display: str = ""
    type_system: str = "LN"
    placer_order: str = ""
    filler_order: str = ""
    masking: DocumentMasking = field(default_factory=DocumentMasking)
    destinations: tuple[DestinationStatus, ...] = ()
    cda: bytes | None = field(default=None, repr=False)


def build_masking_oru(report: MaskingReport, header: ReplyHeader, *, now: datetime) -> bytes:
    """The ORU^R01 for one document version; CR-separated, in `header.charset`."""
    if report.action not in _ACTIONS:
        raise ValueError(f"action: initial, replacement or deletion, got {report.action!r}")
    if not report.patient.ids:
        raise ValueError("PID-3 needs at least one patient identifier")
    if not report.document_uid:
        raise ValueError("the document id (CDA ClinicalDocument/id) is required")
    if header.charset not in CODECS:
        raise ValueError(f"MSH-18: unknown charset {header.charset!r}")
    for dest in report.destinations:
        if dest.kind not in _DESTINATIONS:
            raise ValueError(f"destination kind: dmp, mss_pro or mss_patient, got {dest.kind!r}")
        if dest.status not in STATUS_LABELS:
            raise ValueError(f"destination status: {', '.join(STATUS_LABELS)}, got {dest.status!r}")
    orc1, obr25, obx11 = _ACTIONS[report.action]
    e = _e
    stamp = now.strftime("%Y%m%d%H%M%S")
    code = f"{e(report.type_code)}^{e(report.type_display)}^{e(report.type_system)}"
    segments = [
        msh(header, stamp=stamp, message_type="ORU^R01^ORU_R01", version="2.5", profile=PROFILE),
        _pid(report.patient),
        _fields("ORC", orc1, e(report.placer_order), e(report.filler_order)),
        _fields(
            "OBR",
            "1",
            e(report.placer_order),
            e(report.filler_order),
            code,
            *([""] * 20),
            obr25,
        ),
    ]
    if report.cda is not None:
        value = "^TEXT^XML^Base64^" + base64.b64encode(report.cda).decode("ascii")
        segments.append(_fields("OBX", "1", "ED", code, "", value, "", "", "", "", "", obx11))
    else:
        value = f"{e(report.document_uid)}^PFI^TEXT^XML"
        segments.append(_fields("OBX", "1", "RP", code, "", value, "", "", "", "", "", obx11))
    seq = 1
    for name, label, attr in _META:
        seq += 1
        segments.append(_meta_obx(seq, name, label, getattr(report.masking, attr)))
    kinds = {d.kind for d in report.destinations if d.status != "refused"}
    for name, label, kind in (
        ("DESTDMP", "Destinataire DMP", "dmp"),
        (
            "DESTMSSANTEPS",
            "Destinataire (Professionnel de Santé, organisation ou BAL applicative)",
            "mss_pro",
        ),
        ("DESTMSSANTEPAT", "Destinataire Patient", "mss_patient"),
    ):
        seq += 1
        segments.append(_meta_obx(seq, name, label, kind in kinds))
    for group, dest in enumerate(report.destinations, start=1):
        seq += 1
        when = dest.at.strftime("%Y%m%d%H%M%S") if dest.at is not None else ""
        segments.append(
            _fields(
                "OBX",
                str(seq),
                "CWE",
                f"{_DESTINATIONS[dest.kind]}^{STATUS_SYSTEM}",
                str(group),
                f"{STATUS_LABELS[dest.status]}^{STATUS_SYSTEM}",
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                when,
            )
        )
        if dest.reason:
            segments.append(_fields("NTE", str(group), "L", e(dest.reason)))
        if dest.address:
            seq += 1
            segments.append(
                _fields(
                    "OBX",
                    str(seq),
                    "XTN",
                    f"DESTINATAIRE_MSS^Destinataire MSSanté^{STATUS_SYSTEM}",
                    str(group),
                    f"^^X.400^{e(dest.address)}",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "F",
                )
            )
    body = "\r".join(segments) + "\r"
    return body.encode(CODECS[header.charset], errors="replace")


def _meta_obx(seq: int, name: str, label: str, value: bool) -> str:
    return _fields(
        "OBX",
        str(seq),
        "CE",
        f"{name}^{_e(label)}^{META_SYSTEM}",
        "",
        f"{'Y' if value else 'N'}^^{YES_NO_SYSTEM}",
        "",
        "",
        "",
        "",
        "",
        "F",
    )


def _pid(patient: OruPatient) -> str:
    ids = "~".join(
        f"{_e(i.value)}^^^{_e(i.authority_name)}&{_e(i.authority_oid)}&ISO^{_e(i.type_code)}"
        if i.authority_oid
        else f"{_e(i.value)}^^^{_e(i.authority_name)}^{_e(i.type_code)}"
        for i in patient.ids
    )
    name = f"{_e(patient.family)}^{_e(patient.given)}^^^^^L"
    fields = ["PID", "1", "", ids, "", name, "", patient.birth_date, _e(patient.sex)]
    fields += [""] * (32 - len(fields))
    fields.append(_e(patient.identity_status))
    return "|".join(fields).rstrip("|")


__all__: Sequence[str] = (
    "STATUS_LABELS",
    "DestinationStatus",
    "DocumentMasking",
    "MaskingReport",
    "OruPatient",
    "OruPatientId",
    "build_masking_oru",
)
