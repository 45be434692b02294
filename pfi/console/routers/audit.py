"""`/api/audit`: the audit trail, for admins (DPO, RSSI). Reading it is audited too."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from pfi.console.audit import AuditFilter, find_audit_entries, record_read
from pfi.console.deps import AUTH_RESPONSES, Admin, DatabaseDep

router = APIRouter(prefix="/audit", tags=["audit"], responses=AUTH_RESPONSES)


class AuditEntryView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    """The user name (API) or the CLI/engine actor."""
    action: str
    """`<target>.<verb>`: message.read, message.read_raw, message.search, patient.read,
    audit.read; later hold.release, delivery.replay..."""
    target_type: str
    target_id: str
    reason: str | None
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryView]
    next_before_id: int | None = None
    """Pass as `before_id` for the next (older) page; null on the last page."""


@router.get("", response_model=AuditPage, summary="Search the audit trail, newest first")
def list_audit_entries(
    principal: Admin,
    db: DatabaseDep,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target_type: Annotated[str | None, Query(max_length=64)] = None,
    target_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 with offset, e.g. 2024-03-01T00:00Z")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, description="paging cursor")] = None,
) -> AuditPage:
    query = AuditFilter(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit + 1,
    )
    with db.reader() as session:
        rows = find_audit_entries(session, query)
        items = [AuditEntryView.model_validate(e) for e in rows[:limit]]
    filters = {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in {
            "actor": actor,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "since": since,
            "until": until,
            "before_id": before_id,
        }.items()
        if v is not None
    }
    record_read(
        db,
        principal,
        "audit.read",
        "audit_log",
        actor or "*",
        details={"filters": filters, "returned": len(items)},
    )
    return AuditPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)
