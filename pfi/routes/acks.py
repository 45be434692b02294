"""Acknowledgements back to the hospital, built from the ledger: what the delivery workers
send over MLLP once a destination's outcome is known.

- `dmp_business_ack`: the ZAM^Z01 owed to the system that sent a document per the CI-SIS
  transmission volet, when the DMP accepted or refused it. Owed only for the delivery
  that carries the sender's own request (revision 0; not a later masking update of
  PFI's), when the message was a transmission-volet one, when ACK_RECEPTION applies
  (sender, else route, else defaults) and when `outbound.business_acks` has an endpoint
  for that sender.
- `masking_report`: the ORU with masking data for the DPI (`outbound.masking_oru`): the
  document, its masking as decided, and every destination's current status.

Both return None when nothing is owed, and say why in the log at debug level; they
never send: the caller (delivery worker) owns the connection, retries and timeouts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from pfi.config.outbound import MllpEndpoint, OutboundSettings
from pfi.routes.document_meta import DocumentMeta
from pfi.store.models import (
    Delivery,
    Document,
    DocumentVersion,
    Patient,
    PatientIdentifier,
    Routing,
)
from pfi.transforms.cda.oids import INS_OIDS
from pfi.transforms.hl7.ack import ack_control_id
from pfi.transforms.hl7.masking_oru import (
    DestinationStatus,
    DocumentMasking,
    MaskingReport,
    OruPatient,
    OruPatientId,
    build_masking_oru,
)
from pfi.transforms.hl7.outgoing import INS_AUTHORITY_NAMES, ReplyHeader
from pfi.transforms.hl7.zam import (
    DMP_ERROR_SYSTEM,
    READ_ERROR_SYSTEM,
    SMTP_ERROR_SYSTEM,
    ZamError,
    build_zam_z01,
    build_zam_z02,
    build_zam_z03,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboundHl7:
    """An HL7 message to send over MLLP, and where."""

    endpoint: MllpEndpoint
    message: bytes
    control_id: str
    description: str


def dmp_business_ack(
    session: Session,
    outbound: OutboundSettings,
    delivery_id: int,
    *,
    accepted: bool,
    now: datetime,
    error_code: str = "",
    error_text: str = "",
) -> OutboundHl7 | None:
    """The ZAM^Z01 for the DMP outcome of `delivery_id`, or None when none is owed.

    `now`: the message time (local time of the establishment, as MSH-7 usually is).
    A refusal needs the DMP's error code (RegistryResponse errorCode) and text.
    """
    owed = _owed(session, outbound, delivery_id, "Z01", ("dmp",), "ACK_RECEPTION")
    if owed is None:
        return None
    header, original_control_id, endpoint, what = owed
    error = None
    if not accepted:
        error = ZamError(
            code=error_code or "UNKNOWN",
            text=error_text or "refused by the DMP",
            coding_system=DMP_ERROR_SYSTEM,
        )
    message = build_zam_z01(
        header, original_control_id=original_control_id, accepted=accepted, now=now, error=error
    )
    return OutboundHl7(
        endpoint, message, header.control_id, f"ZAM^Z01 {'Y' if accepted else 'N'} {what}"
    )


def mss_business_ack(
    session: Session,
    outbound: OutboundSettings,
    delivery_id: int,
    *,
    read: bool,
    success: bool,
    now: datetime,
    party: str = "",
    error_code: str = "",
    error_text: str = "",
) -> OutboundHl7 | None:
    """ZAM^Z02 (a DSN: the recipient's server took the mail, or SMTP error `error_code`)
    or, with `read`, ZAM^Z03 (an MDN: the mail was read/processed by `party`), or None.

    Owed under ACK_RECEPTION (Z02) or ACK_LECTURE_MSS (Z03), for transmission-volet
    messages, when `outbound.business_acks` has an endpoint for the sender.
    """
    event, flag = ("Z03", "ACK_LECTURE_MSS") if read else ("Z02", "ACK_RECEPTION")
    owed = _owed(session, outbound, delivery_id, event, ("mss_pro", "mss_patient"), flag)
    if owed is None:
        return None
    header, original_control_id, endpoint, what = owed
    address = owed_address = party or _recipient(session, delivery_id)
    error = None
    if not success:
        error = ZamError(
            code=error_code or ("554" if not read else "906"),
            text=error_text or ("delivery failed" if not read else "processing failed"),
            coding_system=READ_ERROR_SYSTEM if read else SMTP_ERROR_SYSTEM,
        )
    if read:
        message = build_zam_z03(
            header,
            original_control_id=original_control_id,
            processed=success,
            reader=address,
            now=now,
            error=error,
        )
    else:
        message = build_zam_z02(
            header,
            original_control_id=original_control_id,
            delivered=success,
            recipient=owed_address,
            now=now,
            error=error,
        )
    return OutboundHl7(
        endpoint,
        message,
        header.control_id,
        f"ZAM^{event} {'Y' if success else 'N'} {what} ({address})",
    )


def _owed(
    session: Session,
    outbound: OutboundSettings,
    delivery_id: int,
    event: str,
    destinations: tuple[str, ...],
    flag: str,
) -> tuple[ReplyHeader, str, MllpEndpoint, str] | None:
    found = _delivery(session, delivery_id)
    if found is None:
        raise ValueError(f"no delivery {delivery_id}")
    delivery, version, document, routing = found
    if delivery.destination not in destinations or delivery.revision != 0:
        log.debug("delivery %d: no ZAM^%s (not the delivery the sender asked)", delivery_id, event)
        return None
    meta = DocumentMeta.from_json(version.meta)
    if version.way != "transmission" or meta.message is None:
        log.debug("delivery %d: no ZAM^%s (not a transmission-volet message)", delivery_id, event)
        return None
    acks = (routing.decision if routing is not None else {}).get("acks", {})
    if not acks.get(flag, {}).get("value", False):
        log.debug("delivery %d: no ZAM^%s (%s=N)", delivery_id, event, flag)
        return None
    original = meta.message
    endpoint = outbound.reply_endpoint(
        source=document.source,
        sending_application=original.sending_application,
        sending_facility=original.sending_facility,
    )
    if endpoint is None:
        log.info(
            "delivery %d: ZAM^%s owed to %s|%s but outbound.business_acks has no endpoint for it",
            delivery_id,
            event,
            original.sending_application,
            original.sending_facility,
        )
        return None
    header = ReplyHeader(
        sending_application=outbound.application,
        sending_facility=outbound.facility,
        receiving_application=endpoint.receiving_application or original.sending_application,
        receiving_facility=endpoint.receiving_facility or original.sending_facility,
        control_id=ack_control_id(),
        processing_id=original.processing_id or outbound.processing_id,
        charset=outbound.charset,
    )
    what = f"for message {original.control_id} ({document.set_id} v{version.version})"
    return header, original.control_id, endpoint, what


def _recipient(session: Session, delivery_id: int) -> str:
    delivery = session.get(Delivery, delivery_id)
    return delivery.recipient if delivery is not None else ""


def masking_report(
    session: Session, outbound: OutboundSettings, version_id: int, *, now: datetime
) -> OutboundHl7 | None:
    """The ORU with masking data for one document version, or None when the DPI feed is
    not configured or the version was not routed."""
    settings = outbound.masking_oru
    if settings is None:
        return None
    version = session.get(DocumentVersion, version_id)
    if version is None:
        raise ValueError(f"no document version {version_id}")
    document = version.document
    routing = session.scalar(select(Routing).where(Routing.document_version_id == version_id))
    if routing is None:
        log.debug("version %d not routed: no masking ORU", version_id)
        return None
    patient = session.get(Patient, document.patient_id) if document.patient_id else None
    if patient is None:
        log.info("version %d has no patient: no masking ORU", version_id)
        return None
    meta = DocumentMeta.from_json(version.meta)
    masking = routing.decision.get("masking", {})
    control_id = ack_control_id()
    report = MaskingReport(
        patient=_oru_patient(session, patient),
        action=version.action.lower(),
        document_uid=version.document_uid or document.set_id,
        type_code=document.document_code or document.document_type,
        type_display=document.title,
        placer_order=meta.orders.placer,
        filler_order=meta.orders.filler,
        masking=DocumentMasking(
            masque_ps=_flag(masking, "MASQUE_PS"),
            invisible_patient=_flag(masking, "INVISIBLE_PATIENT"),
            invisible_rep_legaux=_flag(masking, "INVISIBLE_REPRESENTANTS_LEGAUX"),
            connexion_secrete=bool(masking.get("connexion_secrete", False)),
        ),
        destinations=_statuses(session, version_id),
        cda=version.cda if settings.include_cda else None,
    )
    message = build_masking_oru(
        report,
        ReplyHeader(
            sending_application=outbound.application,
            sending_facility=outbound.facility,
            receiving_application=settings.receiving_application,
            receiving_facility=settings.receiving_facility,
            control_id=control_id,
            processing_id=outbound.processing_id,
            charset=outbound.charset,
        ),
        now=now,
    )
    return OutboundHl7(
        endpoint=settings,
        message=message,
        control_id=control_id,
        description=f"masking ORU for {document.set_id} v{version.version}",
    )


def _delivery(
    session: Session, delivery_id: int
) -> tuple[Delivery, DocumentVersion, Document, Routing | None] | None:
    row = session.execute(
        select(Delivery, DocumentVersion, Document)
        .join(DocumentVersion, Delivery.document_version_id == DocumentVersion.id)
        .join(Document, DocumentVersion.document_id == Document.id)
        .where(Delivery.id == delivery_id)
        .options(defer(DocumentVersion.cda), defer(DocumentVersion.pdf))
    ).one_or_none()
    if row is None:
        return None
    delivery, version, document = row
    routing = session.scalar(select(Routing).where(Routing.document_version_id == version.id))
    return delivery, version, document, routing


def _statuses(session: Session, version_id: int) -> tuple[DestinationStatus, ...]:
    """Each destination once, as its latest act says (a masking update after the copy)."""
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.document_version_id == version_id)
        .order_by(Delivery.destination, Delivery.recipient, Delivery.revision)
    ).all()
    latest: dict[tuple[str, str], Delivery] = {}
    for row in rows:
        latest[(row.destination, row.recipient)] = row
    out = []
    for row in latest.values():
        reason = row.refusal_reason or ""
        if row.status == "held":
            reason = "; ".join(h.get("reason", "") for h in (row.request or {}).get("holds", []))
        out.append(
            DestinationStatus(
                kind=row.destination,
                status=row.status,
                address=row.recipient if row.destination != "dmp" else "",
                reason=reason or (row.last_error or "" if row.status == "failed" else ""),
                at=row.delivered_at or row.updated_at,
            )
        )
    return tuple(out)


def _oru_patient(session: Session, patient: Patient) -> OruPatient:
    ids: list[OruPatientId] = []
    if patient.qualified and patient.ins:
        oid = patient.ins_oid or ""
        ids.append(
            OruPatientId(patient.ins, oid, INS_AUTHORITY_NAMES.get(oid, "ASIP-SANTE-INS"), "INS")
        )
    for ident in session.scalars(
        select(PatientIdentifier).where(PatientIdentifier.patient_id == patient.id)
    ):
        if ident.type_code == "INS" or ident.authority_oid in INS_OIDS:
            continue
        ids.append(
            OruPatientId(ident.value, ident.authority_oid, ident.authority, ident.type_code or "PI")
        )
    return OruPatient(
        ids=tuple(ids),
        family=patient.birth_name or patient.used_name,
        given=patient.first_name,
        birth_date=patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        sex=patient.sex,
        identity_status=patient.identity_status,
    )


def _flag(masking: dict[str, object], name: str) -> bool:
    flag = masking.get(name)
    return bool(flag.get("value")) if isinstance(flag, dict) else False
