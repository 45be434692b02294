"""Operator acts on the queue of HL7 replies (`outbound_messages`): kept apart from the
sender so that the CLI imports no metric objects (the engine enables multi-process
metrics before any is created)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pfi.console.audit import record_audit
from pfi.console.roles import Principal
from pfi.store.models import OutboundMessage, utcnow


class OutboundRetryRefused(Exception):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def retry_message(
    session: Session, message_id: int, *, actor: Principal | str, reason: str
) -> OutboundMessage:
    """Send a dead or failed message again now, attempts reset; audited."""
    row = session.get(OutboundMessage, message_id)
    if row is None:
        raise OutboundRetryRefused(f"no outbound message {message_id}", 404)
    if row.status not in ("dead", "failed"):
        why = "it was sent" if row.status == "sent" else "it is already waiting to be sent"
        raise OutboundRetryRefused(
            f"outbound message {message_id} ({row.kind}, {row.status}) is not retried: {why}"
        )
    previous = {"status": row.status, "attempts": row.attempts, "last_error": row.last_error}
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = None
    row.updated_at = utcnow()
    record_audit(
        session,
        actor,
        "outbound.retry",
        "outbound_message",
        row.id,
        reason=reason,
        details={"kind": row.kind, "endpoint": f"{row.host}:{row.port}", **previous},
    )
    return row
