"""Durable intake with group commit: many connections, one writer, one fsync per batch.

Listeners hand every frame to `IntakeService.submit`, which judges it at once (cheap
header read) and queues it. A single writer takes whatever has queued, stores all of it
(raw message rows, duplicate detection, outbox records) in one transaction, and only
then resolves each frame's future with its ACK. Under load batches grow by themselves,
so the cost of the commit is shared; when idle a message waits for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from pfi.bus.outbox import OutgoingRecord, add_to_outbox
from pfi.bus.topics import INBOUND
from pfi.config.model import SourceSettings
from pfi.intake.policy import Assessment, assess, check_transmission, patient_identifiers
from pfi.store.db import Database
from pfi.store.ids import allocate_ids, fast_insert
from pfi.store.models import Message, utcnow
from pfi.transforms.hl7 import ErrorCode, Hl7Error
from pfi.transforms.hl7.ack import AckDecision, build_ack, should_send_accept_ack

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, DUPLICATE = "accepted", "rejected", "duplicate"


@dataclass
class _Pending:
    source: str
    settings: SourceSettings
    raw: bytes
    assessment: Assessment
    peer: str | None
    received_at: datetime
    future: asyncio.Future[bytes | None]
    status: str = ""
    message_id: int | None = None
    duplicate_of: int | None = None


@dataclass
class IntakeOutcome:
    """What one stored batch contained, for metrics."""

    items: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    # (source, message_type, status, ack_code, size in bytes)


class IntakeService:
    def __init__(
        self,
        db: Database,
        sources: Mapping[str, SourceSettings],
        *,
        on_committed: Callable[[], None] | None = None,
        on_stored: Callable[[IntakeOutcome], None] | None = None,
        max_batch: int = 500,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._sources = dict(sources)
        self._on_committed = on_committed
        self._on_stored = on_stored
        self._max_batch = max_batch
        self._clock = clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.stored_total = 0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="intake-writer")

    async def drain(self, timeout_s: float) -> None:
        """Store and answer everything already received, then stop the writer."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.error("intake drain timed out with %d frames unanswered", self._queue.qsize())
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # -- intake --------------------------------------------------------------------
    def submit(
        self,
        source: str,
        raw: bytes,
        *,
        peer: str | None = None,
        truncated: bool = False,
        size: int | None = None,
    ) -> asyncio.Future[bytes | None]:
        """Queue one received frame; the future resolves to the ACK bytes (or None when
        enhanced mode says not to answer) once the message is durably stored."""
        settings = self._sources[source]
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        assessment = assess(
            raw, settings, truncated=truncated, size=size if size is not None else len(raw)
        )
        self._queue.put_nowait(
            _Pending(source, settings, raw, assessment, peer, self._clock(), future)
        )
        return future

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                acks = await asyncio.to_thread(self._store_and_ack, batch)
            except Exception as exc:  # storage down: NACK so that senders keep and resend
                log.error("intake could not store %d messages: %s", len(batch), exc)
                acks = [self._storage_failure_ack(p, exc) for p in batch]
            for pending, ack in zip(batch, acks, strict=True):
                if not pending.future.done():
                    pending.future.set_result(ack)
                self._queue.task_done()

    # -- storage (runs in a worker thread) -----------------------------------------
    def _store_and_ack(self, batch: list[_Pending]) -> list[bytes | None]:
        for p in batch:  # CDA checks of the transmission volet, before the transaction
            p.assessment = check_transmission(p.assessment, p.raw)
        self._store(batch)
        if self._on_committed is not None:
            self._on_committed()
        now = self._clock()
        outcome = IntakeOutcome()
        acks: list[bytes | None] = []
        for p in batch:
            decision = p.assessment.decision
            header = p.assessment.header
            outcome.items.append(
                (
                    p.source,
                    header.message_type if header else "",
                    p.status,
                    decision.code,
                    len(p.raw),
                )
            )
            if should_send_accept_ack(header, decision.code):
                acks.append(build_ack(header, decision, now=now))
            else:
                acks.append(None)
        self.stored_total += len(batch)
        if self._on_stored is not None:
            self._on_stored(outcome)
        return acks

    def _store(self, batch: list[_Pending]) -> None:
        with self._db.transaction() as session:
            prior = self._prior_accepted(session, batch)
            first_in_batch: dict[tuple[str, str, str], int] = {}
            for index, p in enumerate(batch):
                p.status = p.assessment.status
                header = p.assessment.header
                if p.status != ACCEPTED or header is None:
                    continue
                key = (header.sending_application, header.sending_facility, header.control_id)
                window = timedelta(seconds=p.settings.duplicate_window_s)
                earlier = prior.get(key)
                if earlier is not None and earlier[1] >= p.received_at - window:
                    p.status, p.duplicate_of = DUPLICATE, earlier[0]
                elif key in first_in_batch:
                    p.status = DUPLICATE  # id of the first is known after the insert
                else:
                    first_in_batch[key] = index
            ids = allocate_ids(session, Message.__table__, len(batch))
            rows = [self._message_row(p) | {"id": i} for p, i in zip(batch, ids, strict=True)]
            fast_insert(session, Message.__table__, rows)
            outgoing: list[OutgoingRecord] = []
            late_duplicates: list[tuple[int, int]] = []
            for p, message_id in zip(batch, ids, strict=True):
                p.message_id = message_id
                header = p.assessment.header
                if header is None:
                    continue
                if p.status == DUPLICATE and p.duplicate_of is None:
                    key = (header.sending_application, header.sending_facility, header.control_id)
                    p.duplicate_of = ids[first_in_batch[key]]
                    late_duplicates.append((message_id, p.duplicate_of))
                if p.status == ACCEPTED:
                    outgoing.append(self._inbound_record(p))
            for message_id, original in late_duplicates:
                session.execute(
                    update(Message).where(Message.id == message_id).values(duplicate_of=original)
                )
            add_to_outbox(session, outgoing)

    def _prior_accepted(
        self, session: Any, batch: list[_Pending]
    ) -> dict[tuple[str, str, str], tuple[int, datetime]]:
        keys = {
            (h.sending_application, h.sending_facility, h.control_id)
            for p in batch
            if p.assessment.status == ACCEPTED and (h := p.assessment.header) is not None
        }
        if not keys:
            return {}
        window = max(p.settings.duplicate_window_s for p in batch)
        since = min(p.received_at for p in batch) - timedelta(seconds=window)
        found: dict[tuple[str, str, str], tuple[int, datetime]] = {}
        control_ids = sorted({k[2] for k in keys})
        for chunk_start in range(0, len(control_ids), 500):
            # control_id alone so that the index is used (row-value IN lists are scanned)
            rows = session.execute(
                select(
                    Message.id,
                    Message.sending_application,
                    Message.sending_facility,
                    Message.control_id,
                    Message.received_at,
                    Message.status,
                ).where(Message.control_id.in_(control_ids[chunk_start : chunk_start + 500]))
            ).all()
            for row in rows:
                key = (row.sending_application, row.sending_facility, row.control_id)
                if row.status != ACCEPTED or key not in keys or row.received_at < since:
                    continue
                if key not in found or found[key][1] < row.received_at:
                    found[key] = (row.id, row.received_at)
        return found

    @staticmethod
    def _message_row(p: _Pending) -> dict[str, Any]:
        header = p.assessment.header
        decision = p.assessment.decision
        ipp, ins = patient_identifiers(header)
        return {
            "source": p.source,
            "received_at": p.received_at,
            "remote_addr": p.peer,
            "sending_application": header.sending_application[:200] if header else "",
            "sending_facility": header.sending_facility[:200] if header else "",
            "control_id": header.control_id[:200] if header else "",
            "message_type": header.message_type[:32] if header else "",
            "version": header.version[:16] if header else "",
            "charset": header.charset[:32] if header else "",
            "ipp": ipp[:64] if ipp else None,
            "ins": ins[:64] if ins else None,
            "status": p.status,
            "ack_code": decision.code,
            "error_code": decision.error.code.value if decision.error else None,
            "reason": p.assessment.reason,
            "duplicate_of": p.duplicate_of,
            "size": len(p.raw),
            "raw": p.raw,
        }

    @staticmethod
    def _inbound_record(p: _Pending) -> OutgoingRecord:
        header = p.assessment.header
        assert header is not None and p.message_id is not None
        patient_key = header.patient_key()
        return OutgoingRecord(
            INBOUND,
            f"{header.sender}|{patient_key}".encode(),
            {
                "message_id": p.message_id,
                "source": p.source,
                "sender": header.sender,
                "control_id": header.control_id,
                "message_type": header.message_type,
                "version": header.version,
                "charset": header.charset,
                "patient_key": patient_key,
                "received_at": p.received_at,
                "raw": p.raw,
            },
            correlation_id=f"{header.sender}|{header.control_id}",
        )

    def _storage_failure_ack(self, p: _Pending, exc: Exception) -> bytes | None:
        err = Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            f"message not stored ({type(exc).__name__}); please resend later",
        )
        header = p.assessment.header
        decision = AckDecision("AE", err)
        if not should_send_accept_ack(header, decision.code):
            return None
        return build_ack(header, decision, now=self._clock())
