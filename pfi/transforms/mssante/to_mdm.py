"""From a document received by MSSanté to the MDM the DPI receives (see hl7/mdm.py)."""

from __future__ import annotations

from dataclasses import replace

from pfi.transforms.hl7.mdm import (
    MdmDocument,
    MdmFlags,
    MdmHeader,
    MdmMail,
    MdmParticipant,
    MdmPatient,
    MdmPatientId,
    MdmT02Input,
)
from pfi.transforms.mssante.cda_header import INS_OIDS
from pfi.transforms.mssante.inbound import InboundDocument

#: CDA root of the national identifiers of health professionals (RPPS/ADELI, "IDNPS").
IDNPS_ROOT = "1.2.250.1.71.4.2.1"


def mdm_input_from_inbound(
    doc: InboundDocument,
    header: MdmHeader,
    *,
    recipient: MdmParticipant | None = None,
    confidentiality_changed: bool = False,
    identity_status: str = "",
) -> MdmT02Input:
    """Everything the MDM needs, from the mail and the CDA header.

    `recipient` lets the caller name the service the application mailbox belongs to
    (PRT-8, the volet's note 3); by default the PRT RCT carries the address alone.
    `confidentiality_changed` is MODIF_CONF_CODE: only the caller, who knows the
    previous version, can tell.
    """
    h = doc.header
    patient = h.patient
    ids = []
    ins = patient.ins
    if ins is not None:
        ids.append(MdmPatientId(ins.extension, ins.root, type_code="INS"))
    for other in patient.ids:
        if other.root in INS_OIDS or not other.extension:
            continue
        ids.append(MdmPatientId(other.extension, other.root, type_code="PI"))
    author = h.author
    sender = MdmParticipant(address=doc.mail.sender)
    if author.id is not None and author.id.root == IDNPS_ROOT:
        sender = MdmParticipant(
            address=doc.mail.sender,
            person_id=author.id.extension,
            family_name=author.family_name,
            given_name=author.given_name,
            person_authority_name="ASIP-SANTE-PS",
            person_authority_oid=IDNPS_ROOT,
            person_id_type="IDNPS",
        )
    rcpt = recipient or (
        MdmParticipant(address=doc.mail.original_recipient) if doc.mail.original_recipient else None
    )
    return MdmT02Input(
        header=header,
        patient=MdmPatient(
            ids=tuple(ids),
            birth_family_name=patient.birth_family_name or patient.used_family_name,
            first_given_name=patient.given_name,
            given_names=patient.given_names or patient.given_name,
            used_family_name=patient.used_family_name,
            used_given_name=patient.used_given_name,
            birth_date=patient.birth_date,
            sex=patient.sex,
            identity_status=identity_status,
        ),
        document=MdmDocument(
            action=doc.action,
            cda=doc.cda,
            type_code=h.code.code,
            type_label=h.code.display_name or h.title,
            type_system="LN"
            if h.code.code_system == "2.16.840.1.113883.6.1"
            else h.code.code_system,
            document_root=h.id.root,
            document_extension=h.id.extension,
            parent_root=h.parent_id.root if h.parent_id else "",
            parent_extension=h.parent_id.extension if h.parent_id else "",
            activity_time=h.effective_time[:14],
            author_id=author.id.extension if author.id else "",
            organisation_name=h.custodian_name or author.organisation_name,
        ),
        mail=MdmMail(doc.mail.message_id, doc.mail.subject, doc.mail.body_text),
        sender=sender,
        recipients=(rcpt,) if rcpt else (),
        reply_to=(doc.mail.reply_to,) if doc.mail.reply_to else (),
        flags=MdmFlags(
            masked_from_professionals=doc.masked_from_professionals,
            invisible_to_patient=doc.invisible_to_patient,
            invisible_to_legal_representatives=doc.invisible_to_legal_representatives,
            confidentiality_changed=confidentiality_changed,
        ),
    )


def for_local_patient(
    data: MdmT02Input,
    *,
    local_ids: tuple[MdmPatientId, ...],
    ins: MdmPatientId | None,
    identity_status: str,
) -> MdmT02Input:
    """The MDM pointing at the hospital's own patient record.

    The sender's local identifiers (its IPP, in its own domain) mean nothing to the DPI
    and could even collide with one of ours: PID-3 carries the INS first (the patient's
    qualified one when we matched on it), then the hospital's identifiers of the patient
    PFI matched, and nothing else. PID-32 is the hospital's identity status.
    """
    ids = ((ins,) if ins is not None else ()) + local_ids
    if not ids:
        raise ValueError("the matched patient has neither INS nor local identifier")
    return replace(data, patient=replace(data.patient, ids=ids, identity_status=identity_status))
