"""Operator tools on the delivery ledger: list, show and replay deliveries.

"A refused delivery is recorded with the destination's reason and can be replayed": the
on-call operator reads why (the destination's own words, the last transient error, the
dead letter), fixes the cause with the destination, and sends it again. A replay is the
same act from the CLI (`pfi deliveries replay`) and the API
(`POST /api/deliveries/{id}/replay`): in one transaction the row goes back to pending
with its attempts reset, a DeliveryRequest (attempt 0, as routing publishes it) goes to
the outbox, its dead letter (if any) is marked replayed, and the audit trail says who
and why. What the row said before the replay is kept in `request["replays"]`, so that
`show` still tells the whole story.

Not replayed, with a clear error: a delivery that went (delivered, acknowledged), one
still on its way (pending, sending), one waiting for a hold (released, not replayed),
one superseded by a newer version, and one refused by routing itself (its current
decision refuses that destination: a patient's opposition...): sending that would
override a decision, not retry a delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from pfi.bus import codec
from pfi.bus.outbox import OutgoingRecord, add_to_outbox
from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS
from pfi.console.audit import record_audit
from pfi.console.roles import Principal
from pfi.routes.ledger import actor_name, delivery_key, topic_for
from pfi.store.models import (
    AuditEntry,
    DeadLetter,
    Delivery,
    Document,
    DocumentVersion,
    Hold,
    Routing,
    utcnow,
)

#: Statuses a replay takes back to pending.
REPLAYABLE = frozenset({"refused", "failed", "dead_letter"})
#: Why each other status is not replayed (the operator reads this).
_NOT_REPLAYABLE = {
    "delivered": "it was delivered",
    "acknowledged": "it was delivered and acknowledged by its recipient",
    "pending": "it is already waiting to be sent",
    "sending": "it is being sent right now",
    "held": "it is held: release its hold instead (`pfi holds release`)",
    "superseded": "a newer version of the document went instead",
}
#: At most this many deliveries in one bulk replay (one transaction).
MAX_BULK_REPLAY = 500
#: Dead letters of the delivery topics searched for the one of a delivery, at most.
_DEAD_LETTER_SCAN = 1000


class ReplayRefused(Exception):
    """A replay that must not happen; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    destination: str | None = None
    document_type: str | None = None
    since: datetime | None = None  # last change (updated_at) at or after
    document_id: int | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class DeliveryListing:
    """One ledger row with the document it carries: what an operator scans (and what
    `/api/deliveries` answers)."""

    id: int
    #: pending, sending, delivered, refused, failed, dead_letter, held, superseded,
    #: acknowledged
    status: str
    destination: str  # dmp, mss_pro or mss_patient
    recipient: str
    operation: str
    revision: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    refusal_reason: str | None  # the destination's own words when it refused
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    document_id: int
    set_id: str
    document_type: str
    title: str
    source: str
    patient_id: int | None
    version_id: int
    version: int
    action: str


@dataclass(frozen=True)
class HoldSummary:
    id: int
    kind: str
    reason: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


@dataclass(frozen=True)
class AuditSummary:
    id: int
    at: datetime
    actor: str
    action: str
    reason: str | None
    details: dict[str, Any] | None


@dataclass(frozen=True)
class DeadLetterSummary:
    id: int
    stage: str
    status: str
    error_type: str
    error: str
    created_at: datetime
    replayed_at: datetime | None
    replay_count: int


@dataclass(frozen=True)
class DeliveryDetail:
    """A delivery with everything that explains it: request, holds, dead letters, audit."""

    delivery: DeliveryListing
    request: dict[str, Any]
    holds: list[HoldSummary]
    dead_letters: list[DeadLetterSummary]
    audit: list[AuditSummary]

    @property
    def replays(self) -> list[dict[str, Any]]:
        return list(self.request.get("replays", []))


@dataclass(frozen=True)
class ReplayResult:
    delivery_id: int
    previous_status: str
    destination: str
    dead_letters_replayed: list[int] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------


def _listing_query() -> Any:
    return (
        select(Delivery, DocumentVersion, Document)
        .join(DocumentVersion, Delivery.document_version_id == DocumentVersion.id)
        .join(Document, DocumentVersion.document_id == Document.id)
        .options(defer(DocumentVersion.cda), defer(DocumentVersion.pdf))
    )


def find_deliveries(session: Session, f: DeliveryFilter) -> list[DeliveryListing]:
    """Newest first; page on with `before_id` = the last id of the previous page."""
    query = _listing_query().order_by(Delivery.id.desc()).limit(f.limit)
    if f.status:
        query = query.where(Delivery.status == f.status)
    if f.destination:
        query = query.where(Delivery.destination == f.destination)
    if f.document_type:
        query = query.where(Document.document_type == f.document_type)
    if f.since is not None:
        query = query.where(Delivery.updated_at >= f.since)
    if f.document_id is not None:
        query = query.where(Document.id == f.document_id)
    if f.before_id:
        query = query.where(Delivery.id < f.before_id)
    return [_listing(*row) for row in session.execute(query).all()]


