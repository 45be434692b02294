"""`/api/deliveries`: the delivery ledger (viewer) and the replay of a refused, failed or
dead-lettered delivery by an operator, with a reason (see `pfi.delivery.operations`).

Reads carry patient data (which document went to whom) and are audited as reads; a
replay is audited with who and why in the transaction that writes the outbox record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Operator, Viewer
from pfi.console.routers.holds import outbox_committed
from pfi.delivery.operations import (
    DeliveryFilter,
    DeliveryListing,
    ReplayRefused,
    find_deliveries,
    get_delivery,
    replay_delivery,
)

router = APIRouter(prefix="/deliveries", tags=["deliveries"], responses=AUTH_RESPONSES)


class DeliveryPage(BaseModel):
    items: list[DeliveryListing]
    next_before_id: int | None = None
    """Pass as `before_id` for the next (older) page; null on the last page."""


class HoldOfDelivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    reason: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


class DeadLetterOfDelivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stage: str
    status: str
    error_type: str
    error: str
    created_at: datetime
    replayed_at: datetime | None
    replay_count: int


class AuditOfDelivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    reason: str | None
    details: dict[str, Any] | None


class DeliveryDetailView(BaseModel):
    delivery: DeliveryListing
    request: dict[str, Any]
    """what routing asked (masking, mail, acks...) and `replays`: each earlier replay
    with what the row said before it"""
    holds: list[HoldOfDelivery]
    dead_letters: list[DeadLetterOfDelivery]
    audit: list[AuditOfDelivery]


class ReplayRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=2000, description="why it may go now")


class ReplayResultView(BaseModel):
    delivery: DeliveryListing
    previous_status: str
    dead_letters_replayed: list[int]


@router.get("", response_model=DeliveryPage, summary="Deliveries, newest first")
def list_deliveries(
    principal: Viewer,
    db: DatabaseDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    destination: Annotated[str | None, Query(max_length=32)] = None,
    document_type: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="changed at or after")] = None,
    document_id: Annotated[int | None, Query(ge=1)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, detail="since needs a UTC offset (e.g. 2024-03-08T10:00:00Z)")
    f = DeliveryFilter(
        status=status,
        destination=destination,
        document_type=document_type,
        since=since,
        document_id=document_id,
        before_id=before_id,
        limit=limit,
    )
    with db.reader() as session:
        rows = find_deliveries(session, f)
    record_read(
        db,
        principal,
        "delivery.list",
        "delivery",
        "search",
        details={
            "filters": {
                "status": status,
                "destination": destination,
                "document_type": document_type,
                "document_id": document_id,
            },
            "delivery_ids": [r.id for r in rows],
            "patient_ids": sorted({r.patient_id for r in rows if r.patient_id is not None}),
        },
    )
    return DeliveryPage(
        items=rows,
        next_before_id=rows[-1].id if len(rows) == limit else None,
    )


@router.get(
    "/{delivery_id}",
    response_model=DeliveryDetailView,
    summary="One delivery with its request, holds, dead letters and audit trail",
    responses={404: {"description": "no such delivery"}},
)
def show_delivery(
    principal: Viewer, db: DatabaseDep, delivery_id: Annotated[int, Path(ge=1)]
) -> DeliveryDetailView:
    with db.reader() as session:
        detail = get_delivery(session, delivery_id)
    if detail is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id}")
    record_read(
        db,
        principal,
        "delivery.read",
        "delivery",
        delivery_id,
        details={"patient_id": detail.delivery.patient_id},
    )
    return DeliveryDetailView(
        delivery=detail.delivery,
        request=detail.request,
        holds=[HoldOfDelivery.model_validate(h) for h in detail.holds],
        dead_letters=[DeadLetterOfDelivery.model_validate(d) for d in detail.dead_letters],
        audit=[AuditOfDelivery.model_validate(a) for a in detail.audit],
    )


@router.post(
    "/{delivery_id}/replay",
    response_model=ReplayResultView,
    summary="Send a refused, failed or dead-lettered delivery again, with a reason",
    responses={
        404: {"description": "no such delivery"},
        409: {"description": "not replayable (delivered, held, superseded, refused by routing)"},
    },
)
def replay(
    principal: Operator,
    db: DatabaseDep,
    request: Request,
    delivery_id: Annotated[int, Path(ge=1)],
    body: Annotated[ReplayRequest, Body()],
) -> ReplayResultView:
    try:
        with db.transaction() as session:
            result = replay_delivery(session, delivery_id, actor=principal, reason=body.reason)
    except ReplayRefused as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    outbox_committed(request)
    with db.reader() as session:
        detail = get_delivery(session, delivery_id)
    assert detail is not None
    return ReplayResultView(
        delivery=detail.delivery,
        previous_status=result.previous_status,
        dead_letters_replayed=result.dead_letters_replayed,
    )
