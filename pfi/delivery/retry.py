"""Failed deliveries go again when their time comes: the retry scheduler, and the
requeue used for a row an operator sends again.

A failed row waits with `next_attempt_at`. The scheduler (a thread of each delivery
stage, started by its `open()`) looks every `delivery.retry_poll_s` for due rows of its
destinations, puts them back to pending and queues their delivery request through the
outbox in the same transaction, the record routing published first with `attempt` = the
attempts made so far. The relay publishes it and the stage consumes it like any other.
On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several worker processes share the work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.bus.outbox import OutgoingRecord, add_to_outbox
from pfi.bus.topics import Topic
from pfi.store.db import Database
from pfi.store.models import Delivery, Document, DocumentVersion, Routing, utcnow

log = logging.getLogger(__name__)


def delivery_records(
    session: Session, rows: Sequence[Delivery], topic: Topic
) -> list[OutgoingRecord]:
    """The delivery requests (delivery.avsc) of `rows`, as `LedgerWriter.publish` writes
    them: keyed by the patient so that one patient's deliveries stay in order."""
    version_ids = {r.document_version_id for r in rows}
    facts = {
        row[0]: row[1:]
        for row in session.execute(
            select(
                DocumentVersion.id,
                DocumentVersion.document_id,
                DocumentVersion.action,
                Document.patient_id,
                Routing.patient_key,
                Routing.received_at,
            )
            .join(Document, DocumentVersion.document_id == Document.id)
            .outerjoin(Routing, Routing.document_version_id == DocumentVersion.id)
            .where(DocumentVersion.id.in_(version_ids))
        )
    }
    out = []
    for row in rows:
        document_id, action, patient_id, patient_key, received_at = facts[row.document_version_id]
        key = patient_key or f"patient-{patient_id}"
        out.append(
            OutgoingRecord(
                topic,
                key.encode(),
                {
                    "delivery_id": row.id,
                    "document_id": document_id,
                    "version_id": row.document_version_id,
                    "destination": row.destination,
                    "action": action,
                    "patient_key": key,
                    "attempt": row.attempts,
                    "received_at": received_at or row.created_at,
                },
                None,
            )
        )
    return out


def queue_due(
    session: Session,
    topic: Topic,
    destinations: Iterable[str],
    now: datetime,
    *,
    limit: int = 200,
    skip_locked: bool = False,
    stale_before: datetime | None = None,
) -> list[int]:
    """Put due failed rows back to pending and queue their requests; their ids.

    With `stale_before`, also pending or sending rows untouched since then: their request
    was lost (a topic nobody consumed when routing published it, a broker that lost it)
    or a worker died mid-call without the request coming back. A second request for a
    row is harmless: the stage plans by the row's status."""
    due = (Delivery.status == "failed") & (Delivery.next_attempt_at <= now)
    if stale_before is not None:
        due = due | (
            Delivery.status.in_(("pending", "sending")) & (Delivery.updated_at <= stale_before)
        )
    query = (
        select(Delivery)
        .where(due, Delivery.destination.in_(list(destinations)))
        .order_by(Delivery.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    if not rows:
        return []
    for row in rows:
        if row.status == "failed":
            row.status = "pending"
        row.next_attempt_at = None
        row.updated_at = now
    add_to_outbox(session, delivery_records(session, rows, topic))
    return [r.id for r in rows]


class RetryScheduler:
    """Queues due failed deliveries of some destinations again, every `poll_s`."""

    def __init__(
        self,
        db: Database,
        topic: Topic,
        destinations: frozenset[str],
        *,
        poll_s: float = 1.0,
        stale_after_s: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stale_after = timedelta(seconds=stale_after_s) if stale_after_s else None
        self._db = db
        self._topic = topic
        self._destinations = destinations
        self._poll_s = poll_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queued_total = 0

    def start(self) -> None:
        if self._thread is not None or not self._destinations:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"retry-{self._topic.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run_once(self) -> list[int]:
        """Queue what is due now (public for tests and the CLI)."""
        now = self._clock()
        stale_before = now - self._stale_after if self._stale_after else None
        condition = (Delivery.status == "failed") & (Delivery.next_attempt_at <= now)
        if stale_before is not None:
            condition = condition | (
                Delivery.status.in_(("pending", "sending")) & (Delivery.updated_at <= stale_before)
            )
        with self._db.reader() as session:
            due = session.scalar(
                select(Delivery.id)
                .where(condition, Delivery.destination.in_(list(self._destinations)))
                .limit(1)
            )
        if due is None:  # the common case takes no write lock (SQLite has one)
            return []
        with self._db.transaction() as session:
            ids = queue_due(
                session,
                self._topic,
                self._destinations,
                now,
                skip_locked=not self._db.is_sqlite,
                stale_before=stale_before,
            )
        if ids:
            self.queued_total += len(ids)
            log.info("queued %d failed deliveries again: %s", len(ids), ids[:20])
        return ids

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.run_once()
            except Exception as exc:
                log.warning("retry scheduler for %s: %s; will retry", self._topic.name, exc)


def requeue(session: Session, row: Delivery, topic: Topic, now: datetime | None = None) -> None:
    """Send a failed or dead-lettered delivery again (an operator's replay): back to
    pending with its attempts reset, its request queued in the caller's transaction. The
    stage skips a request whose row ended, so a replay must go through here."""
    if row.status not in ("failed", "dead_letter", "pending"):
        raise ValueError(f"delivery {row.id} is {row.status}: only failed or dead_letter go again")
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = None
    row.updated_at = now or utcnow()
    add_to_outbox(session, delivery_records(session, [row], topic))
