"""The KO worklist: documents received by MSSanté that PFI could not integrate alone.

An operator resolves each one, with a reason that goes to the audit trail:
- assign: "this is patient X" (by IPP or INS) — the document goes back to pending with
  that patient, and the caller integrates it at once (`pfi.inbound.integration`);
- retry: the cause is fixed elsewhere (the patient now exists, the DPI unlocked the
  record) — back to pending, matched again (an operator's earlier assignment is kept);
- reject: it will not be integrated (spam, wrong establishment, duplicate).

The functions only change the store, in the caller's transaction, with the audit entry
in the same transaction; the caller sends (after commit) and answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from pfi.console.audit import record_audit
from pfi.console.roles import Principal
from pfi.identity.queries import find_patients
from pfi.store.models import InboundDocumentRow, InboundMail, Patient, utcnow

TARGET = "inbound_document"


class WorklistError(Exception):
    """An act the worklist refuses; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class InboundItem:
    """A document received by MSSanté, and what became of it (what the worklist and
    `/api/inbound/ko` show)."""

    id: int
    status: str  # pending, sending, integrated, ko, rejected
    #: why it is KO: no patient found (and why), unreadable, or the DPI's refusal
    reason: str | None
    error_code: str  # CI-SIS applicationErrorCondition of an unreadable mail: 903, 905, 906
    attachment_key: str
    document_uid: str
    document_title: str
    ins: str
    patient_id: int | None
    matched_by: str  # ins, traits or operator
    attempts: int
    last_error: str | None
    mdm_control_id: str | None
    sent_at: datetime | None
    dpi_ack_code: str | None
    dpi_ack_text: str | None
    integrated_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    created_at: datetime
    updated_at: datetime
    mail_id: int
    message_id: str
    sender: str
    subject: str
    received_at: datetime


STATUSES = ("ko", "pending", "sending", "integrated", "rejected")


def list_ko(
    session: Session, *, before_id: int | None = None, limit: int = 100, status: str = "ko"
) -> list[InboundItem]:
    """KO documents (or those of another status), newest first; page on with
    `before_id` = the last id seen."""
    if status not in STATUSES:
        raise WorklistError(422, f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    query = _items().where(InboundDocumentRow.status == status)
    if before_id is not None:
        query = query.where(InboundDocumentRow.id < before_id)
    rows = session.execute(query.order_by(InboundDocumentRow.id.desc()).limit(limit)).all()
    return [_item(d, m) for d, m in rows]


def get_item(session: Session, document_id: int) -> InboundItem:
    row = session.execute(_items().where(InboundDocumentRow.id == document_id)).first()
    if row is None:
        raise WorklistError(404, f"no inbound document {document_id}")
    return _item(*row)


def assign(
    session: Session,
    document_id: int,
    patient_key: str,
    *,
    actor: Principal | str,
    reason: str,
) -> Patient:
    """Attach a KO document to the patient whose IPP or INS is `patient_key`."""
    row = _ko_row(session, document_id, "assigned")
    found = find_patients(session, patient_key.strip())
    if not found:
        raise WorklistError(422, f"no patient has IPP or INS {patient_key!r}")
    if len(found) > 1:
        ids = ", ".join(str(p.id) for p in found)
        raise WorklistError(
            422, f"{len(found)} patients have IPP or INS {patient_key!r} ({ids}): name one by IPP"
        )
    patient = found[0]
    _resolve(row, actor, reason, status="pending")
    row.patient_id, row.matched_by = patient.id, "operator"
    record_audit(
        session,
        actor,
        f"{TARGET}.assign",
        TARGET,
        document_id,
        reason=reason,
        details={"patient_id": patient.id, "patient_key": patient_key, "was": row.reason},
    )
    return patient


def retry(session: Session, document_id: int, *, actor: Principal | str, reason: str) -> None:
    """Match again and send again (the patient is found anew)."""
    row = _ko_row(session, document_id, "retried")
    was = row.reason
    _resolve(row, actor, reason, status="pending")
    if row.matched_by != "operator":
        row.patient_id, row.matched_by = None, ""
    record_audit(
        session, actor, f"{TARGET}.retry", TARGET, document_id, reason=reason, details={"was": was}
    )


def reject(session: Session, document_id: int, *, actor: Principal | str, reason: str) -> None:
    """Close a KO document without integrating it."""
    row = _ko_row(session, document_id, "rejected")
    was = row.reason
    _resolve(row, actor, reason, status="rejected")
    record_audit(
        session,
        actor,
        f"{TARGET}.reject",
        TARGET,
        document_id,
        reason=reason,
        details={"was": was},
    )


def _ko_row(session: Session, document_id: int, verb: str) -> InboundDocumentRow:
    row = session.get(InboundDocumentRow, document_id, with_for_update=True)
    if row is None:
        raise WorklistError(404, f"no inbound document {document_id}")
    if row.status != "ko":
        raise WorklistError(
            409, f"inbound document {document_id} is {row.status}, only a KO one can be {verb}"
        )
    return row


def _resolve(row: InboundDocumentRow, actor: Principal | str, reason: str, *, status: str) -> None:
    if len(reason.strip()) < 3:
        raise WorklistError(422, "a reason of a few words is required (it is audited)")
    now = utcnow()
    row.status = status
    row.resolved_by = (actor.name if isinstance(actor, Principal) else actor)[:200]
    row.resolved_at = now
    row.resolution = reason.strip()
    row.updated_at = now


def _items() -> Select[tuple[InboundDocumentRow, InboundMail]]:
    return select(InboundDocumentRow, InboundMail).join(
        InboundMail, InboundMail.id == InboundDocumentRow.mail_id
    )


def _item(d: InboundDocumentRow, m: InboundMail) -> InboundItem:
    return InboundItem(
        id=d.id,
        status=d.status,
        reason=d.reason,
        error_code=d.error_code,
        attachment_key=d.attachment_key,
        document_uid=d.document_uid,
        document_title=d.document_title,
        ins=d.ins,
        patient_id=d.patient_id,
        matched_by=d.matched_by,
        attempts=d.attempts,
        last_error=d.last_error,
        mdm_control_id=d.mdm_control_id,
        sent_at=d.sent_at,
        dpi_ack_code=d.dpi_ack_code,
        dpi_ack_text=d.dpi_ack_text,
        integrated_at=d.integrated_at,
        resolved_by=d.resolved_by,
        resolved_at=d.resolved_at,
        resolution=d.resolution,
        created_at=d.created_at,
        updated_at=d.updated_at,
        mail_id=m.id,
        message_id=m.message_id,
        sender=m.sender,
        subject=m.subject,
        received_at=m.received_at,
    )
