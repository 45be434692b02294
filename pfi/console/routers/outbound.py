"""`/api/outbound`: the HL7 replies queued for the hospital (ZAM business acks, masking
ORUs) with the peer's answer (viewer), and the retry of a dead one by an operator, with
a reason (the same act as `pfi outbound retry`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Operator, Viewer
from pfi.delivery.outbound_queue import OutboundRetryRefused, retry_message
from pfi.store.models import OutboundMessage

router = APIRouter(prefix="/outbound", tags=["outbound"], responses=AUTH_RESPONSES)


class OutboundView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    """zam_z01, zam_z02, zam_z03 or masking_oru"""
    status: str
    """pending, sent, failed (will be retried), dead (attempts exhausted)"""
    host: str
    port: int
    control_id: str
    description: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    """the peer's NACK text or the connection error"""
    ack_code: str | None
    delivery_id: int | None
    created_at: datetime
    sent_at: datetime | None


class OutboundPage(BaseModel):
    items: list[OutboundView]
    next_before_id: int | None = None


class RetryRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=2000, description="why it may go now")


@router.get("", response_model=OutboundPage, summary="HL7 replies to the hospital, newest first")
def list_outbound(
    principal: Viewer,
    db: DatabaseDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> OutboundPage:
    query = select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(limit)
    if status:
        query = query.where(OutboundMessage.status == status)
    if kind:
        query = query.where(OutboundMessage.kind == kind)
    if before_id:
        query = query.where(OutboundMessage.id < before_id)
    with db.reader() as session:
        items = [OutboundView.model_validate(row) for row in session.scalars(query)]
    record_read(
        db,
        principal,
        "outbound.list",
        "outbound_message",
        "search",
        details={"filters": {"status": status, "kind": kind}, "ids": [i.id for i in items]},
    )
    return OutboundPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)


@router.post(
    "/{message_id}/retry",
    response_model=OutboundView,
    summary="Send a dead (or failing) HL7 reply again, with a reason",
    responses={404: {"description": "no such message"}, 409: {"description": "sent or waiting"}},
)
def retry(
    principal: Operator,
    db: DatabaseDep,
    message_id: Annotated[int, Path(ge=1)],
    body: Annotated[RetryRequest, Body()],
) -> OutboundView:
    try:
        with db.transaction() as session:
            row = retry_message(session, message_id, actor=principal, reason=body.reason)
            view = OutboundView.model_validate(row)
    except OutboundRetryRefused as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    return view
