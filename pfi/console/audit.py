"""The audit trail: who saw, released, replayed or changed what, for the DPO and RSSI.

Two rules make it trustworthy:
- A state change writes its audit entry in the same transaction as the change
  (`record_audit` only adds to the caller's session): no change without its entry,
  no entry for a change that rolled back.
- A read of patient data writes its entry, and commits it, before the data leaves:
  if the trail cannot be written the caller gets an error, not the data.

Actions are named `<target>.<verb>` (`message.read`, `patient.read`, `hold.release`,
`delivery.replay`); `target_type`/`target_id` name what was acted on as the caller
named it, `details` carries what a DPO needs to answer "who saw patient X" (the ids
returned, the IPP/INS concerned) and, for an authenticated caller, the token used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.console.roles import Principal
from pfi.store import Database
from pfi.store.models import AuditEntry, utcnow

_LIMITS = {"actor": 200, "action": 64, "target_type": 64, "target_id": 200}


def record_audit(
    session: Session,
    actor: Principal | str,
    action: str,
    target_type: str,
    target_id: str | int,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one audit entry to `session` (the caller commits, with its change).

    `actor` is a Principal for API calls (its token id goes into details) or a plain
    name for the CLI and the engine itself (e.g. "cli:root", "engine").
    """
    details = dict(details or {})
    if isinstance(actor, Principal):
        details.setdefault("token_id", actor.token_id)
        actor = actor.name
    values = {
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
    }
    for field, value in values.items():
        if not value:
            raise ValueError(f"audit entry: {field} is empty")
        if len(value) > _LIMITS[field]:
            raise ValueError(
                f"audit entry: {field} is {len(value)} characters, at most {_LIMITS[field]}"
            )
    entry = AuditEntry(at=utcnow(), reason=reason, details=details or None, **values)
    session.add(entry)
    return entry


def record_read(
    db: Database,
    actor: Principal | str,
    action: str,
    target_type: str,
    target_id: str | int,
    details: dict[str, Any] | None = None,
) -> None:
    """Commit the entry for a read, before the caller returns what was read."""
    with db.transaction() as session:
        record_audit(session, actor, action, target_type, target_id, details=details)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 50


def find_audit_entries(session: Session, f: AuditFilter) -> list[AuditEntry]:
    """Newest first; page on with `before_id` = the last id of the previous page."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(f.limit)
    if f.actor:
        query = query.where(AuditEntry.actor == f.actor)
    if f.action:
        query = query.where(AuditEntry.action == f.action)
    if f.target_type:
        query = query.where(AuditEntry.target_type == f.target_type)
    if f.target_id:
        query = query.where(AuditEntry.target_id == f.target_id)
    if f.since:
        query = query.where(AuditEntry.at >= f.since)
    if f.until:
        query = query.where(AuditEntry.at < f.until)
    if f.before_id:
        query = query.where(AuditEntry.id < f.before_id)
    return list(session.scalars(query))
