"""The transactional outbox: what a stage stores, it will publish, exactly once in effect.

A stage adds its outgoing records to the `outbox` table in the transaction that stores
its state; the relay publishes them afterwards and marks them published. A crash in
between means publishing again, which consumers absorb (they keep an inbox of the event
ids they applied, `processed_events`). Records stay "unfinished" until every consumer
group of their topic has applied them: a restart of the memory-only embedded broker
re-publishes exactly those.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import exists, func, select, text, update
from sqlalchemy.orm import Session

from pfi.bus import codec
from pfi.bus.topics import Topic
from pfi.store.db import Database
from pfi.store.ids import fast_insert
from pfi.store.models import OutboxEvent, ProcessedEvent, utcnow

log = logging.getLogger(__name__)

#: Kafka headers every PFI record carries.
EVENT_ID_HEADER = "pfi-event-id"
SCHEMA_HEADER = "pfi-schema"
CORRELATION_HEADER = "pfi-correlation-id"

#: Arbitrary but fixed key of the PostgreSQL advisory lock that elects one relay.
_RELAY_LOCK_KEY = 0x5046_4952  # "PFIR"


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: Topic
    key: bytes
    record: dict[str, Any]
    correlation_id: str | None = None


def outbox_row(out: OutgoingRecord) -> dict[str, Any]:
    """The row values for one outgoing record (for bulk inserts)."""
    return {
        "topic": out.topic.name,
        "key": out.key,
        "value": codec.encode(out.topic.schema, out.record),
        "schema": codec.schema_header(out.topic.schema),
        "correlation_id": out.correlation_id,
        "created_at": utcnow(),
    }


def add_to_outbox(session: Session, records: Iterable[OutgoingRecord]) -> None:
    """Queue records for publication inside the caller's transaction."""
    rows = [outbox_row(r) for r in records]
    if rows:
        fast_insert(session, OutboxEvent.__table__, rows)


