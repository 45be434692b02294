"""Handing one kept document to the DPI: claim it, find its patient, send the MDM, record
the DPI's answer.

Three short steps, the network call outside any transaction:
1. claim (pending → sending, attempts + 1) and prepare: match the patient (or take the
   one an operator assigned), build the MDM with its control id; no patient → ko;
2. send over MLLP and read the ACK;
3. record: AA → integrated; AE/AR → ko with the DPI's text; the DPI unreachable (no
   connection, no ACK) → pending again, sent at the next poll. A crash between 2 and 3
   leaves the row `sending`: after `resend_after_s` it is sent again (at-least-once; the
   DPI recognises a document it already filed by its id, TXA-12).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from pfi.adapters.mllp import MllpClient, MllpError
from pfi.inbound.config import InboundConfig
from pfi.inbound.matching import NoMatch, match_patient
from pfi.inbound.reception import document_at
from pfi.observability import metrics
from pfi.store import Database
from pfi.store.models import InboundDocumentRow, InboundMail, Patient, utcnow
from pfi.transforms.hl7.ack_read import read_ack
from pfi.transforms.hl7.mdm import MdmHeader, MdmPatientId, build_mdm_t02
from pfi.transforms.hl7.outgoing import ReplyHeader
from pfi.transforms.mssante.inbound import InboundDocument
from pfi.transforms.mssante.to_mdm import for_local_patient, mdm_input_from_inbound

log = logging.getLogger(__name__)

Outcome = str  # "integrated" | "ko" | "pending" | "skipped"


@dataclass(frozen=True, slots=True)
class _Prepared:
    row_id: int
    control_id: str
    message: bytes


class DpiLink:
    """One MLLP connection to the DPI, reused for the documents of a poll.

    A DPI that closes idle or used connections is common: a send that fails on a reused
    connection is tried once more on a fresh one before the DPI counts as unreachable.
    """

    def __init__(self, cfg: InboundConfig) -> None:
        self.endpoint = cfg.dpi
        self._client: MllpClient | None = None

    def send(self, message: bytes) -> bytes:
        for fresh in (self._client is None, True):
            if self._client is None:
                e = self.endpoint
                self._client = MllpClient(e.host, e.port, timeout_s=e.timeout_s)
                self._client.connect()
            try:
                return self._client.send(message)
            except (MllpError, OSError):
                self.close()
                if fresh:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> DpiLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def integrate(
    db: Database, cfg: InboundConfig, row_id: int, link: DpiLink | None = None
) -> Outcome:
    """Try to integrate one document; "skipped" when another poller holds it."""
    now = utcnow()
    with db.transaction() as session:
        if not _claim(session, row_id, now, cfg.resend_after_s):
            return "skipped"
        row = session.get(InboundDocumentRow, row_id)
        assert row is not None
        prepared = _prepare(session, cfg, row, now)
        if prepared is None:
            metrics.record_inbound_document("ko")
            return "ko"
    own = link is None
    link = link if link is not None else DpiLink(cfg)
    try:
        answer = link.send(prepared.message)
    except (MllpError, OSError) as exc:
        _record(db, prepared, status="pending", last_error=str(exc))
        log.warning("inbound document %d: DPI unreachable, retried next poll: %s", row_id, exc)
        metrics.record_inbound_document("retry")
        return "pending"
    finally:
        if own:
            link.close()
    ack = read_ack(answer)
    if ack.accepted:
        _record(db, prepared, status="integrated", ack_code=ack.code, ack_text=ack.text)
        metrics.record_inbound_document("integrated")
        return "integrated"
    reason = f"DPI answered {ack.code or '(no code)'}: {ack.text or 'no reason given'}"
    _record(db, prepared, status="ko", ack_code=ack.code[:4], ack_text=ack.text, reason=reason)
    metrics.record_inbound_document("ko")
    return "ko"


def _claim(session: Session, row_id: int, now: datetime, resend_after_s: float) -> bool:
    stale = now - timedelta(seconds=resend_after_s)
    T = InboundDocumentRow
    claimed = session.execute(
        update(T)
        .where(
            T.id == row_id,
            or_(T.status == "pending", and_(T.status == "sending", T.updated_at < stale)),
        )
        .values(status="sending", attempts=T.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def _prepare(
    session: Session, cfg: InboundConfig, row: InboundDocumentRow, now: datetime
) -> _Prepared | None:
    """The MDM to send, or None after marking the row ko (no patient, unreadable)."""
    session.refresh(row)
    mail = session.get(InboundMail, row.mail_id)
    assert mail is not None
    try:
        doc = document_at(mail.raw, row.attachment_key)
    except (LookupError, ValueError) as exc:
        _ko(row, f"document cannot be read again from the kept mail: {exc}", now)
        return None
    if not isinstance(doc, InboundDocument):
        _ko(row, doc.reason, now)
        return None
    patient: Patient | None = None
    if row.patient_id is not None and row.matched_by == "operator":
        patient = _survivor(session, row.patient_id)
        if patient is None:
            _ko(row, f"assigned patient {row.patient_id} no longer exists", now)
            return None
    else:
        found = match_patient(session, doc.header.patient)
        if isinstance(found, NoMatch):
            _ko(row, found.reason, now)
            return None
        patient, row.matched_by = found.patient, found.matched_by
    row.patient_id = patient.id
    control_id = f"PFIMSS{row.id}.{row.attempts}"
    try:
        message = build_message(cfg, doc, patient, control_id, now)
    except ValueError as exc:
        _ko(row, f"MDM cannot be built: {exc}", now)
        return None
    row.mdm_control_id = control_id
    return _Prepared(row.id, control_id, message)


def build_message(
    cfg: InboundConfig, doc: InboundDocument, patient: Patient, control_id: str, now: datetime
) -> bytes:
    header = MdmHeader(
        ReplyHeader(
            sending_application=cfg.sending_application,
            sending_facility=cfg.sending_facility,
            receiving_application=cfg.dpi.receiving_application,
            receiving_facility=cfg.dpi.receiving_facility,
            control_id=control_id,
            processing_id=cfg.processing_id,
        ),
        message_datetime=now.strftime("%Y%m%d%H%M%S+0000"),
    )
    data = mdm_input_from_inbound(doc, header)
    ins = None
    if patient.qualified and patient.ins:
        ins = MdmPatientId(patient.ins, patient.ins_oid or doc.ins_oid, type_code="INS")
    local = tuple(
        MdmPatientId(i.value, i.authority_oid, i.authority, "PI")
        for i in patient.identifiers
        if i.type_code.upper() != "INS"
    )
    return build_mdm_t02(
        for_local_patient(data, local_ids=local, ins=ins, identity_status=patient.identity_status)
    )


def _record(
    db: Database,
    prepared: _Prepared,
    *,
    status: str,
    last_error: str | None = None,
    ack_code: str | None = None,
    ack_text: str | None = None,
    reason: str | None = None,
) -> None:
    now = utcnow()
    T = InboundDocumentRow
    values: dict[str, object] = {"status": status, "updated_at": now}
    if status == "pending":
        values["last_error"] = last_error
    else:
        values |= {"sent_at": now, "dpi_ack_code": ack_code, "dpi_ack_text": ack_text}
    if status == "integrated":
        values |= {"integrated_at": now, "reason": None, "last_error": None}
    if status == "ko":
        values["reason"] = reason
    with db.transaction() as session:
        session.execute(
            update(T)
            .where(
                T.id == prepared.row_id,
                T.status == "sending",
                T.mdm_control_id == prepared.control_id,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _ko(row: InboundDocumentRow, reason: str, now: datetime) -> None:
    row.status = "ko"
    row.reason = reason
    row.updated_at = now


def _survivor(session: Session, patient_id: int) -> Patient | None:
    patient = session.get(Patient, patient_id)
    for _ in range(32):
        if patient is None or patient.merged_into_id is None:
            return patient
        patient = session.get(Patient, patient.merged_into_id)
    return patient
