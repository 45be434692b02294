"""Way (a): a CDA built by the sending system, carried per the CI-SIS volet
"Transmission de document(s) CDA en HL7 v2" (ORU^R01 2.5 or MDM^T02/T04/T10 2.6).

PFI does not rebuild such a document: it decodes it, checks that the message and the
document agree (request type, document id, patient) and hands routing the request, the
DMP/MSSanté metadata (MetaDMPMSS OBX) and the participants (PRT). Anything that does not
agree is an AE naming the field, never a silent guess: a deletion sent for the wrong
patient must not reach the DMP.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from pfi.transforms.cda.oids import INS_OIDS
from pfi.transforms.cda.summary import CdaSummary, InstanceId, summarize_cda
from pfi.transforms.hl7 import ErrorCode, ErrorLocation, Hl7Error, Hl7Message, Segment

#: MSH-21 profile that announces this volet (MSH-21.2).
PROFILE_ID = "CISIS_CDA_HL7_V2"
METADATA_SYSTEM = "MetaDMPMSS"


class DocumentAction(StrEnum):
    """What the sender asks PFI to do with the document."""

    INITIAL = "initial"
    REPLACEMENT = "replacement"
    DELETION = "deletion"


#: ORC-1 and the OBX-11 it must come with (volet § "Le segment ORC").
_ORC_ACTIONS = {
    "NW": DocumentAction.INITIAL,
    "RO": DocumentAction.REPLACEMENT,
    "CA": DocumentAction.DELETION,
}
_OBX_ACTIONS = {
    "F": DocumentAction.INITIAL,
    "C": DocumentAction.REPLACEMENT,
    "D": DocumentAction.DELETION,
}
_MDM_ACTIONS = {
    "T02": DocumentAction.INITIAL,
    "T10": DocumentAction.REPLACEMENT,
    "T04": DocumentAction.DELETION,
}

#: Yes/No metadata (HL7 table 0136), in the order the volet lists them; the first eight
#: are required, ACK_RECEPTION and ACK_LECTURE_MSS optional.
YES_NO_METADATA = (
    "MASQUE_PS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX",
    "CONNEXION_SECRETE",
    "MODIF_CONF_CODE",
    "DESTDMP",
    "DESTMSSANTEPS",
    "DESTMSSANTEPAT",
    "ACK_RECEPTION",
    "ACK_LECTURE_MSS",
)
REQUIRED_METADATA = YES_NO_METADATA[:8]
TEXT_METADATA = ("CORPSMAIL_PS", "CORPSMAIL_PATIENT")

_B64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WS = re.compile(r"\s+")
_PATIENT_MAIL_DOMAIN = "@patient.mssante.fr"


class ParticipantRole(StrEnum):
    SENDER = "SB"
    RECIPIENT = "RCT"
    REPLY_TO = "REPLY"


@dataclass(frozen=True, slots=True)
class Participant:
    """One PRT segment: who sends, who receives (MSSanté), where to reply."""

    role: ParticipantRole
    person_id: str = ""
    person_id_type: str = ""  # PRT-5.13: RPPS, IDNPS, INS...
    person_id_authority: str = ""  # PRT-5.9 OID
    family: str = ""
    given: str = ""
    organization_name: str = ""
    organization_id: str = ""  # PRT-8.10
    organization_id_type: str = ""  # PRT-8.7: FINEG, FINEJ, IDNST, UF, SVR
    organization_authority: str = ""  # PRT-8.6 OID
    device_id: str = ""  # PRT-10.1
    mssante_address: str = ""  # PRT-15.4 (X.400)
    is_patient: bool = False


@dataclass(frozen=True, slots=True)
class DmpMssMetadata:
    """The MetaDMPMSS OBX values; `None` when an optional one was not sent."""

    masque_ps: bool
    invisible_patient: bool
    invisible_rep_legaux: bool
    connexion_secrete: bool
    modif_conf_code: bool
    dest_dmp: bool
    dest_mssante_ps: bool
    dest_mssante_patient: bool
    ack_reception: bool | None = None
    ack_lecture_mss: bool | None = None
    corpsmail_ps: str | None = None
    corpsmail_patient: str | None = None
    #: NTE-4 "FIN" after DESTMSSANTEPAT: the patient must not be able to reply.
    patient_may_not_reply: bool = False


@dataclass(frozen=True, slots=True)
class TransmittedDocument:
    """One CDA carried in an OBX of type ED."""

    obx_set_id: str
    type_code: str  # OBX-3.1 (XdsTypeCode)
    type_system: str  # OBX-3.3 (LN or TRE_A05)
    status: str  # OBX-11
    cda: bytes = field(repr=False)
    summary: CdaSummary


@dataclass(frozen=True, slots=True)
class CdaTransmission:
    """A request on a document received per the transmission volet."""

    message_type: str  # ORU^R01, MDM^T02...
    control_id: str
    action: DocumentAction
    documents: tuple[TransmittedDocument, ...]
    metadata: DmpMssMetadata
    participants: tuple[Participant, ...]
    #: MDM TXA-12 / TXA-13 as sent (document and replaced document numbers).
    unique_document_number: str = ""
    parent_document_number: str = ""
    #: Non-blocking anomalies worth showing to ops (e.g. a truncated mail body).
    warnings: tuple[str, ...] = ()

    @property
    def cda(self) -> bytes:
        """The (first) document; Ségur vague 2 sends exactly one."""
        return self.documents[0].cda

    @property
    def summary(self) -> CdaSummary:
        return self.documents[0].summary

    @property
    def sender(self) -> Participant | None:
        return next((p for p in self.participants if p.role is ParticipantRole.SENDER), None)

    @property
    def recipients(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.role is ParticipantRole.RECIPIENT)

    @property
    def reply_to(self) -> str:
        return next(
            (p.mssante_address for p in self.participants if p.role is ParticipantRole.REPLY_TO),
            "",
        )


def is_cda_transmission(msg: Hl7Message) -> bool:
    """True when MSH-21 announces this volet (the documents stage picks way a or b on it)."""
    return any(PROFILE_ID in p.replace(" ", "") for p in msg.header.profiles)


def read_cda_transmission(msg: Hl7Message) -> CdaTransmission:
    """Decode and check an ORU/MDM of the transmission volet; `Hl7Error` (AE) otherwise."""
    code = msg.header.message_code
    trigger = msg.header.trigger_event
    if code not in ("ORU", "MDM"):
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"{msg.header.message_type} cannot carry a CDA document (ORU^R01 or MDM^T02/T04/T10)",
            ErrorLocation("MSH", field=9),
        )
    if (code == "ORU" and trigger != "R01") or (code == "MDM" and trigger not in _MDM_ACTIONS):
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_EVENT_CODE,
            f"event {msg.header.message_type} is not part of the transmission volet",
            ErrorLocation("MSH", field=9, component=2),
        )
    if not is_cda_transmission(msg):
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            f"MSH-21 must declare 2.1^{PROFILE_ID} "
            f"(got {', '.join(msg.header.profiles) or '(empty)'})",
            ErrorLocation("MSH", field=21),
        )
    action = _requested_action(msg)
    documents: list[TransmittedDocument] = []
    participants: list[Participant] = []
    values: dict[str, tuple[str, Segment, int]] = {}
    texts: dict[str, str] = {}
    warnings: list[str] = []
    no_reply = False
    current: str = ""  # what the last OBX was: "doc", a metadata code, or ""
    obx_index = 0
    for seg in msg.segments:
        if seg.name == "OBX":
            obx_index += 1
            current = _read_obx(seg, obx_index, documents, values, texts, warnings)
        elif seg.name == "PRT":
            if current != "doc":
                raise Hl7Error(
                    ErrorCode.SEGMENT_SEQUENCE_ERROR,
                    "PRT must follow the OBX that carries the document",
                    ErrorLocation("PRT"),
                )
            participants.append(read_participant(seg, len(participants) + 1))
        elif seg.name == "NTE" and current == "DESTMSSANTEPAT":
            no_reply = no_reply or seg.get(4).strip().upper() == "FIN"
    if not documents:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "no OBX of type ED carries a CDA document (OBX-2 = ED, OBX-5.3 = XML)",
            ErrorLocation("OBX", field=5),
        )
    for doc in documents:
        expected = _OBX_ACTIONS.get(doc.status)
        if expected is not action:
            raise Hl7Error(
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                f"OBX-11 = {doc.status or '(empty)'} does not agree with the requested "
                f"{action.value} ({_agreement_hint(msg)}); F goes with NW/T02, C with RO/T10, "
                "D with CA/T04",
                ErrorLocation("OBX", sequence=int(doc.obx_set_id or 1), field=11),
            )
        _check_patient(msg, doc)
        _check_document_versioning(action, doc)
    metadata = _metadata(values, texts, no_reply)
    unique, parent = "", ""
    if code == "MDM":
        unique, parent = _check_txa(msg, action, documents[0].summary)
    result = CdaTransmission(
        message_type=msg.header.message_type,
        control_id=msg.header.control_id,
        action=action,
        documents=tuple(documents),
        metadata=metadata,
        participants=tuple(participants),
        unique_document_number=unique,
        parent_document_number=parent,
        warnings=tuple(warnings),
    )
    _check_participants(result)
    return result


def _agreement_hint(msg: Hl7Message) -> str:
    if msg.header.message_code == "MDM":
        return f"MSH-9 {msg.header.trigger_event}, ORC-1 {msg.get('ORC-1') or '(empty)'}"
    return f"ORC-1 {msg.get('ORC-1') or '(empty)'}"


def _requested_action(msg: Hl7Message) -> DocumentAction:
    orc = msg.first("ORC")
    if orc is None:
        raise Hl7Error(
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "ORC (the request on the document) is missing",
            ErrorLocation("ORC"),
        )
    orc1 = orc.get(1).strip().upper()
    action = _ORC_ACTIONS.get(orc1)
    if action is None:
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"ORC-1 = {orc1 or '(empty)'}: expected NW (initial), RO (replacement) "
            "or CA (deletion)",
            ErrorLocation("ORC", field=1),
        )
    if msg.header.message_code == "MDM":
        by_trigger = _MDM_ACTIONS[msg.header.trigger_event]
        if by_trigger is not action:
            raise Hl7Error(
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                f"ORC-1 = {orc1} does not agree with event {msg.header.trigger_event} "
                "(T02 goes with NW, T10 with RO, T04 with CA)",
                ErrorLocation("ORC", field=1),
            )
    return action


def _read_obx(
    seg: Segment,
    index: int,
    documents: list[TransmittedDocument],
    values: dict[str, tuple[str, Segment, int]],
    texts: dict[str, str],
    warnings: list[str],
) -> str:
    code = seg.get(3, 1).strip()
    system = seg.get(3, 3).strip()
    if system == METADATA_SYSTEM:
        if code in YES_NO_METADATA:
            values[code] = (seg.get(5, 1).strip().upper(), seg, index)
        elif code in TEXT_METADATA:
            texts[code] = _metadata_text(seg, index, warnings)
        else:
            raise Hl7Error(
                ErrorCode.TABLE_VALUE_NOT_FOUND,
                f"OBX-3 = {code!r} is not in the MetaDMPMSS table "
                f"({', '.join(YES_NO_METADATA + TEXT_METADATA)})",
                ErrorLocation("OBX", sequence=index, field=3),
            )
        return code
    if seg.get(2).strip().upper() == "ED" and seg.get(5, 3).strip().upper() == "XML":
        documents.append(_read_document(seg, index))
        return "doc"
    return ""


def _decode_base64(data: str, where: ErrorLocation, what: str) -> bytes:
    """Strict alphabet; missing '=' padding is tolerated (two official examples lack it).

    The C decoder in strict mode checks the alphabet in the same pass (a regex over a
    300 KB CDA cost several ms at intake); only a failure takes the slow path that names
    what is wrong."""
    data = "".join(data.split())
    try:
        return binascii.a2b_base64(data + "=" * (-len(data) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    if not _B64_ALPHABET.fullmatch(data) or len(data) % 4 == 1:
        bad = next((c for c in data if not (c.isalnum() or c in "+/=")), None)
        detail = f"character {bad!r} is not base64" if bad else "length is not valid base64"
        raise Hl7Error(ErrorCode.DATA_TYPE_ERROR, f"{what}: {detail}", where)
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error as exc:
        raise Hl7Error(ErrorCode.DATA_TYPE_ERROR, f"{what}: {exc}", where) from None


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def _read_document(seg: Segment, index: int) -> TransmittedDocument:
    where = ErrorLocation("OBX", sequence=index, field=5, component=5)
    encoding = seg.get(5, 4).strip()
    if encoding.upper() != "BASE64":
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"OBX-5.4 = {encoding or '(empty)'}: the CDA must be sent in Base64",
            ErrorLocation("OBX", sequence=index, field=5, component=4),
        )
    cda = _decode_base64(seg.get(5, 5), where, "OBX-5.5 (CDA document)")
    if not cda.strip():
        raise Hl7Error(ErrorCode.REQUIRED_FIELD_MISSING, "OBX-5.5 (CDA document) is empty", where)
    try:
        root = etree.fromstring(cda, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"the CDA in OBX-5.5 is not well-formed XML: {exc}",
            where,
        ) from None
    try:
        summary = summarize_cda(root)
    except ValueError as exc:
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR, f"the XML in OBX-5.5 is not a CDA document: {exc}", where
        ) from None
    return TransmittedDocument(
        obx_set_id=seg.get(1).strip() or str(index),
        type_code=seg.get(3, 1).strip(),
        type_system=seg.get(3, 3).strip(),
        status=seg.get(11).strip().upper(),
        cda=cda,
        summary=summary,
    )


def _metadata_text(seg: Segment, index: int, warnings: list[str]) -> str:
    """CORPSMAIL_*: OBX-5 ED with Base64 text (or, leniently, the text itself).

    A mail body is a courtesy text, not the document: a truncated Base64 (the official ORU
    examples carry one) is decoded as far as it goes and reported in `warnings`.
    """
    code = seg.get(3, 1).strip()
    if seg.get(5, 4).strip().upper() != "BASE64":
        return seg.get(5, 5) or seg.text(5)
    data = _WS.sub("", seg.get(5, 5))
    try:
        raw = _decode_base64(
            data, ErrorLocation("OBX", sequence=index, field=5, component=5), f"OBX-5.5 ({code})"
        )
    except Hl7Error:
        usable = data.rstrip("=")
        usable = usable[: len(usable) - len(usable) % 4]
        if not _B64_ALPHABET.fullmatch(usable):
            raise
        raw = base64.b64decode(usable)
        warnings.append(
            f"OBX {index} ({code}): Base64 truncated or malformed, decoded the first "
            f"{len(raw)} bytes"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="ignore") if len(raw) > 3 else raw.decode(seg.codec)


def _yes_no(values: dict[str, tuple[str, Segment, int]], code: str) -> bool | None:
    if code not in values:
        return None
    value, _seg, index = values[code]
    if value not in ("Y", "N"):
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"{code} = {value or '(empty)'}: expected Y or N (HL7 table 0136)",
            ErrorLocation("OBX", sequence=index, field=5),
        )
    return value == "Y"


def _metadata(
    values: dict[str, tuple[str, Segment, int]], texts: dict[str, str], no_reply: bool
) -> DmpMssMetadata:
    missing = [c for c in REQUIRED_METADATA if c not in values]
    if missing:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            f"MetaDMPMSS OBX missing: {', '.join(missing)}",
            ErrorLocation("OBX", field=3),
        )
    flags = {c: _yes_no(values, c) for c in YES_NO_METADATA}
    return DmpMssMetadata(
        masque_ps=bool(flags["MASQUE_PS"]),
        invisible_patient=bool(flags["INVISIBLE_PATIENT"]),
        invisible_rep_legaux=bool(flags["INVISIBLE_REP_LEGAUX"]),
        connexion_secrete=bool(flags["CONNEXION_SECRETE"]),
        modif_conf_code=bool(flags["MODIF_CONF_CODE"]),
        dest_dmp=bool(flags["DESTDMP"]),
        dest_mssante_ps=bool(flags["DESTMSSANTEPS"]),
        dest_mssante_patient=bool(flags["DESTMSSANTEPAT"]),
        ack_reception=flags["ACK_RECEPTION"],
        ack_lecture_mss=flags["ACK_LECTURE_MSS"],
        corpsmail_ps=texts.get("CORPSMAIL_PS"),
        corpsmail_patient=texts.get("CORPSMAIL_PATIENT"),
        patient_may_not_reply=no_reply,
    )


def _looks_like_oid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-2](\.\d+)+", value))


def read_participant(seg: Segment, index: int) -> Participant:
    """One PRT (`index`: its rank, for the error location); also read from the plain RIS
    reports PFI builds a CR-IMG from, whose PRT RCT may give MSSanté addresses."""
    role_code = seg.get(4, 1).strip().upper()
    try:
        role = ParticipantRole(role_code)
    except ValueError:
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"PRT-4 = {role_code or '(empty)'}: expected SB, RCT or REPLY",
            ErrorLocation("PRT", sequence=index, field=4),
        ) from None
    authority = seg.get(5, 9, 2).strip()
    namespace = seg.get(5, 9, 1).strip()
    if not authority and _looks_like_oid(namespace):
        authority = namespace  # "^^^^^^^^1.2.250.1.213.1.4.10^L^^^INS" as in the examples
    id_type = seg.get(5, 13).strip().upper()
    address = seg.get(15, 4).strip()
    if address and seg.get(15, 3).strip().upper() not in ("X.400", ""):
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"PRT-15.3 = {seg.get(15, 3)!r}: an MSSanté address is of type X.400",
            ErrorLocation("PRT", sequence=index, field=15, component=3),
        )
    org_authority = seg.get(8, 6, 2).strip()
    return Participant(
        role=role,
        person_id=seg.get(5, 1).strip(),
        person_id_type=id_type,
        person_id_authority=authority,
        family=seg.get(5, 2).strip(),
        given=seg.get(5, 3).strip(),
        organization_name=seg.get(8, 1).strip(),
        organization_id=seg.get(8, 10).strip(),
        organization_id_type=seg.get(8, 7).strip().upper(),
        organization_authority=org_authority,
        device_id=seg.get(10, 1).strip(),
        mssante_address=address,
        is_patient=role is ParticipantRole.RECIPIENT
        and (
            id_type == "INS"
            or authority in INS_OIDS
            or address.lower().endswith(_PATIENT_MAIL_DOMAIN)
        ),
    )


def _check_participants(t: CdaTransmission) -> None:
    """The PRT the requested destinations need (volet: PRT "requis et conditionnel")."""
    m = t.metadata
    sender = t.sender
    if m.dest_dmp and (
        sender is None or not (sender.person_id or sender.device_id) or not sender.organization_id
    ):
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "DESTDMP = Y needs a PRT SB with the sender (PRT-5.1 or PRT-10.1) and its "
            "structure (PRT-8.10), from which the VIHF token is built",
            ErrorLocation("PRT", field=4),
        )
    if m.dest_mssante_ps and not any(r.mssante_address and not r.is_patient for r in t.recipients):
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "DESTMSSANTEPS = Y but no PRT RCT gives a professional MSSanté address (PRT-15.4)",
            ErrorLocation("PRT", field=15, component=4),
        )
    if m.dest_mssante_patient and not any(r.is_patient and r.mssante_address for r in t.recipients):
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "DESTMSSANTEPAT = Y but no PRT RCT gives the patient's MSSanté address (PRT-15.4)",
            ErrorLocation("PRT", field=15, component=4),
        )


def _pid_identifiers(msg: Hl7Message) -> list[tuple[str, str, str]]:
    """(value, authority OID, type) of each PID-3 repetition."""
    pid = msg.first("PID")
    if pid is None:
        return []
    out = []
    for rep in range(1, len(pid.repetitions(3)) + 1):
        value = pid.get(3, 1, rep=rep).strip()
        oid = pid.get(3, 4, 2, rep=rep).strip()
        if not oid and _looks_like_oid(pid.get(3, 4, 1, rep=rep).strip()):
            oid = pid.get(3, 4, 1, rep=rep).strip()
        if value:
            out.append((value, oid, pid.get(3, 5, rep=rep).strip().upper()))
    return out


def _check_patient(msg: Hl7Message, doc: TransmittedDocument) -> None:
    """PID-3 must designate the document's patient (volet: "PID-3 identique ... patientRole/id").

    Every PID-3 identifier whose authority OID appears among the document's patient ids
    must carry the same value, and at least one must be in common: an INS on both sides
    that differs, or an IPP of the same domain that differs, is a mismatch.
    """
    where = ErrorLocation("PID", field=3)
    cda_ids = {i.root: i.extension for i in doc.summary.patient_ids}
    pid_ids = _pid_identifiers(msg)
    cda_ins = doc.summary.ins
    pid_ins = next(((v, o) for v, o, t in pid_ids if o in INS_OIDS or t == "INS"), None)
    if pid_ins and cda_ins and (pid_ins[0], pid_ins[1]) != (cda_ins.extension, cda_ins.root):
        raise Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            f"the document's patient (INS {cda_ins.extension} / {cda_ins.root}) is not the "
            f"message's patient (PID-3 INS {pid_ins[0]} / {pid_ins[1] or 'no OID'})",
            where,
            application_code="904",
        )
    matched = False
    for value, oid, _type in pid_ids:
        if oid and oid in cda_ids:
            if cda_ids[oid] != value:
                raise Hl7Error(
                    ErrorCode.APPLICATION_INTERNAL_ERROR,
                    f"PID-3 identifier {value} ({oid}) differs from the document's "
                    f"patient id {cda_ids[oid]} in the same domain",
                    where,
                    application_code="904" if oid in INS_OIDS else "902",
                )
            matched = True
    if not matched:
        raise Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            "no PID-3 identifier (INS or IPP with its authority OID) matches the document's "
            f"patient ids ({', '.join(map(str, doc.summary.patient_ids)) or 'none'})",
            where,
            application_code="903" if cda_ins is None else "904",
        )


def _check_document_versioning(action: DocumentAction, doc: TransmittedDocument) -> None:
    s = doc.summary
    where = ErrorLocation("OBX", sequence=int(doc.obx_set_id or 1), field=5, component=5)
    if action is DocumentAction.REPLACEMENT and s.replaced_document_id is None:
        raise Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            "a replacement (RO / C / T10) needs relatedDocument[@typeCode='RPLC'] in the CDA",
            where,
        )
    if action is DocumentAction.INITIAL and s.replaced_document_id is not None:
        raise Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            f"an initial transmission (NW / F / T02) carries a CDA that replaces "
            f"{s.replaced_document_id}: send it as a replacement (RO / C / T10)",
            where,
        )


def _ei_matches(field_value: tuple[str, str, str], ii: InstanceId) -> bool:
    """TXA-12/13 per the volet: ext^^root^ISO when the id has an extension, else the OID."""
    first, _namespace, universal = field_value
    if ii.extension:
        return first == ii.extension and universal == ii.root
    return first == ii.root


def _check_txa(msg: Hl7Message, action: DocumentAction, summary: CdaSummary) -> tuple[str, str]:
    txa = msg.first("TXA")
    if txa is None:
        raise Hl7Error(
            ErrorCode.SEGMENT_SEQUENCE_ERROR, "MDM requires a TXA segment", ErrorLocation("TXA")
        )
    unique = (txa.get(12, 1).strip(), txa.get(12, 2).strip(), txa.get(12, 3).strip())
    if not unique[0]:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "TXA-12 (unique document number) is empty",
            ErrorLocation("TXA", field=12),
        )
    if not _ei_matches(unique, summary.id):
        raise Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            f"TXA-12 = {unique[0]} is not the id of the CDA it carries ({summary.id})",
            ErrorLocation("TXA", field=12),
        )
    parent = (txa.get(13, 1).strip(), txa.get(13, 2).strip(), txa.get(13, 3).strip())
    if action is DocumentAction.REPLACEMENT:
        if not parent[0]:
            raise Hl7Error(
                ErrorCode.REQUIRED_FIELD_MISSING,
                "TXA-13 (parent document number) is required for a replacement (T10)",
                ErrorLocation("TXA", field=13),
            )
        replaced = summary.replaced_document_id
        if replaced is not None and not _ei_matches(parent, replaced):
            raise Hl7Error(
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                f"TXA-13 = {parent[0]} is not the document the CDA replaces ({replaced})",
                ErrorLocation("TXA", field=13),
            )
    return unique[0], parent[0]
