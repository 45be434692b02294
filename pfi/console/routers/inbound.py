"""`/api/inbound/ko`: documents received by MSSanté that PFI could not integrate alone.

Viewers read the worklist (the read is audited: it names patients' documents).
Operators resolve: assign a patient (IPP or INS) or retry — both send the MDM to the DPI
at once and answer with the outcome — or reject. Every act carries a reason and is
audited in the same transaction as the change (`inbound_document.assign|retry|reject`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Operator, Viewer
from pfi.inbound.service import InboundIntegrator, reject_document, resolve_and_integrate
from pfi.inbound.worklist import InboundItem, WorklistError, get_item, list_ko

router = APIRouter(prefix="/inbound", tags=["inbound"], responses=AUTH_RESPONSES)


class InboundPage(BaseModel):
    items: list[InboundItem]
    next_before_id: int | None = None
    """Pass as `before_id` for the next (older) page; null on the last page."""


class ReasonRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=2000, description="why (audited)")


class AssignRequest(ReasonRequest):
    patient: str = Field(min_length=1, max_length=64, description="the patient's IPP or INS")


class ResolutionResult(BaseModel):
    outcome: str
    """integrated (the DPI answered AA), ko (refused again: see reason), pending (the DPI
    is unreachable: sent at the next poll), rejected"""
    document: InboundItem


def integrator(request: Request) -> InboundIntegrator:
    found: InboundIntegrator | None = getattr(request.app.state, "inbound", None)
    if found is None:
        raise HTTPException(503, detail="inbound MSSanté integration is not configured here")
    return found


@router.get("/ko", response_model=InboundPage, summary="The KO worklist, newest first")
def list_documents(
    principal: Viewer,
    db: DatabaseDep,
    status: Annotated[
        Literal["ko", "pending", "sending", "integrated", "rejected"],
        Query(description="ko (default): the worklist; or another status"),
    ] = "ko",
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> InboundPage:
    with db.reader() as session:
        items = list_ko(session, before_id=before_id, limit=limit, status=status)
    record_read(
        db,
        principal,
        "inbound_document.list",
        "inbound_document",
        status,
        details={
            "document_ids": [i.id for i in items],
            "patient_ids": sorted({i.patient_id for i in items if i.patient_id is not None}),
        },
    )
    return InboundPage(
        items=list(items),
        next_before_id=items[-1].id if len(items) == limit else None,
    )


@router.get(
    "/ko/{document_id}",
    response_model=InboundItem,
    summary="One received document",
    responses={404: {"description": "no such document"}},
)
def show_document(
    principal: Viewer, db: DatabaseDep, document_id: Annotated[int, Path(ge=1)]
) -> InboundItem:
    with db.reader() as session:
        item = _get(session, document_id)
    record_read(
        db,
        principal,
        "inbound_document.read",
        "inbound_document",
        document_id,
        details={"patient_id": item.patient_id},
    )
    return item


_ACT_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"description": "no such document"},
    409: {"description": "the document is not KO"},
    422: {"description": "no reason, or no single patient with that IPP/INS"},
    503: {"description": "inbound integration is not configured in this process"},
}


@router.post(
    "/ko/{document_id}/assign",
    response_model=ResolutionResult,
    summary="Attach a KO document to a patient (IPP or INS) and send it to the DPI",
    responses=_ACT_RESPONSES,
)
def assign_document(
    principal: Operator,
    request: Request,
    document_id: Annotated[int, Path(ge=1)],
    body: Annotated[AssignRequest, Body()],
) -> ResolutionResult:
    return _resolve(request, principal, document_id, "assign", body.reason, body.patient)


@router.post(
    "/ko/{document_id}/retry",
    response_model=ResolutionResult,
    summary="Look the patient up again and send a KO document to the DPI",
    responses=_ACT_RESPONSES,
)
def retry_document(
    principal: Operator,
    request: Request,
    document_id: Annotated[int, Path(ge=1)],
    body: Annotated[ReasonRequest, Body()],
) -> ResolutionResult:
    return _resolve(request, principal, document_id, "retry", body.reason)


@router.post(
    "/ko/{document_id}/reject",
    response_model=ResolutionResult,
    summary="Close a KO document without integrating it",
    responses={k: v for k, v in _ACT_RESPONSES.items() if k != 503},
)
def reject_one(
    principal: Operator,
    db: DatabaseDep,
    document_id: Annotated[int, Path(ge=1)],
    body: Annotated[ReasonRequest, Body()],
) -> ResolutionResult:
    try:
        reject_document(db, document_id, actor=principal, reason=body.reason)
    except WorklistError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    with db.reader() as session:
        return ResolutionResult(outcome="rejected", document=_get(session, document_id))


def _resolve(
    request: Request,
    principal: Operator,
    document_id: int,
    act: str,
    reason: str,
    patient_key: str = "",
) -> ResolutionResult:
    found = integrator(request)
    try:
        outcome = resolve_and_integrate(
            found, document_id, act, actor=principal, reason=reason, patient_key=patient_key
        )
    except WorklistError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    with found.db.reader() as session:
        return ResolutionResult(outcome=outcome, document=_get(session, document_id))


def _get(session: Session, document_id: int) -> InboundItem:
    try:
        return get_item(session, document_id)
    except WorklistError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
