"""Releasing a document version held for unmapped LOINC codes.

What an operator does when `pfi loinc unmapped` shows a code and a document waits:

1. the lab's biologists add the code to `config/loinc/<SOURCE>.csv` (the documents stage
   reloads the file when it changes: no restart);
2. the operator releases the hold (`pfi documents release VERSION_ID --reason ...`, or
   the holds API, which calls `release_unmapped_hold` and records the audit entry in the
   same transaction);
3. the release puts the version's original message back on the inbound topic (through
   the outbox, like intake does); the documents stage sees a message whose version is
   held with no open hold and rebuilds that same version in place (same version number
   and document id, current mapping), validates it and publishes it, or holds it again
   with a new hold if a code is still unmapped.

`keep_local=True` is the other way out: send the document with the local codes (the
CR-BIO carries the local code as a translation, the 2024.01 "non LOINC" form) without
waiting for the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from pfi.bus.outbox import OutgoingRecord, add_to_outbox
from pfi.bus.topics import INBOUND
from pfi.documents.repository import HELD, HOLD_UNMAPPED, close_holds
from pfi.store.models import DocumentVersion, Hold, Message
from pfi.transforms.hl7 import read_header


class ReleaseRefused(ValueError):
    """The version cannot be released that way (not held, no open hold, no message)."""


@dataclass(frozen=True, slots=True)
class ReleasedHold:
    version_id: int
    holds_released: int
    message_id: int
    keep_local: bool


def release_unmapped_hold(
    session: Session,
    version_id: int,
    *,
    actor: str,
    reason: str,
    keep_local: bool = False,
) -> ReleasedHold:
    """Release the open unmapped-code hold of a held version and have it rebuilt.

    Call inside a write transaction; the caller records the audit entry in it.
    """
    if not reason.strip():
        raise ReleaseRefused("a release needs a reason (it goes into the audit trail)")
    version = session.get(DocumentVersion, version_id)
    if version is None:
        raise ReleaseRefused(f"no document version {version_id}")
    if version.status != HELD:
        raise ReleaseRefused(
            f"document version {version_id} is {version.status}, not held: nothing to release"
        )
    if version.message_id is None:
        raise ReleaseRefused(f"document version {version_id} has no originating message")
    released = close_holds(session, version.id, HOLD_UNMAPPED, by=actor, reason=reason)
    if not released:
        raise ReleaseRefused(
            f"document version {version_id} has no open unmapped-code hold (already released: "
            "its rebuild is on its way)"
        )
    if keep_local:
        version.meta = {**(version.meta or {}), "release_policy": "keep_local"}
    message = session.get(Message, version.message_id)
    if message is None:
        raise ReleaseRefused(f"message {version.message_id} of version {version_id} is gone")
    add_to_outbox(session, [inbound_record_of(message)])
    return ReleasedHold(version.id, released, message.id, keep_local)


def release_unmapped_hold_by_id(
    session: Session, hold_id: int, *, actor: str, reason: str, keep_local: bool = False
) -> ReleasedHold:
    """The same, from a hold id (what a holds API lists): only kind unmapped_code."""
    hold = session.get(Hold, hold_id)
    if hold is None:
        raise ReleaseRefused(f"no hold {hold_id}")
    if hold.kind != HOLD_UNMAPPED:
        raise ReleaseRefused(f"hold {hold_id} is a {hold.kind} hold, not {HOLD_UNMAPPED}")
    if hold.released_at is not None:
        raise ReleaseRefused(f"hold {hold_id} was already released")
    return release_unmapped_hold(
        session, hold.document_version_id, actor=actor, reason=reason, keep_local=keep_local
    )


def inbound_record_of(message: Message) -> OutgoingRecord:
    """The inbound record intake published for `message`, published again."""
    header = read_header(message.raw, message.charset or "8859/1")
    patient_key = header.patient_key()
    return OutgoingRecord(
        INBOUND,
        f"{header.sender}|{patient_key}".encode(),
        {
            "message_id": message.id,
            "source": message.source,
            "sender": header.sender,
            "control_id": header.control_id,
            "message_type": header.message_type,
            "version": header.version,
            "charset": header.charset,
            "patient_key": patient_key,
            "received_at": message.received_at,
            "raw": message.raw,
        },
        correlation_id=f"{header.sender}|{header.control_id}",
    )
