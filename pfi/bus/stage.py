"""The stage runner: consume → process → store + outbox → commit, at least once.

A stage is a consumer group reading one topic. For each polled batch the runner opens
one database transaction, skips events the stage already applied (its inbox), runs the
stage's handler per record inside a savepoint, records the applied event ids, commits,
and only then commits the Kafka offsets. Kill it anywhere: what was committed in the
database is never applied twice, what was not is consumed again.

A record the handler cannot process (any exception but `TransientError` and database
outages) is dead-lettered in the same transaction, with its error and original bytes,
so one bad record never blocks its partition.

Optional stage hooks, for stages with heavy CPU work (the documents stage builds and
validates CDA documents): `prepare(records)` is called with the polled records the stage
has not applied yet, before the transaction opens, so that the work holds no database
lock (SQLite has one); `open()` / `close()` when the runner's thread starts and stops.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from pfi.bus import codec
from pfi.bus.outbox import (
    CORRELATION_HEADER,
    EVENT_ID_HEADER,
    SCHEMA_HEADER,
    OutgoingRecord,
    add_to_outbox,
)
from pfi.bus.topics import DEADLETTER, Topic
from pfi.observability.logs import correlation_scope
from pfi.store.db import Database
from pfi.store.models import DeadLetter, ProcessedEvent, utcnow

log = logging.getLogger(__name__)


class TransientError(Exception):
    """Retry the whole batch later (an outage, not a bad record); nothing is dead-lettered."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record, decoded."""

    topic: Topic
    partition: int
    offset: int
    key: bytes
    value: dict[str, Any]
    raw_value: bytes
    event_id: int | None
    correlation_id: str | None


@dataclass
class StageContext:
    """What a handler may touch: the batch's session, and the outbox for what it emits."""

    session: Session
    outgoing: list[OutgoingRecord] = field(default_factory=list)

    def emit(
        self,
        topic: Topic,
        key: str | bytes,
        record: dict[str, Any],
        correlation_id: str | None = None,
    ) -> None:
        self.outgoing.append(
            OutgoingRecord(
                topic, key.encode() if isinstance(key, str) else key, record, correlation_id
            )
        )


class Stage(Protocol):
    """A processing step: its name is its consumer group and its inbox key."""

    name: str
    input: Topic

    def handle(self, record: Record, ctx: StageContext) -> None: ...


def dead_letter(
    ctx: StageContext, stage: str, record: Record, error_type: str, error: str
) -> DeadLetter:
    """Keep `record` in the dead letters (table + topic) with why it failed, in the
    stage's transaction. The runner calls it for a handler that raised; a stage calls it
    itself when it stores something about the record *and* refuses it (e.g. a document
    version stored as invalid, not sent)."""
    dead = DeadLetter(
        stage=stage,
        topic=record.topic.name,
        event_id=record.event_id,
        key=record.key,
        value=record.raw_value,
        error_type=error_type[:200],
        error=error[:10000],
        correlation_id=record.correlation_id,
    )
    ctx.session.add(dead)
    ctx.session.flush()
    ctx.emit(
        DEADLETTER,
        record.key,
        {
            "dead_letter_id": dead.id,
            "stage": stage,
            "topic": record.topic.name,
            "event_id": record.event_id,
            "error_type": dead.error_type,
            "error": dead.error,
            "failed_at": dead.created_at,
            "original_key": record.key,
            "original_value": record.raw_value,
        },
        record.correlation_id,
    )
    return dead


@dataclass
class BatchOutcome:
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    emitted: int = 0

    @property
    def consumed(self) -> int:
        """How many records of the batch this transaction took care of (a prefix)."""
        return self.applied + self.skipped + self.dead_lettered


