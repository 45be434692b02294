"""The delivery ledger as routing writes it: one row per version × destination, its holds,
and the delivery requests published for what may leave now.

Rules kept here so that the stage, the identity release, the operator's release and the
HL7 release triggers all write the ledger the same way:
- a row's status follows the decision: pending (and a request published) for send,
  held (with one open `holds` row per hold kind) for hold, refused (with the reason) for
  refuse; a row that already left is never re-sent by a new decision;
- every hold placed or closed is in the audit trail with who and why;
- a masking change on a DMP copy that already left is a new row (`revision` n + 1,
  operation update_masking, ITI-57) pointing at the delivery it updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.bus.outbox import OutgoingRecord
from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS
from pfi.console.audit import record_audit
from pfi.console.roles import Principal
from pfi.routes.document_meta import DocumentMeta
from pfi.routes.inputs import DestinationKind, destination_key
from pfi.routes.model import HoldKind
from pfi.routes.outcome import Destination, Operation, Outcome, RoutingDecision
from pfi.routes.outcome import Hold as RouteHold
from pfi.store.ids import allocate_ids, fast_insert
from pfi.store.models import Delivery, Document, DocumentVersion, Hold, Routing, utcnow

#: Statuses of a delivery that left, or is on its way: a new decision never sends it again.
LEFT = frozenset({"pending", "sending", "delivered", "failed", "acknowledged"})
#: Statuses that end a delivery without it leaving.
CLOSED = frozenset({"refused", "dead_letter", "superseded"})

ROUTING_ACTOR = "pfi:routing"


class LedgerRow(Protocol):
    """What publishing and holding need of a delivery row: an ORM `Delivery`, or the
    `NewDelivery` of a row inserted in bulk."""

    id: int
    document_version_id: int
    destination: str
    recipient: str


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: int
    document_version_id: int
    destination: str
    recipient: str


@dataclass
class LedgerChanges:
    """What one routing or re-routing did: ids for the caller, records to publish."""

    outgoing: list[OutgoingRecord] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    #: Destination of each row newly held (for the deliveries metric).
    held_destinations: list[str] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    holds_placed: list[int] = field(default_factory=list)
    holds_closed: list[int] = field(default_factory=list)
    masking_updates: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    #: The decisions taken, in order (one per version routed or decided again).
    decisions: list[RoutingDecision] = field(default_factory=list)

    def merge(self, other: LedgerChanges) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


def delivery_key(row: Delivery) -> str:
    """The routing destination key of a ledger row (see `destination_key`)."""
    if row.destination == DestinationKind.MSS_PRO.value:
        return destination_key(DestinationKind.MSS_PRO, row.recipient)
    return row.destination


def topic_for(destination: str) -> Any:
    return DELIVER_DMP if destination == DestinationKind.DMP.value else DELIVER_MSS


class LedgerWriter:
    """Writes one version's decision into the ledger, in the caller's transaction."""

    def __init__(
        self,
        session: Session,
        routing: Routing,
        version: DocumentVersion,
        document: Document,
        meta: DocumentMeta,
        *,
        actor: Principal | str,
        reason: str,
        now: datetime | None = None,
    ) -> None:
        self.session = session
        self.routing = routing
        self.version = version
        self.document = document
        self.meta = meta
        self.actor = actor
        self.reason = reason
        self.now = now or utcnow()
        self.changes = LedgerChanges()

    # -- requests ------------------------------------------------------------------

    def request_json(
        self,
        decision: RoutingDecision,
        dest: Destination,
        *,
        previous_delivery_id: int | None,
    ) -> dict[str, Any]:
        """What the delivery worker needs beyond the row: masking, bodies, options, why."""
        mail: dict[str, Any] | None = None
        if dest.kind is DestinationKind.MSS_PRO:
            mail = {"body": decision.mail.ps_body, "origin": decision.mail.ps_origin.value}
        elif dest.kind is DestinationKind.MSS_PATIENT:
            mail = {
                "body": decision.mail.patient_body,
                "origin": decision.mail.patient_origin.value,
            }
        return {
            "key": dest.key,
            "role": dest.role,
            "address": dest.address,
            "operation": dest.operation.value,
            "previous_delivery_id": previous_delivery_id,
            "route": decision.route,
            "requested_by": list(dest.requested_by),
            "no_reply": dest.no_reply,
            "reply_to": self.meta.reply_to,
            "masking": decision.masking.to_json(),
            "confidentiality_codes": [list(c) for c in decision.masking.confidentiality_codes()],
            "acks": decision.acks.to_json(),
            "mail": mail,
            "holds": [h.to_json() for h in dest.holds],
            "warnings": list(decision.warnings),
        }

    def publish(self, row: LedgerRow) -> None:
        """Queue the delivery request (delivery.avsc) for a row that may leave now."""
        self.changes.outgoing.append(
            OutgoingRecord(
                topic_for(row.destination),
                self.routing.patient_key.encode(),
                {
                    "delivery_id": row.id,
                    "document_id": self.document.id,
                    "version_id": self.version.id,
                    "destination": row.destination,
                    "action": self.version.action,
                    "patient_key": self.routing.patient_key,
                    "attempt": 0,
                    "received_at": self.routing.received_at,
                },
                None,
            )
        )
        self.changes.sent.append(row.id)

    # -- rows ----------------------------------------------------------------------

    def add(
        self,
        decision: RoutingDecision,
        dest: Destination,
        *,
        previous_delivery_id: int | None,
    ) -> NewDelivery:
        """A new revision-0 row for a destination of this version."""
        return self.add_all(decision, [(dest, previous_delivery_id)])[0]

    def add_all(
        self,
        decision: RoutingDecision,
        items: Sequence[tuple[Destination, int | None]],
    ) -> list[NewDelivery]:
        """New revision-0 rows, inserted with one executemany (ids allocated first) and
        their holds with one flush: the stage does this per document, inside SQLite's
        only write lock, where the ORM's per-row inserts cost as much as the decision."""
        table = Delivery.__table__
        ids = allocate_ids(self.session, table, len(items))  # type: ignore[arg-type]
        values = [
            {
                "id": row_id,
                "document_version_id": self.version.id,
                "destination": dest.kind.value,
                "recipient": dest.address,
                "operation": dest.operation.value,
                "revision": 0,
                "status": _status(dest.outcome),
                "attempts": 0,
                "refusal_reason": dest.refusal or None,
                "request": self.request_json(decision, dest, previous_delivery_id=previous),
                "created_at": self.now,
                "updated_at": self.now,
            }
            for row_id, (dest, previous) in zip(ids, items, strict=True)
        ]
        fast_insert(self.session, table, values)  # type: ignore[arg-type]
        rows = [
            NewDelivery(v["id"], self.version.id, v["destination"], v["recipient"]) for v in values
        ]
        to_hold: list[tuple[LedgerRow, RouteHold]] = []
        for row, (dest, _) in zip(rows, items, strict=True):
            if dest.outcome is Outcome.SEND:
                self.publish(row)
                to_hold.extend((row, hold) for hold in dest.watching)
            elif dest.outcome is Outcome.HOLD:
                self.changes.held.append(row.id)
                self.changes.held_destinations.append(row.destination)
                to_hold.extend((row, hold) for hold in dest.holds)
            else:
                self.changes.refused.append(row.id)
        self.place_holds(to_hold)
        return rows

    def apply(
        self,
        row: Delivery,
        decision: RoutingDecision,
        dest: Destination,
        *,
        previous_delivery_id: int | None,
    ) -> None:
        """A held row meets a new decision: it leaves, stays held (holds in sync) or is
        refused. Rows that left or were closed are the caller's business, not this."""
        assert row.status == "held", row.status
        row.request = self.request_json(decision, dest, previous_delivery_id=previous_delivery_id)
        row.operation = dest.operation.value
        if dest.address and row.destination == DestinationKind.MSS_PATIENT.value:
            row.recipient = dest.address  # known once the INS is qualified
        row.updated_at = self.now
        if dest.outcome is Outcome.SEND:
            row.status = "pending"
            self.close_holds(row, kinds=None)
            self.session.flush()
            self.publish(row)
            self.place_holds([(row, hold) for hold in dest.watching])
        elif dest.outcome is Outcome.HOLD:
            self.sync_holds(row, dest)
            self.changes.held.append(row.id)
        else:
            row.status = "refused"
            row.refusal_reason = dest.refusal
            self.close_holds(row, kinds=None, reason=f"{self.reason}; now refused: {dest.refusal}")
            self.changes.refused.append(row.id)

    def drop(self, row: Delivery, why: str) -> None:
        """A held row the new decision no longer routes anywhere: refused, never silent."""
        row.status = "refused"
        row.refusal_reason = why
        row.updated_at = self.now
        self.close_holds(row, kinds=None, reason=f"{self.reason}; {why}")
        self.changes.refused.append(row.id)

    def supersede(self, row: Delivery, by_version: int, release_reason: str | None) -> None:
        """A held row of an earlier version: the new version goes instead (or withdraws)."""
        row.status = "superseded"
        row.refusal_reason = f"superseded by version {by_version} before it was sent"
        row.updated_at = self.now
        self.close_holds(
            row,
            kinds=None,
            reason=release_reason or f"superseded by version {by_version}",
            action="hold.release" if release_reason else "hold.close",
        )
        self.changes.superseded.append(row.id)

    def masking_update(
        self, sent: Delivery, latest: Delivery, decision: RoutingDecision, dest: Destination
    ) -> Delivery | None:
        """The DMP copy left with other masking: a new ITI-57 row, if anything changed."""
        codes = [list(c) for c in decision.masking.confidentiality_codes()]
        if (latest.request or {}).get("confidentiality_codes") == codes:
            return None
        update = Destination(
            kind=dest.kind,
            role=dest.role,
            outcome=Outcome.SEND,
            operation=Operation.UPDATE_MASKING,
            address=dest.address,
            requested_by=(self.reason,),
        )
        revision = (
            self.session.scalar(
                select(Delivery.revision)
                .where(
                    Delivery.document_version_id == sent.document_version_id,
                    Delivery.destination == sent.destination,
                )
                .order_by(Delivery.revision.desc())
                .limit(1)
            )
            or 0
        ) + 1
        row = Delivery(
            document_version_id=sent.document_version_id,
            destination=sent.destination,
            recipient=sent.recipient,
            operation=Operation.UPDATE_MASKING.value,
            revision=revision,
            status="pending",
            attempts=0,
            request=self.request_json(decision, update, previous_delivery_id=sent.id),
            created_at=self.now,
            updated_at=self.now,
        )
        self.session.add(row)
        self.session.flush()
        record_audit(
            self.session,
            self.actor,
            "delivery.update_masking",
            "delivery",
            row.id,
            reason=self.reason,
            details={
                "document_id": self.document.id,
                "version": self.version.version,
                "updates_delivery_id": sent.id,
                "before": (latest.request or {}).get("confidentiality_codes"),
                "after": codes,
            },
        )
        self.changes.masking_updates.append(row.id)
        self.publish(row)
        return row

    # -- holds ---------------------------------------------------------------------

    def open_holds(self, row: Delivery) -> list[Hold]:
        return list(
            self.session.scalars(
                select(Hold).where(Hold.delivery_id == row.id, Hold.released_at.is_(None))
            )
        )

    def sync_holds(self, row: Delivery, dest: Destination) -> None:
        """Open holds = the decision's holds: close the kinds it lost, place the new ones."""
        wanted = {h.kind.value: h for h in dest.holds}
        open_ = self.open_holds(row)
        gone = [h.kind for h in open_ if h.kind not in wanted]
        if gone:
            self.close_holds(row, kinds=gone, current=open_)
        have = {h.kind for h in open_}
        self.place_holds([(row, h) for kind, h in wanted.items() if kind not in have])

    def place_holds(self, holds: Sequence[tuple[LedgerRow, RouteHold]]) -> None:
        """Open holds rows (one executemany for all), each audited as placed by routing."""
        if not holds:
            return
        table = Hold.__table__
        ids = allocate_ids(self.session, table, len(holds))  # type: ignore[arg-type]
        fast_insert(
            self.session,
            table,  # type: ignore[arg-type]
            [
                {
                    "id": hold_id,
                    "document_version_id": row.document_version_id,
                    "delivery_id": row.id,
                    "kind": hold.kind.value,
                    "reason": hold.reason,
                    "created_at": self.now,
                }
                for hold_id, (row, hold) in zip(ids, holds, strict=True)
            ],
        )
        for hold_id, (row, hold) in zip(ids, holds, strict=True):
            record_audit(
                self.session,
                ROUTING_ACTOR,
                "hold.place",
                "hold",
                hold_id,
                reason=hold.reason,
                details=self._details(row, hold.kind.value, released_by=list(hold.released_by)),
            )
            self.changes.holds_placed.append(hold_id)

    def close_holds(
        self,
        row: Delivery,
        *,
        kinds: Iterable[str] | None,
        reason: str | None = None,
        action: str = "hold.release",
        current: Sequence[Hold] | None = None,
    ) -> None:
        wanted = set(kinds) if kinds is not None else None
        for hold in current if current is not None else self.open_holds(row):
            if hold.released_at is not None or (wanted is not None and hold.kind not in wanted):
                continue
            hold.released_at = self.now
            hold.released_by = actor_name(self.actor)[:200]
            hold.release_reason = reason or self.reason
            record_audit(
                self.session,
                self.actor,
                action,
                "hold",
                hold.id,
                reason=hold.release_reason,
                details=self._details(row, hold.kind),
            )
            self.changes.holds_closed.append(hold.id)

    def _details(self, row: LedgerRow, kind: str, **extra: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "delivery_id": row.id,
            "document_id": self.document.id,
            "set_id": self.document.set_id,
            "version": self.version.version,
            "destination": row.destination,
            "recipient": row.recipient,
            **extra,
        }


def actor_name(actor: Principal | str) -> str:
    return actor.name if isinstance(actor, Principal) else actor


def _status(outcome: Outcome) -> str:
    return {Outcome.SEND: "pending", Outcome.HOLD: "held", Outcome.REFUSE: "refused"}[outcome]


def is_hold_kind(kind: str) -> bool:
    return kind in {k.value for k in HoldKind}
