"""`/api/holds`: what waits (viewer), and its release by an operator.

A release is an audited act with a reason: the hold's kind ends for the whole document
version, routing decides again, and what may leave now is published in the same
transaction — for an announcement, the patient's mail, and the DMP copy made visible to
the patient by a metadata update (ITI-57). Identity and masking holds are not released
by hand: they end when the INS is qualified or the masking is lifted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from pfi.bus.outbox import add_to_outbox
from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Operator, Viewer
from pfi.routes.hold_queries import HoldFilter, HoldListing, find_holds, get_hold
from pfi.routes.ledger import LedgerChanges
from pfi.routes.router import Router, RoutingRefused

router = APIRouter(prefix="/holds", tags=["holds"], responses=AUTH_RESPONSES)


class HoldView(BaseModel):
    """A hold on a delivery (or on a whole document version when `delivery_id` is null)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    """identity (INS not qualified), announcement, retain, masking, review (R/V
    confidentiality), or a documents-stage kind such as unmapped_code."""
    reason: str
    created_at: datetime
    is_open: bool
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None
    document_id: int
    set_id: str
    document_type: str
    source: str
    patient_id: int | None
    version: int
    delivery_id: int | None
    destination: str | None
    """dmp, mss_pro or mss_patient"""
    recipient: str | None
    delivery_status: str | None
    operation: str | None


class HoldPage(BaseModel):
    items: list[HoldView]
    next_before_id: int | None = None
    """Pass as `before_id` for the next (older) page; null on the last page."""


class ReleaseRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=2000, description="why it may go now")


class RoutingEffects(BaseModel):
    """What the act changed in the delivery ledger."""

    sent: list[int]
    """deliveries published now (a DeliveryRequest each)"""
    masking_updates: list[int]
    """DMP metadata updates (ITI-57) among them"""
    still_held: list[int]
    refused: list[int]
    holds_closed: list[int]
    holds_placed: list[int]

    @classmethod
    def of(cls, changes: LedgerChanges) -> RoutingEffects:
        return cls(
            sent=changes.sent,
            masking_updates=changes.masking_updates,
            still_held=changes.held,
            refused=changes.refused,
            holds_closed=changes.holds_closed,
            holds_placed=changes.holds_placed,
        )


class ReleaseResult(BaseModel):
    hold: HoldView
    effects: RoutingEffects


def routing_router(request: Request) -> Router:
    """The engine's loaded routes; 503 when this app runs without them."""
    found: Router | None = getattr(request.app.state, "router", None)
    if found is None:
        raise HTTPException(503, detail="routing is not available in this process")
    return found


def outbox_committed(request: Request) -> None:
    notify = getattr(request.app.state, "on_outbox_committed", None)
    if notify is not None:
        notify()


@router.get("", response_model=HoldPage, summary="Holds, newest first")
def list_holds(
    principal: Viewer,
    db: DatabaseDep,
    open_: Annotated[
        bool, Query(alias="open", description="true: only holds not yet released")
    ] = False,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    document_id: Annotated[int | None, Query(ge=1)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HoldPage:
    f = HoldFilter(
        open_only=open_, kind=kind, document_id=document_id, before_id=before_id, limit=limit
    )
    with db.reader() as session:
        holds = find_holds(session, f)
    record_read(
        db,
        principal,
        "hold.list",
        "hold",
        "search",
        details={
            "filters": {"open": open_, "kind": kind, "document_id": document_id},
            "hold_ids": [h.id for h in holds],
            "patient_ids": sorted({h.patient_id for h in holds if h.patient_id is not None}),
        },
    )
    return HoldPage(
        items=[_view(h) for h in holds],
        next_before_id=holds[-1].id if len(holds) == limit else None,
    )


@router.post(
    "/{hold_id}/release",
    response_model=ReleaseResult,
    summary="Release a hold (announcement, retain, review), with a reason",
    responses={
        404: {"description": "no such hold"},
        409: {"description": "already released, or a kind that is not released by hand"},
    },
)
def release_hold(
    principal: Operator,
    db: DatabaseDep,
    request: Request,
    hold_id: Annotated[int, Path(ge=1)],
    body: Annotated[ReleaseRequest, Body()],
) -> ReleaseResult:
    routing = routing_router(request)
    try:
        with db.transaction() as session:
            hold, changes = routing.release_hold(
                session, hold_id, actor=principal, reason=body.reason
            )
            add_to_outbox(session, changes.outgoing)
    except RoutingRefused as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    outbox_committed(request)
    with db.reader() as session:
        listing = get_hold(session, hold.id)
    assert listing is not None
    return ReleaseResult(hold=_view(listing), effects=RoutingEffects.of(changes))


def _view(h: HoldListing) -> HoldView:
    return HoldView.model_validate(h)