class OutboxRelay:
    """Publishes outbox rows in id order, in batches, and marks them published.

    One relay per database is active at a time (on PostgreSQL an advisory lock elects
    it), which keeps the per-key order of the outbox on the topics.
    """

    def __init__(
        self,
        db: Database,
        producer_factory: Callable[[], KafkaProducer],
        topic_prefix: str,
        *,
        batch_size: int = 1000,
        poll_interval_s: float = 0.25,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._producer_factory = producer_factory
        self._producer: KafkaProducer | None = None
        self._prefix = topic_prefix
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._on_published = on_published
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_conn: Any = None
        self.published_total = 0
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Something was committed to the outbox: publish now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish what is pending (within the timeout), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # closing after a broker loss may fail; nothing left to do
                log.debug("producer close failed", exc_info=True)
            self._producer = None
        self._release_leadership()

    # -- work ----------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while True:
            stopping = self._stop.is_set()
            try:
                published = self.publish_pending()
                backoff = 0.5
                self.last_error = None
            except Exception as exc:  # broker or database trouble: retry, never give up
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox relay: %s; retrying in %.1fs", self.last_error, backoff)
                self._reset_producer()
                if stopping:
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if stopping and published == 0:
                return
            if published < self._batch_size and not stopping:
                self._wake.wait(self._poll_interval_s)
                self._wake.clear()

    def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        if not self._is_leader():
            return 0
        with self._db.reader() as session:
            rows = session.execute(
                select(
                    OutboxEvent.id,
                    OutboxEvent.topic,
                    OutboxEvent.key,
                    OutboxEvent.value,
                    OutboxEvent.schema,
                    OutboxEvent.correlation_id,
                )
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(self._batch_size)
            ).all()
        if not rows:
            return 0
        producer = self._ensure_producer()
        futures = []
        for row in rows:
            headers = [
                (EVENT_ID_HEADER, str(row.id).encode()),
                (SCHEMA_HEADER, row.schema.encode()),
            ]
            if row.correlation_id:
                headers.append((CORRELATION_HEADER, row.correlation_id.encode()))
            futures.append(
                producer.send(
                    f"{self._prefix}.{row.topic}", key=row.key, value=row.value, headers=headers
                )
            )
        producer.flush()
        for fut in futures:
            fut.get(timeout=0)  # raises the broker's error if any record failed
        ids = [row.id for row in rows]
        with self._db.transaction() as session:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None))
                .values(published_at=utcnow())
            )
        self._db.let_other_writers_in()
        self.published_total += len(ids)
        if self._on_published is not None:
            self._on_published(len(ids))
        return len(ids)

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._producer_factory()
        return self._producer

    def _reset_producer(self) -> None:
        """After a failure, start over with a fresh producer (a restarted broker does not
        know the old producer id; kafka-python would refuse every send otherwise)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=1)
            except Exception:
                log.debug("producer close failed", exc_info=True)

    def _is_leader(self) -> bool:
        if self._db.is_sqlite:
            return True  # SQLite: one engine process per database file
        if self._lock_conn is None:
            conn = self._db.engine.connect()
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": _RELAY_LOCK_KEY}
            ).scalar()
            conn.commit()
            if not got:
                conn.close()
                return False
            self._lock_conn = conn
        return True

    def _release_leadership(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _RELAY_LOCK_KEY})
                conn.close()
            except Exception:
                log.debug("advisory unlock failed", exc_info=True)


def mark_completed(
    db: Database, consumers_by_topic: Mapping[str, Iterable[str]], limit: int = 5000
) -> int:
    """Flag published rows that every consumer group of their topic has applied.

    The search runs in a read snapshot (no write lock); only the short UPDATE of the ids
    found takes the lock, so this bookkeeping never makes intake wait behind it.
    """
    total = 0
    for topic, consumers in consumers_by_topic.items():
        while True:
            with db.reader() as session:
                ids = list(
                    session.scalars(
                        select(OutboxEvent.id)
                        .where(
                            OutboxEvent.topic == topic,
                            OutboxEvent.completed_at.is_(None),
                            OutboxEvent.published_at.is_not(None),
                            *[
                                exists().where(
                                    ProcessedEvent.consumer == consumer,
                                    ProcessedEvent.event_id == OutboxEvent.id,
                                )
                                for consumer in consumers
                            ],
                        )
                        .order_by(OutboxEvent.id)
                        .limit(limit)
                    )
                )
            if not ids:
                break
            with db.transaction() as session:
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids))
                    .values(completed_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
            total += len(ids)
            if len(ids) < limit:
                break
    return total


def reset_unfinished(db: Database) -> int:
    """Mark every unfinished row unpublished, so the relay publishes it again."""
    with db.transaction() as session:
        result = session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.completed_at.is_(None), OutboxEvent.published_at.is_not(None))
            .values(published_at=None)
        )
    return result.rowcount or 0


def prune(db: Database, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete completed rows, and the inbox entries of their events, past retention."""
    cutoff = (now or utcnow()) - older_than
    with db.transaction() as session:
        old = select(OutboxEvent.id).where(
            OutboxEvent.completed_at.is_not(None), OutboxEvent.completed_at < cutoff
        )
        session.execute(
            ProcessedEvent.__table__.delete().where(
                ProcessedEvent.event_id.in_(old.scalar_subquery())
            )
        )
        result = session.execute(
            OutboxEvent.__table__.delete().where(OutboxEvent.id.in_(old.scalar_subquery()))
        )
    return result.rowcount or 0


def backlog(db: Database) -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest) for metrics and readiness."""
    with db.reader() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(
                OutboxEvent.published_at.is_(None)
            )
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite keeps no offset; we only ever store UTC
        oldest = oldest.replace(tzinfo=utcnow().tzinfo)
    return int(count), max(0.0, (utcnow() - oldest).total_seconds())


def wait_until_published(db: Database, timeout_s: float) -> bool:
    """Test and drain helper: true once no row is waiting for publication."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if backlog(db)[0] == 0:
            return True
        time.sleep(0.05)
    return False
