"""Sends the queued HL7 replies (`outbound_messages`) to the hospital's MLLP listeners.

Per endpoint (host, port) messages leave in the order they were queued, one at a time,
each waiting for its ACK: HL7 receivers apply messages in arrival order, and a ZAM
"accepted" must not overtake the "refused" it corrects. The peer's answer decides:
- AA / CA: sent;
- AE / AR / CE / CR, an ACK for another message, no answer within the endpoint's
  timeout, or no connection: failed, retried after a backoff (doubling, capped) with
  the peer's text or the connection error in `last_error`; the messages behind it on
  that endpoint wait. After `outbound.retry.max_attempts` it is dead (kept, with its
  reason, counted in the metrics; `pfi outbound retry ID` sends it again) and the
  next one goes.

The network I/O happens outside any database transaction (SQLite has one write lock);
outcomes are written in one short transaction per round. On PostgreSQL a session
advisory lock elects one sender among the engines sharing the store, so that two
engines never send the same message twice.

`run_once(db)` does one bounded round (tests and the CLI call it); `Hl7ReplySender` is
the thread the engine starts (`start()`, `notify()` after a commit that queued
replies, `stop()`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update

from pfi.adapters.mllp import MllpClient, MllpError
from pfi.config.outbound import OutboundRetry, OutboundSettings
from pfi.observability import metrics
from pfi.store import Database
from pfi.store.models import OutboundMessage, utcnow
from pfi.transforms.hl7.ack_reading import read_peer_ack

log = logging.getLogger(__name__)

#: Statuses the sender picks up.
WAITING = ("pending", "failed")
#: Arbitrary but fixed key of the PostgreSQL advisory lock that elects one sender.
_SENDER_LOCK_KEY = 0x5046_4948  # "PFIH"

ClientFactory = Callable[[str, int, float], MllpClient]


def _default_client(host: str, port: int, timeout_s: float) -> MllpClient:
    return MllpClient(host, port, timeout_s=timeout_s)


@dataclass(frozen=True, slots=True)
class _Queued:
    id: int
    kind: str
    host: str
    port: int
    timeout_s: float
    control_id: str
    payload: bytes
    attempts: int
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Outcome:
    item: _Queued
    accepted: bool
    ack_code: str
    error: str


def backoff_s(attempts: int, retry: OutboundRetry) -> float:
    """Seconds before try `attempts + 1`: initial, doubling, capped."""
    return float(min(retry.max_backoff_s, retry.initial_backoff_s * 2 ** max(0, attempts - 1)))


def run_once(
    db: Database,
    retry: OutboundRetry | None = None,
    *,
    now: datetime | None = None,
    client_factory: ClientFactory = _default_client,
) -> int:
    """Send one round of due messages (at most `retry.batch_size`); how many the peers
    accepted. Never raises for a peer's trouble: that is recorded on the message.

    At least once: if the outcomes cannot be written after sending (the database went
    away), the next round sends those messages again, with the same MSH-10, which is
    what HL7 receivers de-duplicate on."""
    retry = retry or OutboundRetry()
    lock = _leadership(db)
    if lock is False:
        return 0
    try:
        now = now or utcnow()
        queues = _due(db, retry.batch_size)
        outcomes: list[_Outcome] = []
        for items in queues:
            outcomes.extend(_send_endpoint(items, now, client_factory))
        if outcomes:
            _record(db, outcomes, retry, now)
        return sum(1 for o in outcomes if o.accepted)
    finally:
        if lock is not None and lock is not True:
            _release(lock)


def _due(db: Database, batch_size: int) -> list[list[_Queued]]:
    """Per endpoint, its waiting messages in order (heads first), `batch_size` in all."""
    with db.reader() as session:
        endpoints = session.execute(
            select(OutboundMessage.host, OutboundMessage.port)
            .where(OutboundMessage.status.in_(WAITING))
            .group_by(OutboundMessage.host, OutboundMessage.port)
        ).all()
        queues: list[list[_Queued]] = []
        left = batch_size
        for host, port in endpoints:
            if left <= 0:
                break
            rows = session.execute(
                select(
                    OutboundMessage.id,
                    OutboundMessage.kind,
                    OutboundMessage.host,
                    OutboundMessage.port,
                    OutboundMessage.timeout_s,
                    OutboundMessage.control_id,
                    OutboundMessage.payload,
                    OutboundMessage.attempts,
                    OutboundMessage.next_attempt_at,
                )
                .where(
                    OutboundMessage.status.in_(WAITING),
                    OutboundMessage.host == host,
                    OutboundMessage.port == port,
                )
                .order_by(OutboundMessage.id)
                .limit(left)
            ).all()
            queues.append([_Queued(*row) for row in rows])
            left -= len(rows)
    return queues


def _send_endpoint(
    items: list[_Queued], now: datetime, client_factory: ClientFactory
) -> list[_Outcome]:
    """Send in order over one connection until one is refused or not yet due."""
    outcomes: list[_Outcome] = []
    client: MllpClient | None = None
    try:
        for item in items:
            if item.next_attempt_at is not None and item.next_attempt_at > now:
                break  # the head waits for its retry: nothing overtakes it
            try:
                if client is None:
                    client = client_factory(item.host, item.port, item.timeout_s)
                    client.connect()
                answer = client.send(item.payload)
            except MllpError as exc:
                outcomes.append(_Outcome(item, False, "", str(exc)))
                break
            except Exception as exc:  # a bad endpoint (TLS, name): this message failed
                outcomes.append(_Outcome(item, False, "", f"{type(exc).__name__}: {exc}"))
                break
            ack = read_peer_ack(answer, item.control_id)
            if ack.accepted:
                outcomes.append(_Outcome(item, True, ack.code, ""))
                continue
            error = f"{ack.code or 'no code'}: {ack.text}" if ack.code else ack.text
            outcomes.append(_Outcome(item, False, ack.code, error))
            break
    finally:
        if client is not None:
            client.close()
    return outcomes


def _record(db: Database, outcomes: list[_Outcome], retry: OutboundRetry, now: datetime) -> None:
    counts: dict[tuple[str, str], int] = {}
    with db.transaction() as session:
        for o in outcomes:
            attempts = o.item.attempts + 1
            values: dict[str, Any] = {
                "attempts": attempts,
                "ack_code": o.ack_code or None,
                "updated_at": now,
            }
            if o.accepted:
                outcome = "sent"
                values |= {"status": "sent", "sent_at": now, "next_attempt_at": None}
            elif attempts >= retry.max_attempts:
                outcome = "dead"
                values |= {"status": "dead", "last_error": o.error[:10000], "next_attempt_at": None}
            else:
                outcome = "failed"
                values |= {
                    "status": "failed",
                    "last_error": o.error[:10000],
                    "next_attempt_at": now + timedelta(seconds=backoff_s(attempts, retry)),
                }
            # an operator's retry or a concurrent change since the read wins
            session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == o.item.id,
                    OutboundMessage.status.in_(WAITING),
                    OutboundMessage.attempts == o.item.attempts,
                )
                .values(**values)
            )
            counts[(o.item.kind, outcome)] = counts.get((o.item.kind, outcome), 0) + 1
            if outcome != "sent":
                log.log(
                    logging.ERROR if outcome == "dead" else logging.WARNING,
                    "outbound HL7 %d (%s to %s:%d) %s after %d attempt(s): %s",
                    o.item.id,
                    o.item.kind,
                    o.item.host,
                    o.item.port,
                    outcome,
                    attempts,
                    o.error,
                )
    for (kind, outcome), count in counts.items():
        metrics.record_outbound_hl7(kind, outcome, count)


def _leadership(db: Database) -> Any:
    """True on SQLite (one engine per file); on PostgreSQL the connection holding the
    advisory lock, or False when another engine's sender holds it."""
    if db.is_sqlite:
        return True
    conn = db.engine.connect()
    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _SENDER_LOCK_KEY}).scalar()
    conn.commit()
    if not got:
        conn.close()
        return False
    return conn


