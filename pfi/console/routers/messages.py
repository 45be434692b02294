"""`/api/messages`: the stored HL7 messages, searchable the way `pfi messages` is.

Both endpoints are reads of patient data (viewer) and are audited before they answer:
a search records the filters and the ids it returned, a single read records the
message and the patient it concerns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict

from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Viewer
from pfi.intake.queries import MessageFilter, find_messages
from pfi.store.models import Message
from pfi.transforms.hl7 import Hl7Error, codec_for

router = APIRouter(prefix="/messages", tags=["messages"], responses=AUTH_RESPONSES)

MessageStatus = Literal["accepted", "rejected", "duplicate"]

#: Python codec of MSH-18 → the charset name HTTP clients know.
_HTTP_CHARSETS = {
    "ascii": "us-ascii",
    "latin-1": "iso-8859-1",
    "iso8859-15": "iso-8859-15",
    "utf-8": "utf-8",
}


class MessageSummary(BaseModel):
    """A received message as listed: who sent it, what it is, what PFI answered."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    received_at: datetime
    sending_application: str
    sending_facility: str
    control_id: str
    message_type: str
    status: str
    """accepted (ACK AA, processed), rejected (AE/AR, kept with its reason) or duplicate
    (same sender and MSH-10 seen before: ACKed again, not processed twice)."""
    ack_code: str
    ipp: str | None
    ins: str | None
    reason: str | None
    duplicate_of: int | None
    size: int


class MessageDetail(MessageSummary):
    """One message's metadata; `?raw=true` on the same URL returns its bytes."""

    remote_addr: str | None
    version: str
    charset: str
    error_code: int | None


class MessagePage(BaseModel):
    items: list[MessageSummary]
    next_before_id: int | None = None
    """Pass as `before_id` for the next (older) page; null on the last page."""


@router.get("", response_model=MessagePage, summary="Search messages, newest first")
def list_messages(
    principal: Viewer,
    db: DatabaseDep,
    source: Annotated[str | None, Query(max_length=16, description="DPI, SGL, RIS...")] = None,
    status_: Annotated[MessageStatus | None, Query(alias="status")] = None,
    control_id: Annotated[str | None, Query(max_length=200, description="MSH-10")] = None,
    ipp: Annotated[str | None, Query(max_length=64, description="patient IPP (PID-3)")] = None,
    ins: Annotated[str | None, Query(max_length=64, description="patient INS")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, description="paging cursor")] = None,
) -> MessagePage:
    query = MessageFilter(
        source=source,
        status=status_,
        control_id=control_id,
        ipp=ipp,
        ins=ins,
        limit=limit + 1,
        before_id=before_id,
        with_raw=False,
    )
    with db.reader() as session:
        rows = find_messages(session, query)
        items = [MessageSummary.model_validate(m) for m in rows[:limit]]
    filters = {
        k: v
        for k, v in {
            "source": source,
            "status": status_,
            "control_id": control_id,
            "ipp": ipp,
            "ins": ins,
            "before_id": before_id,
        }.items()
        if v is not None
    }
    record_read(
        db,
        principal,
        "message.search",
        "messages",
        _search_target(filters),
        details={
            "filters": filters,
            "message_ids": [m.id for m in items],
            "ipps": sorted({m.ipp for m in items if m.ipp}),
            "ins": sorted({m.ins for m in items if m.ins}),
        },
    )
    return MessagePage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)


@router.get(
    "/{message_id}",
    response_model=MessageDetail,
    summary="One message: metadata, or with ?raw=true its bytes as received",
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "metadata as JSON; with raw=true the message bytes unchanged "
            "(segments separated by CR) in the charset of MSH-18",
        },
        404: {"description": "no message with this id"},
    },
)
def get_message(
    principal: Viewer,
    db: DatabaseDep,
    message_id: Annotated[int, Path(ge=1)],
    raw: Annotated[bool, Query(description="return the raw HL7 as text/plain")] = False,
) -> MessageDetail | Response:
    with db.reader() as session:
        message = session.get(Message, message_id)
        if message is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no message {message_id}")
        detail = MessageDetail.model_validate(message)
        body = message.raw if raw else b""
    record_read(
        db,
        principal,
        "message.read_raw" if raw else "message.read",
        "message",
        message_id,
        details={"ipp": detail.ipp, "ins": detail.ins, "control_id": detail.control_id},
    )
    if not raw:
        return detail
    return Response(
        content=body,
        media_type=f"text/plain; charset={_http_charset(detail.charset)}",
        headers={"X-HL7-Charset": detail.charset.encode("ascii", "replace").decode() or "-"},
    )


def _http_charset(msh18: str) -> str:
    """The charset to declare; latin-1 for unknown ones (e.g. a rejected message's
    bogus MSH-18), so that every byte still shows and none is altered."""
    try:
        return _HTTP_CHARSETS.get(codec_for(msh18), "iso-8859-1")
    except Hl7Error:
        return "iso-8859-1"


def _search_target(filters: dict[str, object]) -> str:
    """What the search was about, e.g. `ipp=IPP77&source=SGL`, `*` for everything."""
    target = "&".join(f"{k}={v}" for k, v in filters.items() if k != "before_id") or "*"
    return target if len(target) <= 200 else target[:199] + "…"
