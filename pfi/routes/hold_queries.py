"""Reading holds for ops (`GET /api/holds`, `pfi holds list`): what waits, why, since when.

One row per hold with the delivery and document it keeps, so that the on-call operator
sees at once "CR-IMG of patient 123, mail to the patient, announcement, for 3 days".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pfi.observability.store_gauges import HoldStats
from pfi.store.models import Delivery, Document, DocumentVersion, Hold


@dataclass(frozen=True)
class HoldFilter:
    open_only: bool = False
    kind: str | None = None
    document_id: int | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class HoldListing:
    id: int
    kind: str
    reason: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None
    document_id: int
    set_id: str
    document_type: str
    source: str
    patient_id: int | None
    version: int
    version_id: int
    delivery_id: int | None
    destination: str | None
    recipient: str | None
    delivery_status: str | None
    operation: str | None

    @property
    def is_open(self) -> bool:
        return self.released_at is None


def find_holds(session: Session, f: HoldFilter) -> list[HoldListing]:
    """Newest first; page on with `before_id` = the last id of the previous page."""
    query = (
        select(Hold, Delivery, DocumentVersion.version, DocumentVersion.id, Document)
        .join(DocumentVersion, Hold.document_version_id == DocumentVersion.id)
        .join(Document, DocumentVersion.document_id == Document.id)
        .outerjoin(Delivery, Hold.delivery_id == Delivery.id)
        .order_by(Hold.id.desc())
        .limit(f.limit)
    )
    if f.open_only:
        query = query.where(Hold.released_at.is_(None))
    if f.kind:
        query = query.where(Hold.kind == f.kind)
    if f.document_id is not None:
        query = query.where(Document.id == f.document_id)
    if f.before_id:
        query = query.where(Hold.id < f.before_id)
    return [_listing(*row) for row in session.execute(query).all()]


def get_hold(session: Session, hold_id: int) -> HoldListing | None:
    row = session.execute(
        select(Hold, Delivery, DocumentVersion.version, DocumentVersion.id, Document)
        .join(DocumentVersion, Hold.document_version_id == DocumentVersion.id)
        .join(Document, DocumentVersion.document_id == Document.id)
        .outerjoin(Delivery, Hold.delivery_id == Delivery.id)
        .where(Hold.id == hold_id)
    ).one_or_none()
    return _listing(*row) if row is not None else None


def _listing(
    hold: Hold, delivery: Delivery | None, version: int, version_id: int, document: Document
) -> HoldListing:
    return HoldListing(
        id=hold.id,
        kind=hold.kind,
        reason=hold.reason,
        created_at=hold.created_at,
        released_at=hold.released_at,
        released_by=hold.released_by,
        release_reason=hold.release_reason,
        document_id=document.id,
        set_id=document.set_id,
        document_type=document.document_type,
        source=document.source,
        patient_id=document.patient_id,
        version=version,
        version_id=version_id,
        delivery_id=delivery.id if delivery is not None else None,
        destination=delivery.destination if delivery is not None else None,
        recipient=delivery.recipient if delivery is not None else None,
        delivery_status=delivery.status if delivery is not None else None,
        operation=delivery.operation if delivery is not None else None,
    )


def open_hold_stats(session: Session) -> dict[str, HoldStats]:
    """Open holds per kind and the oldest one's creation: `pfi_holds_open` and
    `pfi_hold_oldest_age_seconds` (label `reason` = the kind), one aggregate query on
    the open-holds index."""
    rows = session.execute(
        select(Hold.kind, func.count(), func.min(Hold.created_at))
        .where(Hold.released_at.is_(None))
        .group_by(Hold.kind)
    ).all()
    return {kind: HoldStats(open=count, oldest_created_at=oldest) for kind, count, oldest in rows}