def get_delivery(session: Session, delivery_id: int) -> DeliveryDetail | None:
    row = session.execute(_listing_query().where(Delivery.id == delivery_id)).one_or_none()
    if row is None:
        return None
    delivery, version, document = row
    holds = [
        HoldSummary(
            h.id, h.kind, h.reason, h.created_at, h.released_at, h.released_by, h.release_reason
        )
        for h in session.scalars(
            select(Hold).where(Hold.delivery_id == delivery_id).order_by(Hold.id)
        )
    ]
    audit = [
        AuditSummary(a.id, a.at, a.actor, a.action, a.reason, a.details)
        for a in session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "delivery", AuditEntry.target_id == str(delivery_id))
            .order_by(AuditEntry.id)
            .limit(200)
        )
    ]
    patient_key = _patient_key(session, version.id)
    dead = [
        DeadLetterSummary(
            d.id,
            d.stage,
            d.status,
            d.error_type,
            d.error,
            d.created_at,
            d.replayed_at,
            d.replay_count,
        )
        for d in dead_letters_of(session, delivery_id, patient_key, open_only=False)
    ]
    return DeliveryDetail(
        delivery=_listing(delivery, version, document),
        request=dict(delivery.request or {}),
        holds=holds,
        dead_letters=dead,
        audit=audit,
    )


def dead_letters_of(
    session: Session, delivery_id: int, patient_key: str, *, open_only: bool
) -> list[DeadLetter]:
    """The dead letters of the delivery requests for `delivery_id`.

    A dead letter keeps the record as it was on the topic (key = the patient key, value =
    the Avro DeliveryRequest); the delivery id is inside the value, so the search narrows
    on topic and key (one patient's few records) and decodes only those.
    """
    query = (
        select(DeadLetter)
        .where(
            DeadLetter.topic.in_([DELIVER_DMP.name, DELIVER_MSS.name]),
            DeadLetter.key == patient_key.encode(),
        )
        .order_by(DeadLetter.id)
        .limit(_DEAD_LETTER_SCAN)
    )
    if open_only:
        query = query.where(DeadLetter.status == "open")
    found = []
    for dead in session.scalars(query):
        try:
            value = codec.decode("delivery", dead.value)
        except Exception:  # a record that was not a DeliveryRequest: not this delivery's
            continue
        if value.get("delivery_id") == delivery_id:
            found.append(dead)
    return found


# -- replay ----------------------------------------------------------------------------


def replay_delivery(
    session: Session,
    delivery_id: int,
    *,
    actor: Principal | str,
    reason: str,
    now: datetime | None = None,
) -> ReplayResult:
    """Send a refused, failed or dead-lettered delivery again, in the caller's transaction.

    Raises `ReplayRefused` (404: no such delivery; 409: not replayable, with why).
    """
    reason = reason.strip()
    if len(reason) < 3:
        raise ReplayRefused("a replay needs a reason of a few words (it is audited)", 422)
    now = now or utcnow()
    row = session.execute(
        _listing_query().where(Delivery.id == delivery_id).with_for_update(of=Delivery)
    ).one_or_none()
    if row is None:
        raise ReplayRefused(f"no delivery {delivery_id}", 404)
    delivery, version, document = row
    _check_replayable(session, delivery, version, document)
    routing = session.scalar(select(Routing).where(Routing.document_version_id == version.id))
    patient_key = routing.patient_key if routing is not None else ""
    previous = {
        "at": now.isoformat(),
        "by": actor_name(actor),
        "reason": reason,
        "previous_status": delivery.status,
        "attempts": delivery.attempts,
        "refusal_reason": delivery.refusal_reason,
        "last_error": delivery.last_error,
    }
    request = dict(delivery.request or {})
    request["replays"] = [*request.get("replays", []), previous]
    delivery.request = request
    previous_status = delivery.status
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = None
    delivery.last_error = None
    delivery.refusal_reason = None
    delivery.updated_at = now
    replayed: list[int] = []
    for dead in dead_letters_of(session, delivery.id, patient_key, open_only=True):
        dead.status = "replayed"
        dead.replayed_at = now
        dead.replay_count = (dead.replay_count or 0) + 1
        replayed.append(dead.id)
    add_to_outbox(
        session,
        [
            OutgoingRecord(
                topic_for(delivery.destination),
                patient_key.encode(),
                {
                    "delivery_id": delivery.id,
                    "document_id": document.id,
                    "version_id": version.id,
                    "destination": delivery.destination,
                    "action": version.action,
                    "patient_key": patient_key,
                    "attempt": 0,
                    "received_at": routing.received_at
                    if routing is not None
                    else version.received_at,
                },
                None,
            )
        ],
    )
    record_audit(
        session,
        actor,
        "delivery.replay",
        "delivery",
        delivery.id,
        reason=reason,
        details={
            "document_id": document.id,
            "set_id": document.set_id,
            "version": version.version,
            "destination": delivery.destination,
            "recipient": delivery.recipient,
            "operation": delivery.operation,
            "previous_status": previous_status,
            "previous_attempts": previous["attempts"],
            "refusal_reason": previous["refusal_reason"],
            "last_error": previous["last_error"],
            "dead_letters_replayed": replayed,
        },
    )
    session.flush()
    return ReplayResult(delivery.id, previous_status, delivery.destination, replayed)