def _release(conn: Any) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SENDER_LOCK_KEY})
        conn.commit()
    finally:
        conn.close()


# -- the engine's thread ---------------------------------------------------------------


class Hl7ReplySender:
    """Runs `run_once` in a thread until stopped: at once when notified, else every
    `retry.poll_interval_s` (a retry falls due without anyone committing anything)."""

    def __init__(
        self,
        db: Database,
        retry: OutboundRetry | None = None,
        *,
        client_factory: ClientFactory = _default_client,
    ) -> None:
        self._db = db
        self._retry = retry or OutboundRetry()
        self._client_factory = client_factory
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent_total = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hl7-replies", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = run_once(self._db, self._retry, client_factory=self._client_factory)
                self.sent_total += sent
                self.last_error = None
            except Exception as exc:  # database trouble: keep going, say so
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("HL7 reply sender: %s", self.last_error)
                sent = 0
            if sent < self._retry.batch_size:
                self._wake.wait(self._retry.poll_interval_s)
                self._wake.clear()


def hl7_reply_sender(outbound: OutboundSettings, db: Database) -> Hl7ReplySender | None:
    """The engine's sender, or None when `outbound:` configures no endpoint (nothing can
    be queued then)."""
    if not outbound.configured:
        return None
    return Hl7ReplySender(db, outbound.retry)