class StageRunner:
    """Runs one stage in its own thread until stopped."""

    def __init__(
        self,
        stage: Stage,
        db: Database,
        consumer_factory: Callable[[str], KafkaConsumer],
        topic_prefix: str,
        *,
        assign_partitions: bool,
        on_emitted: Callable[[], None] | None = None,
        on_batch: Callable[[str, BatchOutcome, float], None] | None = None,
        on_record: Callable[[str, float], None] | None = None,
        max_batch: int = 500,
        poll_timeout_ms: int = 200,
        max_transaction_s: float | None = None,
    ) -> None:
        self.stage = stage
        self._db = db
        self._consumer_factory = consumer_factory
        self._topic = stage.input.full_name(topic_prefix)
        self._assign = assign_partitions
        self._on_emitted = on_emitted
        self._on_batch = on_batch
        self._on_record = on_record
        self._max_batch = max_batch
        self._poll_timeout_ms = poll_timeout_ms
        self._max_transaction_s = max_transaction_s
        self._stop = threading.Event()
        self._rewind = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: KafkaConsumer | None = None
        self.lag: int = 0
        #: partition -> offset of the first polled record not applied yet: the consumer's
        #: position is already past the whole batch in hand, which is still to do
        self._unapplied_from: dict[int, int] = {}
        self.processed_total = 0
        self.last_error: str | None = None
        self.ready = threading.Event()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"stage-{self.stage.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the batch in hand, commit it, close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def rewind(self) -> None:
        """Read the topic again from the start (the embedded broker was restarted)."""
        self._rewind.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- loop ----------------------------------------------------------------------
    def _run(self) -> None:
        opener = getattr(self.stage, "open", None)
        if opener is not None:
            try:
                opener()
            except Exception:
                log.exception("stage %s: open() failed", self.stage.name)
        consumer = self._connect()
        if consumer is None:
            self._close_stage()
            return
        backoff = 0.5
        try:
            while not self._stop.is_set():
                if self._rewind.is_set():
                    self._rewind.clear()
                    self._seek_to_beginning(consumer)
                polled = consumer.poll(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_batch
                )
                if not polled:
                    self._update_lag(consumer)
                    continue
                raw = [rec for recs in polled.values() for rec in recs]
                records = [self._decode(r) for r in raw]
                self._hold(records)
                self._update_lag(consumer)
                self._prepare(records)
                start = 0
                while start < len(records) and not self._stop.is_set():
                    started = time.perf_counter()
                    try:
                        outcome = self.process_batch(records[start:], self._max_transaction_s)
                    except Exception as exc:  # outage: retry the same records
                        self.last_error = f"{type(exc).__name__}: {exc}"
                        log.warning(
                            "stage %s: %s; retrying batch in %.1fs",
                            self.stage.name,
                            self.last_error,
                            backoff,
                        )
                        self._seek_to(consumer, records[start:])
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2, 30.0)
                        break
                    backoff = 0.5
                    self.last_error = None
                    done = records[start : start + outcome.consumed]
                    self._commit(consumer, done)
                    self._applied(records[start + outcome.consumed :])
                    self._update_lag(consumer)
                    self._db.let_other_writers_in()
                    start += outcome.consumed
                    self.processed_total += outcome.consumed
                    if outcome.emitted and self._on_emitted is not None:
                        self._on_emitted()
                    if self._on_batch is not None:
                        self._on_batch(self.stage.name, outcome, time.perf_counter() - started)
                if start < len(records) and self._stop.is_set():
                    self._seek_to(consumer, records[start:])
        finally:
            try:
                consumer.close(autocommit=False)
            except Exception:
                log.debug("consumer close failed", exc_info=True)
            self._close_stage()

    def _close_stage(self) -> None:
        closer = getattr(self.stage, "close", None)
        if closer is not None:
            try:
                closer()
            except Exception:
                log.exception("stage %s: close() failed", self.stage.name)

    def _prepare(self, records: list[Record]) -> None:
        """The stage's optional `prepare` hook, outside any transaction, for the records
        its inbox does not hold yet (a re-read after a broker restart prepares nothing).
        Best effort: what it could not prepare, `handle` does itself."""
        prepare = getattr(self.stage, "prepare", None)
        if prepare is None:
            return
        try:
            ids = [r.event_id for r in records if r.event_id is not None]
            seen: set[int] = set()
            if ids:
                with self._db.reader() as session:
                    seen = set(
                        session.scalars(
                            select(ProcessedEvent.event_id).where(
                                ProcessedEvent.consumer == self.stage.name,
                                ProcessedEvent.event_id.in_(ids),
                            )
                        )
                    )
            fresh = [r for r in records if r.event_id is None or r.event_id not in seen]
            if fresh:
                prepare(fresh)
        except Exception as exc:
            log.warning("stage %s: prepare failed (%s); handling inline", self.stage.name, exc)

    def _connect(self) -> KafkaConsumer | None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                consumer = self._consumer_factory(self.stage.name)
                if self._assign:
                    parts = consumer.partitions_for_topic(self._topic) or set()
                    if not parts:
                        raise TransientError(f"topic {self._topic} has no partitions yet")
                    consumer.assign([TopicPartition(self._topic, p) for p in sorted(parts)])
                else:
                    consumer.subscribe([self._topic])
                self._consumer = consumer
                self.ready.set()
                return consumer
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("stage %s cannot connect: %s", self.stage.name, self.last_error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        return None

    def _decode(self, rec: Any) -> Record:
        headers = {k: v for k, v in (rec.headers or [])}
        event_id = headers.get(EVENT_ID_HEADER)
        correlation = headers.get(CORRELATION_HEADER)
        schema_h = headers.get(SCHEMA_HEADER, b"").decode()
        expected = codec.schema_header(self.stage.input.schema)
        value: dict[str, Any]
        if schema_h and schema_h != expected:
            value = {"__undecodable__": f"schema {schema_h!r}, expected {expected!r}"}
        else:
            try:
                value = codec.decode(self.stage.input.schema, rec.value)
            except Exception as exc:  # a bad record is dead-lettered, not a crash
                value = {"__undecodable__": f"{type(exc).__name__}: {exc}"}
        return Record(
            topic=self.stage.input,
            partition=rec.partition,
            offset=rec.offset,
            key=rec.key or b"",
            value=value,
            raw_value=rec.value or b"",
            event_id=int(event_id) if event_id else None,
            correlation_id=correlation.decode() if correlation else None,
        )

    def process_batch(self, records: list[Record], budget_s: float | None = None) -> BatchOutcome:
        """Apply records in one transaction (public for tests and benchmarks).

        With a time budget, stop after the record that exhausts it: on SQLite the
        transaction holds the database's only write lock, and the MLLP front door must
        not wait behind a long batch. `outcome.consumed` says how many were handled.
        """
        outcome = BatchOutcome()
        deadline = time.perf_counter() + budget_s if budget_s is not None else None
        name = self.stage.name
        with self._db.transaction() as session:
            ids = [r.event_id for r in records if r.event_id is not None]
            seen: set[int] = set()
            if ids:
                seen = set(
                    session.scalars(
                        select(ProcessedEvent.event_id).where(
                            ProcessedEvent.consumer == name, ProcessedEvent.event_id.in_(ids)
                        )
                    )
                )
            ctx = StageContext(session)
            applied: list[int] = []
            for record in records:
                if deadline is not None and outcome.consumed and time.perf_counter() > deadline:
                    break
                if record.event_id is not None and (
                    record.event_id in seen or record.event_id in applied
                ):
                    outcome.skipped += 1
                    continue
                savepoint = session.begin_nested()
                mark = len(ctx.outgoing)
                try:
                    if "__undecodable__" in record.value:
                        raise ValueError(f"undecodable record: {record.value['__undecodable__']}")
                    began = time.perf_counter()
                    with correlation_scope(record.correlation_id or f"event {record.event_id}"):
                        self.stage.handle(record, ctx)
                    savepoint.commit()
                    if self._on_record is not None:
                        self._on_record(self.stage.name, time.perf_counter() - began)
                    outcome.applied += 1
                except (TransientError, OperationalError) as exc:
                    savepoint.rollback()
                    raise TransientError(str(exc)) from exc
                except DBAPIError as exc:
                    savepoint.rollback()
                    if exc.connection_invalidated:
                        raise TransientError(str(exc)) from exc
                    self._dead_letter(ctx, record, exc, mark)
                    outcome.dead_lettered += 1
                except Exception as exc:
                    savepoint.rollback()
                    self._dead_letter(ctx, record, exc, mark)
                    outcome.dead_lettered += 1
                if record.event_id is not None:
                    applied.append(record.event_id)
            if applied:
                now = utcnow()
                session.connection().execute(
                    ProcessedEvent.__table__.insert(),
                    [{"consumer": name, "event_id": i, "processed_at": now} for i in applied],
                )
            add_to_outbox(session, ctx.outgoing)
            outcome.emitted = len(ctx.outgoing)
        return outcome

    def _dead_letter(
        self, ctx: StageContext, record: Record, exc: BaseException, mark: int
    ) -> None:
        del ctx.outgoing[mark:]  # what the failed handler emitted is void
        log.error(
            "stage %s: dead-lettering %s[%d]@%d (event %s): %s: %s",
            self.stage.name,
            record.topic.name,
            record.partition,
            record.offset,
            record.event_id,
            type(exc).__name__,
            exc,
        )
        error_text = "".join(traceback.format_exception_only(exc)).strip()
        dead_letter(ctx, self.stage.name, record, type(exc).__name__, error_text)

    # -- offsets -------------------------------------------------------------------
    def _commit(self, consumer: KafkaConsumer, done: list[Record]) -> None:
        last: dict[TopicPartition, int] = {}
        for r in done:
            tp = TopicPartition(self._topic, r.partition)
            last[tp] = max(last.get(tp, -1), r.offset)
        offsets = {tp: OffsetAndMetadata(o + 1, "", -1) for tp, o in last.items()}
        try:
            consumer.commit(offsets)
        except Exception as exc:  # a lost commit only means a harmless redelivery
            log.warning(
                "stage %s: offset commit failed (%s); records will be re-read and skipped",
                self.stage.name,
                exc,
            )

    def _hold(self, records: list[Record]) -> None:
        """A polled batch is in hand: it counts as lag until applied."""
        for r in records:
            self._unapplied_from.setdefault(r.partition, r.offset)

    def _applied(self, remaining: list[Record]) -> None:
        """Part of the batch in hand is applied; what remains still counts as lag."""
        self._unapplied_from = {}
        self._hold(remaining)

    def _seek_to(self, consumer: KafkaConsumer, pending: list[Record]) -> None:
        """Go back to the first record not yet applied, on each partition."""
        self._unapplied_from = {}
        first: dict[int, int] = {}
        for r in pending:
            first[r.partition] = min(first.get(r.partition, r.offset), r.offset)
        for partition, offset in first.items():
            consumer.seek(TopicPartition(self._topic, partition), offset)

    def _seek_to_beginning(self, consumer: KafkaConsumer) -> None:
        self._unapplied_from = {}
        parts = consumer.assignment()
        if parts:
            consumer.seek_to_beginning(*parts)
            log.info("stage %s: re-reading %s from the beginning", self.stage.name, self._topic)

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        """Records on the topic this stage has not applied yet: the ones the broker has
        not handed over (highwater - position) and the polled ones still in hand. Local
        figures only (highwater comes with each fetch): no broker round trip."""
        lag = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = consumer.position(tp, timeout_ms=0)
            except Exception:
                continue
            if position is None:
                continue
            lag += max(0, high - min(position, self._unapplied_from.get(tp.partition, position)))
        self.lag = lag


def consumers_by_topic(stages: Iterable[Stage]) -> dict[str, list[str]]:
    """Which consumer groups must apply a topic's records before they are finished."""
    out: dict[str, list[str]] = {}
    for stage in stages:
        out.setdefault(stage.input.name, []).append(stage.name)
    return out