def replay_matching(
    session: Session,
    *,
    status: str,
    destination: str | None,
    actor: Principal | str,
    reason: str,
    limit: int = 100,
    since: datetime | None = None,
    now: datetime | None = None,
) -> list[ReplayResult]:
    """Replay up to `limit` deliveries in `status` (to `destination`, last changed at or
    after `since`), oldest first.

    Rows that are not replayable for a reason of their own (refused by routing, a newer
    version went) are skipped, not fatal: the caller reports how many went.
    """
    if status not in REPLAYABLE:
        raise ReplayRefused(
            f"status {status!r} is not replayed; one of: {', '.join(sorted(REPLAYABLE))}", 422
        )
    if not 1 <= limit <= MAX_BULK_REPLAY:
        raise ReplayRefused(f"limit must be between 1 and {MAX_BULK_REPLAY}", 422)
    query = select(Delivery.id).where(Delivery.status == status).order_by(Delivery.id)
    if destination:
        query = query.where(Delivery.destination == destination)
    if since is not None:
        query = query.where(Delivery.updated_at >= since)
    results: list[ReplayResult] = []
    # scan a bounded window: skipped rows must not make the loop unbounded
    for delivery_id in session.scalars(query.limit(limit * 4)):
        if len(results) >= limit:
            break
        try:  # refusals are raised before anything is changed: no savepoint needed
            results.append(
                replay_delivery(session, delivery_id, actor=actor, reason=reason, now=now)
            )
        except ReplayRefused as exc:
            if exc.status == 422:
                raise
            continue
    return results


def _check_replayable(
    session: Session, delivery: Delivery, version: DocumentVersion, document: Document
) -> None:
    what = f"delivery {delivery.id} ({delivery.destination}, status {delivery.status})"
    if delivery.status not in REPLAYABLE:
        why = _NOT_REPLAYABLE.get(delivery.status, "its status is not one that is replayed")
        raise ReplayRefused(f"{what} is not replayed: {why}")
    if delivery.status == "refused" and _refused_by_routing(session, delivery):
        raise ReplayRefused(
            f"{what} was refused by routing, not by the destination "
            f"({delivery.refusal_reason or 'no reason'}): change what routing decided from "
            "(identity, masking, routes) instead of replaying it"
        )
    newer = session.scalar(
        select(DocumentVersion.version)
        .join(Delivery, Delivery.document_version_id == DocumentVersion.id)
        .where(
            DocumentVersion.document_id == document.id,
            DocumentVersion.version > version.version,
            Delivery.destination == delivery.destination,
            Delivery.recipient == delivery.recipient,
        )
        .order_by(DocumentVersion.version.desc())
        .limit(1)
    )
    if newer is not None:
        raise ReplayRefused(
            f"{what} is not replayed: version {newer} of document {document.id} was routed to "
            "the same destination since; that one carries the current content"
        )


def _refused_by_routing(session: Session, delivery: Delivery) -> bool:
    """Routing's current decision for this destination is a refusal (the patient's
    opposition, a DMP not to be fed...): the row never reached the delivery stage."""
    if delivery.revision != 0:
        return False
    decision = session.scalar(
        select(Routing.decision).where(Routing.document_version_id == delivery.document_version_id)
    )
    key = delivery_key(delivery)
    for dest in (decision or {}).get("destinations", []):
        if dest.get("key") == key:
            return bool(dest.get("outcome") == "refuse")
    return False


def _patient_key(session: Session, version_id: int) -> str:
    key = session.scalar(
        select(Routing.patient_key).where(Routing.document_version_id == version_id)
    )
    return key or ""


def _listing(delivery: Delivery, version: DocumentVersion, document: Document) -> DeliveryListing:
    return DeliveryListing(
        id=delivery.id,
        status=delivery.status,
        destination=delivery.destination,
        recipient=delivery.recipient,
        operation=delivery.operation,
        revision=delivery.revision,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_error=delivery.last_error,
        refusal_reason=delivery.refusal_reason,
        external_id=delivery.external_id,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        delivered_at=delivery.delivered_at,
        acknowledged_at=delivery.acknowledged_at,
        document_id=document.id,
        set_id=document.set_id,
        document_type=document.document_type,
        title=document.title,
        source=document.source,
        patient_id=document.patient_id,
        version_id=version.id,
        version=version.version,
        action=version.action,
    )
