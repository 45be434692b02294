"""Searching stored messages: by source, status, control id, patient (IPP or INS)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from pfi.store.models import Message


@dataclass(frozen=True)
class MessageFilter:
    source: str | None = None
    status: str | None = None
    control_id: str | None = None
    ipp: str | None = None
    ins: str | None = None
    limit: int = 50
    #: paging: only messages older than this id (the last id of the previous page)
    before_id: int | None = None
    #: False leaves the raw bytes (up to several MB each) unloaded, for listings
    with_raw: bool = True


def find_messages(session: Session, f: MessageFilter) -> list[Message]:
    """Newest first."""
    query = select(Message).order_by(Message.id.desc()).limit(f.limit)
    if not f.with_raw:
        query = query.options(defer(Message.raw, raiseload=True))
    if f.before_id:
        query = query.where(Message.id < f.before_id)
    if f.source:
        query = query.where(Message.source == f.source)
    if f.status:
        query = query.where(Message.status == f.status)
    if f.control_id:
        query = query.where(Message.control_id == f.control_id)
    if f.ipp:
        query = query.where(Message.ipp == f.ipp)
    if f.ins:
        query = query.where(Message.ins == f.ins)
    return list(session.scalars(query))
