"""MDM^T02 / T10 / T04 to the DPI for a document received by MSSanté.

CI-SIS volet "Transmission au LPS d'un document CDA provenant d'un courriel MSSanté"
(HL7 v2.6, MSH-21 ``1.1^CISIS_CDA_HL7_LPS``): one document per message; OBX 1 carries the
CDA in base64 followed by the PRT segments (SB sender, RCT recipient, REPLY reply-to
address); OBX 2 carries the e-mail (Message-ID and subject in OBX-3, body in base64);
OBX 3..6 the MetaDMPMSS flags MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX,
MODIF_CONF_CODE, in that order. The event, ORC-1 and OBX-11 follow the action:
T02/NW/F first sending, T10/RO/C replacement, T04/CA/D deletion.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from pfi.transforms.hl7.outgoing import INS_AUTHORITY_NAMES, ReplyHeader, msh
from pfi.transforms.hl7.outgoing import esc as _e
from pfi.transforms.hl7.outgoing import segment as _fields
from pfi.transforms.mssante.action import DocumentAction

PROFILE = "1.1^CISIS_CDA_HL7_LPS"


@dataclass(frozen=True, slots=True)
class MdmPatientId:
    value: str
    authority_oid: str
    authority_name: str = ""
    type_code: str = "PI"


@dataclass(frozen=True, slots=True)
class MdmPatient:
    ids: tuple[MdmPatientId, ...]  # INS first (type INS), then local identifiers
    birth_family_name: str
    first_given_name: str = ""
    given_names: str = ""
    used_family_name: str = ""
    used_given_name: str = ""
    birth_date: str = ""  # YYYYMMDD
    sex: str = ""
    identity_status: str = ""  # PID-32 (VALI, QUAL...) as known to the sender, '' if not


@dataclass(frozen=True, slots=True)
class MdmParticipant:
    """A PRT: who sent, received or should be answered, with their MSSanté address."""

    address: str
    person_id: str = ""
    family_name: str = ""
    given_name: str = ""
    person_authority_name: str = ""
    person_authority_oid: str = ""
    person_id_type: str = ""  # IDNPS, RPPS...
    organisation_name: str = ""
    organisation_authority: str = ""
    organisation_id_type: str = ""
    organisation_id: str = ""
    device_id: str = ""


@dataclass(frozen=True, slots=True)
class MdmMail:
    message_id: str
    subject: str
    body_text: str = ""


@dataclass(frozen=True, slots=True)
class MdmFlags:
    masked_from_professionals: bool = False
    invisible_to_patient: bool = False
    invisible_to_legal_representatives: bool = False
    confidentiality_changed: bool = False


@dataclass(frozen=True, slots=True)
class MdmDocument:
    action: DocumentAction
    cda: bytes
    type_code: str
    type_label: str
    type_system: str  # LN, or the TRE_A05 name
    document_root: str
    document_extension: str = ""
    parent_root: str = ""
    parent_extension: str = ""
    activity_time: str = ""  # TXA-4, the document's effective time
    author_id: str = ""  # TXA-22
    organisation_name: str = ""  # TXA-12.2 when the id has no extension


@dataclass(frozen=True, slots=True)
class MdmHeader:
    """Who writes to whom, and when (MSH-7, EVN-2 and EVN-6)."""

    addressing: ReplyHeader
    message_datetime: str  # YYYYMMDDHHMM[SS]


@dataclass(frozen=True, slots=True)
class MdmT02Input:
    header: MdmHeader
    patient: MdmPatient
    document: MdmDocument
    mail: MdmMail
    sender: MdmParticipant
    recipients: Sequence[MdmParticipant] = ()
    reply_to: Sequence[str] = ()
    flags: MdmFlags = field(default_factory=MdmFlags)


def build_mdm_t02(data: MdmT02Input) -> bytes:
    """The MDM message (T02, T10 or T04 after the action), UTF-8, CR-separated."""
    doc = data.document
    if doc.action is DocumentAction.REPLACE and not doc.parent_root:
        raise ValueError("a replacement (MDM^T10) needs the replaced document id (TXA-13)")
    if not data.patient.ids:
        raise ValueError("PID-3 needs at least one patient identifier (the INS first)")
    if not data.sender.address:
        raise ValueError("PRT SB needs the sender's MSSanté address (PRT-15.4)")
    h = data.header
    event = doc.action.mdm_event
    e = _e
    segments = [
        msh(
            h.addressing,
            stamp=h.message_datetime,
            message_type=f"MDM^{event}^MDM_T02",
            version="2.6",
            profile=PROFILE,
        ),
        f"EVN||{h.message_datetime}||||{h.message_datetime}",
        _pid(data.patient),
        "PV1|1|N",
        f"ORC|{doc.action.orc1}",
        f"OBR|1|||{_code(doc)}",
        _txa(doc),
        _fields(
            "OBX",
            "1",
            "ED",
            _code(doc),
            "",
            "^text^XML^Base64^" + base64.b64encode(doc.cda).decode("ascii"),
            "",
            "",
            "",
            "",
            "",
            doc.action.obx11,
        ),
        _prt("SB", data.sender),
        *(_prt("RCT", r) for r in data.recipients),
        *(_prt("REPLY", MdmParticipant(address=a)) for a in data.reply_to),
        _fields(
            "OBX",
            "2",
            "ED",
            f"{e(data.mail.message_id)}^{e(data.mail.subject)}",
            "",
            "^text^^Base64^" + base64.b64encode(data.mail.body_text.encode("utf-8")).decode(),
            "",
            "",
            "",
            "",
            "",
            "F",
        ),
    ]
    flags = data.flags
    for n, (code, label, value) in enumerate(
        (
            ("MASQUE_PS", "Masqué aux professionnels de Santé", flags.masked_from_professionals),
            (
                "INVISIBLE_PATIENT",
                "Document Non Visible par le patient",
                flags.invisible_to_patient,
            ),
            (
                "INVISIBLE_REP_LEGAUX",
                "Non visible par les représentants Légaux du patient",
                flags.invisible_to_legal_representatives,
            ),
            ("MODIF_CONF_CODE", "Modification Confidentiality Code", flags.confidentiality_changed),
        ),
        start=3,
    ):
        segments.append(
            _fields(
                "OBX",
                str(n),
                "CWE",
                f"{code}^{e(label)}^MetaDMPMSS",
                "",
                f"{'Y' if value else 'N'}^^expandedYes-NoIndicator",
                "",
                "",
                "",
                "",
                "",
                "F",
            )
        )
    return ("\r".join(segments) + "\r").encode("utf-8")


def _code(doc: MdmDocument) -> str:
    return f"{_e(doc.type_code)}^{_e(doc.type_label)}^{_e(doc.type_system)}"


def _ei(root: str, extension: str, namespace: str) -> str:
    """TXA-12/13 per the volet: ext^^root^ISO, or the root alone (namespace if known)."""
    if extension:
        return f"{_e(extension)}^^{_e(root)}^ISO"
    return f"{_e(root)}^{_e(namespace)}" if namespace else _e(root)


def _txa(doc: MdmDocument) -> str:
    fields = ["TXA", "1", _e(doc.type_code), "TEXT", doc.activity_time] + [""] * 18
    fields[12] = _ei(doc.document_root, doc.document_extension, doc.organisation_name)
    if doc.parent_root:
        fields[13] = _ei(doc.parent_root, doc.parent_extension, doc.organisation_name)
    fields[17] = "AU"
    fields[22] = _e(doc.author_id)
    return "|".join(fields).rstrip("|")


def _pid(p: MdmPatient) -> str:
    ids = []
    for i in p.ids:
        name = i.authority_name or INS_AUTHORITY_NAMES.get(i.authority_oid, "")
        ids.append(f"{_e(i.value)}^^^{_e(name)}&{_e(i.authority_oid)}&ISO^{_e(i.type_code)}")
    names = [f"{_e(p.birth_family_name)}^{_e(p.first_given_name)}^{_e(p.given_names)}^^^^L"]
    if p.used_family_name:
        names.append(f"{_e(p.used_family_name)}^{_e(p.used_given_name)}^^^^^D")
    fields = ["PID"] + [""] * 32
    fields[3] = "~".join(ids)
    fields[5] = "~".join(names)
    fields[7] = p.birth_date[:8]
    fields[8] = _e(p.sex)
    fields[32] = _e(p.identity_status)
    return "|".join(fields).rstrip("|")


def _prt(role: str, p: MdmParticipant) -> str:
    fields = ["PRT"] + [""] * 15
    fields[2] = "UC"
    fields[4] = f"{role}^^participation"
    if p.person_id or p.family_name:
        authority = (
            f"{_e(p.person_authority_name)}&{_e(p.person_authority_oid)}&ISO"
            if p.person_authority_oid
            else _e(p.person_authority_name)
        )
        xcn = [_e(p.person_id), _e(p.family_name), _e(p.given_name)] + [""] * 10
        xcn[8] = authority
        xcn[9] = "D"
        xcn[12] = _e(p.person_id_type)
        fields[5] = "^".join(xcn).rstrip("^")
    if p.organisation_name or p.organisation_id:
        xon = [_e(p.organisation_name)] + [""] * 9
        xon[5] = _e(p.organisation_authority)
        xon[6] = _e(p.organisation_id_type)
        xon[9] = _e(p.organisation_id)
        fields[8] = "^".join(xon).rstrip("^")
    if p.device_id:
        fields[10] = _e(p.device_id)
    fields[15] = f"^^X.400^{_e(p.address)}"
    return "|".join(fields)
