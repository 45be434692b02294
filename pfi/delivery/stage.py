"""The delivery stage: one per delivery topic (deliver.dmp, deliver.mss), sending ledger
rows through the destination's `DeliverySender`.

The network I/O happens in `prepare`, before the runner's batch transaction opens, so
that no database lock is held during a call to the DMP (SQLite has one writer):

1. one short transaction plans the batch (`pfi.delivery.jobs.plan_deliveries`): rows
   that already ended are skipped (a redelivered request does nothing), rows a newer
   version superseded are closed, rows that must wait for an earlier delivery are put
   back as failed with a next attempt, the rest are marked `sending` and committed:
   a crash during the call leaves them visibly in flight;
2. the calls, patients in parallel (`delivery.concurrency`), one patient's requests in
   their order; requests for a document that appears twice in the batch are planned
   one after the other, after the previous one's outcome is written;
3. the outcomes of the batch in one short transaction (one wait for the write lock, one
   commit; each row in a savepoint of its own), before a later request for the same
   document is planned if there is one: delivered (external id, delivered_at),
   refused (the destination's words, audited, never retried), or transient: failed
   with next_attempt_at (exponential backoff with jitter; the attempt was counted when
   the row was marked sending, so a call the worker died in counts too), and after
   `delivery.max_attempts` a dead letter (table + topic, replayable).

`handle` (inside the runner's transaction) only records that the request was dealt with;
a request `prepare` could not deal with (the store was unreachable) makes the batch
retry. At least once: after a kill -9 during a call the request is consumed again and
the row, still `sending`, is sent again with `resumed=True` (the DMP sender recognises
its own earlier submission and ends it delivered).

A circuit breaker per destination stops calling after `breaker_failures` consecutive
transient failures; while it is open, rows wait as failed (no attempt counted) until
its cool-down ends. The retry scheduler (a thread of the stage, `open()`/`close()`)
queues due failed rows again through the outbox, as routing queued them first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from pfi.bus.outbox import add_to_outbox
from pfi.bus.stage import Record, StageContext, TransientError, dead_letter
from pfi.bus.topics import Topic
from pfi.config.delivery import DeliverySettings
from pfi.console.audit import record_audit
from pfi.delivery.backoff import Backoff
from pfi.delivery.breaker import BreakerState, CircuitBreaker
from pfi.delivery.jobs import Plan, Request, plan_deliveries
from pfi.delivery.retry import RetryScheduler
from pfi.delivery.sender import DeliveryJob, DeliverySender, SendResult, SendStatus
from pfi.observability import metrics
from pfi.observability.logs import correlation_scope
from pfi.store.db import Database
from pfi.store.models import Delivery, utcnow

log = logging.getLogger(__name__)

#: Row statuses that end a delivery (the outcome hooks run for them).
ENDED = frozenset({"delivered", "refused", "dead_letter"})

DELIVERY_ACTOR = "pfi:delivery"
Clock = Callable[[], datetime]
#: Called in the transaction that ends a row (delivered, refused, dead_letter), with the
#: row as written and the destination's answer (None when no call was made): what the
#: HL7 acknowledgements back to the sender (ZAM, masking ORU) hook onto, so that what
#: they queue commits with the outcome. An exception is logged, never fails the outcome.
OutcomeHook = Callable[[Session, Delivery, "SendResult | None"], None]


@dataclass
class _Item:
    """One delivery request of the polled batch, and what became of it."""

    record: Record
    request: Request | None
    document_id: int | None
    plan: Plan | None = None
    error: BaseException | None = None
    done: bool = False
    #: the destination's answer, until the outcome is written
    result: SendResult | None = None


@dataclass
class _Group:
    items: list[_Item] = field(default_factory=list)


class DeliveryStage:
    """Consumes one delivery topic and sends through the senders registered for its
    destinations. Name: `delivery_<topic suffix>` (delivery_dmp, delivery_mss)."""

    def __init__(
        self,
        topic: Topic,
        senders: Iterable[DeliverySender],
        db: Database,
        settings: DeliverySettings,
        *,
        clock: Clock = utcnow,
        rand: random.Random | None = None,
        on_outcome: Sequence[OutcomeHook] = (),
    ) -> None:
        self.input = topic
        self.on_outcome = list(on_outcome)
        self.name = f"delivery_{topic.name.rsplit('.', 1)[-1]}"
        self.max_batch = settings.max_batch
        self.settings = settings
        self._db = db
        self._clock = clock
        self._rand = rand or random.Random()
        self._senders: dict[str, DeliverySender] = {}
        for sender in senders:
            for destination in sender.destinations:
                if destination in self._senders:
                    raise ValueError(f"two senders for destination {destination!r}")
                self._senders[destination] = sender
        self.breakers: dict[str, CircuitBreaker] = {
            d: CircuitBreaker(
                settings.breaker_failures,
                settings.breaker_cooldown_s,
                clock=lambda: self._clock().timestamp(),
                on_change=_breaker_logger(d),
            )
            for d in self._senders
        }
        self._backoff = Backoff(
            settings.backoff_base_s, settings.backoff_max_s, settings.backoff_jitter
        )
        self._settled: OrderedDict[tuple[int, int], _Item] = OrderedDict()
        self._settled_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.scheduler = RetryScheduler(
            db,
            topic,
            frozenset(self._senders),
            poll_s=settings.retry_poll_s,
            stale_after_s=settings.stale_after_s,
            clock=clock,
        )

    @property
    def destinations(self) -> frozenset[str]:
        return frozenset(self._senders)

    def sender_for(self, destination: str) -> DeliverySender:
        return self._senders[destination]

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        self.scheduler.start()

    def close(self) -> None:
        self.scheduler.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for sender in {id(s): s for s in self._senders.values()}.values():
            try:
                sender.close()
            except Exception:
                log.exception("closing sender %s failed", type(sender).__name__)

    # -- the runner's hooks --------------------------------------------------------

    def prepare(self, records: Sequence[Record]) -> None:
        """Plan, send and write the outcomes of the batch's requests (see the module)."""
        items = [_item_of(r) for r in records]
        live = [i for i in items if i.request is not None]
        counts: dict[int, int] = {}
        for item in live:
            if item.document_id is not None:
                counts[item.document_id] = counts.get(item.document_id, 0) + 1
        independent = [i for i in live if counts.get(i.document_id or -1, 1) == 1]
        if independent:
            self._plan_and_mark(independent)
        groups: OrderedDict[bytes, _Group] = OrderedDict()
        for item in live:
            groups.setdefault(item.record.key, _Group()).items.append(item)
        if len(groups) == 1 or self.settings.concurrency == 1:
            for group in groups.values():
                self._run_group(group)
        else:
            pool = self._executor()
            for future in [pool.submit(self._run_group, g) for g in groups.values()]:
                future.result()
        self._write_outcomes([i for i in live if i.result is not None])
        with self._settled_lock:
            for item in live:
                if item.done or item.error is not None:
                    self._settled[_key(item.record)] = item
            while len(self._settled) > 10000:  # bounded: a batch is handled right after
                self._settled.popitem(last=False)

    def handle(self, record: Record, ctx: StageContext) -> None:
        with self._settled_lock:
            item = self._settled.pop(_key(record), None)
        if item is None:
            raise TransientError(
                f"delivery request {record.value.get('delivery_id')} was not sent yet "
                "(store or destination unreachable while preparing); retrying"
            )
        if item.error is not None:
            self._give_up(ctx, item, item.error)

    # -- planning ------------------------------------------------------------------

    def _plan_and_mark(self, items: Sequence[_Item]) -> None:
        """One transaction: plan these requests, apply what needs no call, mark the rest
        sending. On failure the items stay unplanned (handled as not prepared)."""
        requests = [i.request for i in items if i.request is not None]
        try:
            with self._db.transaction() as session:
                plans = plan_deliveries(session, requests, lock=not self._db.is_sqlite)
                now = self._clock()
                for item in items:
                    assert item.request is not None
                    plan = plans[item.request.delivery_id]
                    item.plan = self._apply_plan(session, item, plan, now)
        except Exception as exc:
            log.warning("%s: planning %d deliveries failed: %s", self.name, len(items), exc)
            for item in items:
                item.plan = None
                item.done = False
                item.error = None

    def _apply_plan(self, session: Session, item: _Item, plan: Plan, now: datetime) -> Plan:
        if plan.kind == "skip":
            log.debug("delivery %d: %s; nothing to do", plan.delivery_id, plan.reason)
            item.done = True
            return plan
        row = session.get(Delivery, plan.delivery_id)
        assert row is not None
        if plan.kind == "supersede":
            row.status = "superseded"
            row.refusal_reason = plan.reason
            row.next_attempt_at = None
            row.updated_at = now
            record_audit(
                session,
                DELIVERY_ACTOR,
                "delivery.supersede",
                "delivery",
                row.id,
                reason=plan.reason,
                details={"destination": row.destination, "recipient": row.recipient},
            )
            item.done = True
            return plan
        if plan.kind == "close":
            self._close(session, row, plan, now)
            self._run_hooks(session, row, None)
            item.done = True
            return plan
        if plan.kind == "wait":
            self._wait(row, plan.reason, now, self._backoff.delay_s(1, self._rand))
            item.done = True
            return plan
        breaker = self.breakers.get(row.destination)
        if row.destination not in self._senders:
            item.error = ValueError(
                f"delivery {row.id}: no sender for destination {row.destination!r} "
                f"on {self.input.name}"
            )
            return Plan("skip", plan.delivery_id, str(item.error))
        if breaker is not None and breaker.state is BreakerState.OPEN:
            self._breaker_wait(row, breaker, now)
            item.done = True
            return Plan("wait", plan.delivery_id, "circuit open")
        if row.status == "sending" and row.attempts >= self.settings.max_attempts:
            # every attempt died with its process (a document that crashes the worker?)
            self._dead_letter(
                session,
                item,
                row,
                f"delivery {row.id} ({row.operation} to {row.destination}): "
                f"{row.attempts} attempts ended without an outcome (the worker stopped "
                "during each call)",
            )
            self._run_hooks(session, row, None)
            item.done = True
            return Plan("skip", plan.delivery_id, "dead letter")
        if row.status == "dead_letter":  # a replay of the dead letter: attempts anew
            log.info("delivery %d: replayed after %d attempts", row.id, row.attempts)
            record_audit(
                session,
                DELIVERY_ACTOR,
                "delivery.replay",
                "delivery",
                row.id,
                reason="its request was published again (dead letter replayed)",
                details={"destination": row.destination, "attempts_before": row.attempts},
            )
            row.attempts = 0
        row.status = "sending"
        row.attempts = (row.attempts or 0) + 1  # counted before the call: a crash counts
        row.updated_at = now
        return plan

    def _breaker_wait(self, row: Delivery, breaker: CircuitBreaker, now: datetime) -> None:
        """The destination's breaker is open: back to failed until it lets calls through
        (spread over a tenth of the base backoff), no attempt counted."""
        wait_s = breaker.retry_in_s() + self._rand.uniform(0, self._backoff.base_s * 0.1)
        self._wait(row, f"circuit open for {row.destination}: not called", now, wait_s)

    def _wait(self, row: Delivery, reason: str, now: datetime, delay_s: float) -> None:
        """Back to failed with a next attempt, without counting an attempt."""
        row.status = "failed"
        row.last_error = reason[:10000]
        row.next_attempt_at = now + timedelta(seconds=delay_s)
        row.updated_at = now

    def _close(self, session: Session, row: Delivery, plan: Plan, now: datetime) -> None:
        row.status = plan.close_status
        row.updated_at = now
        row.next_attempt_at = None
        if plan.close_status == "delivered":
            row.delivered_at = now
            row.request = {**(row.request or {}), "result": {"noop": plan.reason}}
            return
        row.refusal_reason = plan.reason
        record_audit(
            session,
            DELIVERY_ACTOR,
            f"delivery.{plan.close_status}",
            "delivery",
            row.id,
            reason=plan.reason,
            details={"destination": row.destination, "operation": row.operation},
        )

    # -- sending -------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.concurrency, thread_name_prefix=f"{self.name}-send"
            )
        return self._pool

    def _run_group(self, group: _Group) -> None:
        """One patient's requests, in order. The answers wait in their items for one
        transaction at the end of the batch (`_write_outcomes`), except when a request
        for the same document follows: it is planned on the written outcome."""
        for item in group.items:
            try:
                if item.plan is None and not item.done:
                    self._write_outcomes([i for i in group.items if i.result is not None])
                    self._plan_and_mark([item])
                plan = item.plan
                if plan is None or plan.kind != "send" or item.done:
                    continue
                assert plan.job is not None
                breaker = self.breakers.get(plan.job.destination)
                if breaker is not None and not breaker.allow():
                    self._not_called(item, plan.job, breaker)
                    continue
                with correlation_scope(
                    item.record.correlation_id or f"delivery {plan.job.delivery_id}"
                ):
                    item.result = self._send(plan.job)
            except (OperationalError, TimeoutError) as exc:  # the store is out: retry later
                log.warning("%s: delivery %s: store unreachable (%s)", self.name, item.request, exc)
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    log.warning(
                        "%s: delivery %s: store unreachable (%s)", self.name, item.request, exc
                    )
                else:
                    log.exception("%s: delivery request %s failed", self.name, item.request)
                    item.error = exc
            except Exception as exc:
                log.exception("%s: delivery request %s failed", self.name, item.request)
                item.error = exc

    def _not_called(self, item: _Item, job: DeliveryJob, breaker: CircuitBreaker) -> None:
        with self._db.transaction() as session:
            row = session.get(Delivery, job.delivery_id)
            assert row is not None
            row.attempts = max(0, (row.attempts or 0) - 1)  # marked sending, not called
            self._breaker_wait(row, breaker, self._clock())
        item.done = True
        metrics.record_delivery(job.destination, job.document.document_type, "failed_transient")

    def _send(self, job: DeliveryJob) -> SendResult:
        sender = self._senders[job.destination]
        started = time.perf_counter()
        try:
            result = sender.send(job)
        except Exception as exc:  # the contract: an exception is a transient failure
            log.warning(
                "delivery %d: sender raised %s: %s", job.delivery_id, type(exc).__name__, exc
            )
            result = SendResult.transient(f"{type(exc).__name__}: {exc}")
        breaker = self.breakers.get(job.destination)
        if breaker is not None:
            if result.status is SendStatus.TRANSIENT:
                breaker.failure()
            else:
                breaker.success()
        log.info(
            "delivery %d (%s %s to %s, attempt %d): %s in %.0f ms%s",
            job.delivery_id,
            job.operation,
            job.document.set_id,
            job.destination,
            job.attempt,
            result.status.value,
            (time.perf_counter() - started) * 1000,
            f": {result.reason}" if result.reason else "",
        )
        return result

    def _write_outcomes(self, items: Sequence[_Item]) -> None:
        """The answers of sent items, in one transaction: one wait for the write lock and
        one commit for the batch instead of one per call. Each item in a savepoint of its
        own, so that an item that cannot be written (a bug, bad data) fails alone. If the
        transaction fails (store unreachable), nothing is written and the items stay
        `sending`: their requests are retried and the resumed calls end them (at least
        once, as after a crash during the calls)."""
        if not items:
            return
        written: list[tuple[_Item, str, datetime, SendResult]] = []
        try:
            with self._db.transaction() as session:
                now = self._clock()
                for item in items:
                    assert item.plan is not None and item.plan.job is not None
                    assert item.result is not None
                    savepoint = session.begin_nested()
                    try:
                        with correlation_scope(
                            item.record.correlation_id or f"delivery {item.plan.job.delivery_id}"
                        ):
                            outcome = self._outcome(session, item, item.plan.job, item.result, now)
                        savepoint.commit()
                        written.append((item, outcome, now, item.result))
                    except OperationalError:
                        raise
                    except Exception as exc:
                        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                            raise
                        savepoint.rollback()
                        log.exception("%s: delivery request %s failed", self.name, item.request)
                        item.error = exc
        except (OperationalError, TimeoutError, DBAPIError) as exc:
            log.warning(
                "%s: writing %d delivery outcomes failed, the requests will be retried: %s",
                self.name,
                len(items),
                exc,
            )
            written = []
        for item in items:
            item.result = None
        for item, outcome, now, result in written:
            item.done = True
            self._record_outcome(item, outcome, now, result)

    def _outcome(
        self, session: Session, item: _Item, job: DeliveryJob, result: SendResult, now: datetime
    ) -> str:
        """Write what the destination answered on the row; returns the metrics outcome."""
        row = session.get(Delivery, job.delivery_id)
        assert row is not None
        # attempts were counted when the row was marked sending
        row.updated_at = now
        if result.detail:
            row.request = {**(row.request or {}), "result": _jsonable(result.detail)}
        if result.status is SendStatus.DELIVERED:
            row.status = "delivered"
            row.external_id = result.external_id
            row.delivered_at = now
            row.next_attempt_at = None
            row.last_error = None
            outcome = "delivered"
        elif result.status is SendStatus.REFUSED:
            row.status = "refused"
            row.refusal_reason = result.reason or "refused (no reason given)"
            row.next_attempt_at = None
            record_audit(
                session,
                DELIVERY_ACTOR,
                "delivery.refused",
                "delivery",
                row.id,
                reason=row.refusal_reason,
                details={
                    "destination": row.destination,
                    "operation": row.operation,
                    "document_id": job.document.document_id,
                    "set_id": job.document.set_id,
                    "version": job.document.version,
                },
            )
            outcome = "refused"
        elif row.attempts >= self.settings.max_attempts:
            dead = (
                f"delivery {row.id} ({row.operation} {job.document.set_id} "
                f"v{job.document.version} to {row.destination}) failed "
                f"{row.attempts} times; last: {result.reason}"
            )
            row.last_error = result.reason[:10000]
            self._dead_letter(session, item, row, dead)
            outcome = "dead_letter"
        else:
            row.status = "failed"
            row.last_error = result.reason[:10000]
            row.next_attempt_at = now + timedelta(
                seconds=self._backoff.delay_s(row.attempts, self._rand)
            )
            outcome = "failed_transient"
        if row.status in ENDED:
            self._run_hooks(session, row, result)
        return outcome

    def _record_outcome(self, item: _Item, outcome: str, now: datetime, result: SendResult) -> None:
        """Metrics and log of a committed outcome."""
        assert item.plan is not None and item.plan.job is not None
        job = item.plan.job
        metrics.record_delivery(job.destination, job.document.document_type, outcome)
        if outcome == "dead_letter":
            log.error(
                "%s: delivery %d (%s %s v%d to %s) failed %d times; last: %s",
                self.name,
                job.delivery_id,
                job.operation,
                job.document.set_id,
                job.document.version,
                job.destination,
                job.attempt,
                result.reason,
            )
        if outcome == "delivered":
            received = item.record.value.get("received_at")
            if isinstance(received, datetime):
                metrics.observe_end_to_end_latency(
                    job.destination, (now - received).total_seconds()
                )

    def _dead_letter(self, session: Session, item: _Item, row: Delivery, why: str) -> None:
        """Retries exhausted: the row ends dead_letter, the request goes to the dead
        letters (table + topic) for a replay (`pfi.delivery.retry.requeue`)."""
        row.status = "dead_letter"
        row.last_error = row.last_error or why[:10000]
        row.next_attempt_at = None
        row.updated_at = self._clock()
        ctx = StageContext(session)
        dead_letter(ctx, self.name, item.record, "DeliveryAttemptsExhausted", why)
        add_to_outbox(session, ctx.outgoing)
        record_audit(
            session,
            DELIVERY_ACTOR,
            "delivery.dead_letter",
            "delivery",
            row.id,
            reason=why,
            details={"destination": row.destination, "attempts": row.attempts},
        )

    def _run_hooks(self, session: Session, row: Delivery, result: SendResult | None) -> None:
        for hook in self.on_outcome:
            savepoint = session.begin_nested()
            try:
                hook(session, row, result)
                savepoint.commit()
            except Exception:
                savepoint.rollback()
                log.exception("%s: outcome hook %r failed for delivery %d", self.name, hook, row.id)

    def _give_up(self, ctx: StageContext, item: _Item, exc: BaseException) -> None:
        """A request `prepare` failed on for a reason of its own (a bug, bad data): the
        record goes to the dead letters and its row says so, nothing retries it."""
        text = f"{type(exc).__name__}: {exc}"
        if item.request is not None:
            row = ctx.session.get(Delivery, item.request.delivery_id)
            if row is not None and row.status in ("pending", "sending", "failed"):
                row.status = "dead_letter"
                row.last_error = text[:10000]
                row.next_attempt_at = None
                row.updated_at = self._clock()
        dead_letter(ctx, self.name, item.record, type(exc).__name__, text)


def _item_of(record: Record) -> _Item:
    value = record.value
    if "__undecodable__" in value or "delivery_id" not in value:
        return _Item(record, None, None)
    return _Item(
        record,
        Request(int(value["delivery_id"]), record.correlation_id),
        int(value["document_id"]) if value.get("document_id") is not None else None,
    )


def _key(record: Record) -> tuple[int, int]:
    return (record.partition, record.offset)


def _breaker_logger(destination: str) -> Callable[[BreakerState], None]:
    def changed(state: BreakerState) -> None:
        metrics.set_delivery_breaker(destination, state is not BreakerState.CLOSED)
        if state is BreakerState.OPEN:
            log.warning("circuit breaker for %s is open: calls stop for the cool-down", destination)
        else:
            log.info("circuit breaker for %s is closed again", destination)

    return changed


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
