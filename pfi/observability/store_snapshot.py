"""The store's side of the store-backed gauges: a few aggregate queries, no row loaded."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from pfi.observability.store_gauges import HoldStats, StoreSnapshot
from pfi.store.db import Database
from pfi.store.models import (
    DeadLetter,
    Hold,
    InboundDocumentRow,
    OutboundMessage,
    OutboxEvent,
    Patient,
    UnmappedCode,
)


def store_snapshot_provider(db: Database) -> Callable[[], StoreSnapshot]:
    def snapshot() -> StoreSnapshot:
        with db.reader() as s:
            holds = {
                kind: HoldStats(int(count), oldest)
                for kind, count, oldest in s.execute(
                    select(Hold.kind, func.count(), func.min(Hold.created_at))
                    .where(Hold.released_at.is_(None))
                    .group_by(Hold.kind)
                )
            }
            dead = {
                stage: int(count)
                for stage, count in s.execute(
                    select(DeadLetter.stage, func.count())
                    .where(DeadLetter.status == "open")
                    .group_by(DeadLetter.stage)
                )
            }
            unpublished, oldest = s.execute(
                select(func.count(), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.published_at.is_(None)
                )
            ).one()
            patients, qualified = s.execute(
                select(func.count(), func.count().filter(Patient.qualified.is_(True))).where(
                    Patient.merged_into_id.is_(None)
                )
            ).one()
            unmapped = {
                lab: int(count)
                for lab, count in s.execute(
                    select(UnmappedCode.lab, func.count()).group_by(UnmappedCode.lab)
                )
            }
            inbound = {
                status: int(count)
                for status, count in s.execute(
                    select(InboundDocumentRow.status, func.count())
                    .where(InboundDocumentRow.status.in_(("ko", "pending", "sending")))
                    .group_by(InboundDocumentRow.status)
                )
            }
            replies = {
                (kind, status): int(count)
                for kind, status, count in s.execute(
                    select(OutboundMessage.kind, OutboundMessage.status, func.count())
                    .where(OutboundMessage.status.in_(("pending", "failed", "dead")))
                    .group_by(OutboundMessage.kind, OutboundMessage.status)
                )
            }
        return StoreSnapshot(
            holds=holds,
            dead_letters=dead,
            outbox_unpublished=int(unpublished or 0),
            outbox_oldest_unpublished_at=oldest,
            qualified_ins_ratio=(qualified / patients) if patients else None,
            unmapped_loinc_codes=unmapped,
            inbound_ko_documents=inbound.get("ko", 0),
            inbound_pending_documents=inbound.get("pending", 0) + inbound.get("sending", 0),
            outbound_hl7=replies,
        )

    return snapshot
