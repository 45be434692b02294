"""Routing document versions into the ledger, and routing them again when a fact changes.

`Router` is what every caller uses, in its own transaction:
- the routing stage: `route_version` for each DOCUMENTS event;
- the identity stage: `release_for_patient` when an ADT qualifies a patient's INS;
- an operator (HTTP, CLI): `release_hold`, `change_masking`;
- the HL7 release triggers: `release_by_signal`.

Each returns `LedgerChanges`; its `outgoing` delivery requests go to the outbox in the
same transaction (a stage appends them to its context, the HTTP API and the CLI call
`add_to_outbox`). A re-decision locks the version's `routings` row first (PostgreSQL;
SQLite has one writer anyway), so an operator's release and an ADT arriving together
cannot both send the same document. The routing stage reads the patient FOR UPDATE for
the same reason: the identity stage updates that row before looking for held
deliveries, so either it sees this version's holds, or this version sees the
qualified identity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from pfi.bus.outbox import OutgoingRecord
from pfi.config import Settings
from pfi.console.roles import Principal
from pfi.documents.release import ReleaseRefused, release_unmapped_hold_by_id
from pfi.documents.repository import HOLD_UNMAPPED
from pfi.routes.decision import decide, reevaluate
from pfi.routes.document_meta import DocumentMeta
from pfi.routes.inputs import DestinationKind, PatientFacts, RoutingInput
from pfi.routes.ledger import (
    CLOSED,
    LEFT,
    ROUTING_ACTOR,
    LedgerChanges,
    LedgerWriter,
    delivery_key,
)
from pfi.routes.model import RELEASABLE_HOLDS, Action, DocumentKind, HoldKind, Routes
from pfi.routes.mss_recipients import (
    RESOLUTION_OFF,
    AnnuaireRecipientResolver,
    ResolvedRecipients,
    merge_recipients,
    unresolved_all,
)
from pfi.routes.outcome import Outcome, RoutingDecision
from pfi.routes.release import ReleaseSignal
from pfi.routes.stored_input import input_from_json, input_to_json
from pfi.store.ids import fast_insert
from pfi.store.models import (
    Delivery,
    Document,
    DocumentVersion,
    Hold,
    Patient,
    Routing,
    utcnow,
)

log = logging.getLogger(__name__)

#: Routing reads a version's facts, never its content: the CDA (with its PDF) and the
#: validation findings can weigh megabytes.
_WITHOUT_CONTENT = (
    defer(DocumentVersion.cda),
    defer(DocumentVersion.pdf),
    defer(DocumentVersion.findings),
    defer(DocumentVersion.validation),
)
#: Version statuses that are routed (documents stage: valid, or a withdrawal).
ROUTABLE_STATUSES = frozenset({"valid", "withdrawn"})
#: Holds a new version of the same document keeps released (the patient was informed,
#: the geneticist released it): a correction does not undo the announcement.
CARRIED_RELEASES = frozenset({HoldKind.ANNOUNCEMENT, HoldKind.RETAIN})
IDENTITY_ACTOR = "pfi:identity"


class RoutingRefused(Exception):
    """An operator's request that cannot be done; `status` is the HTTP code to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class DocumentEvent:
    """The fields of a DOCUMENTS record (documents.avsc) routing uses."""

    document_id: int
    version_id: int
    set_id: str
    version: int
    action: str
    patient_key: str
    received_at: datetime

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> DocumentEvent:
        return cls(
            document_id=value["document_id"],
            version_id=value["version_id"],
            set_id=value["set_id"],
            version=value["version"],
            action=value["action"],
            patient_key=value["patient_key"],
            received_at=value["received_at"],
        )


@dataclass(frozen=True)
class MaskingChange:
    """An operator's masking act: the masking before, the decision after, the effects."""

    document_id: int
    version_id: int
    version: int
    before: Mapping[str, Any]
    decision: RoutingDecision
    changes: LedgerChanges


class Router:
    """`recipients`: resolves the RPPS-only prescriber and copies of built reports to
    MSSanté addresses (`recipient_resolver_of(settings)`); without it they are recorded
    as unresolved (refused rows with the reason), never dropped."""

    def __init__(self, routes: Routes, recipients: AnnuaireRecipientResolver | None = None) -> None:
        self.routes = routes
        self.recipients = recipients

    def _resolve(
        self, session: Session, meta: DocumentMeta, patient: Patient | None
    ) -> ResolvedRecipients:
        if self.recipients is None:
            if not meta.to_resolve:
                return ResolvedRecipients()
            return unresolved_all(meta.to_resolve, RESOLUTION_OFF)
        people = self.recipients.people_to_resolve(
            meta, patient.attending if patient is not None else None
        )
        return self.recipients.resolve(session, meta, people)

    # -- first routing (the stage) -------------------------------------------------

    def route_version(self, session: Session, event: DocumentEvent) -> LedgerChanges | None:
        """Decide and write the ledger for one document version; None if already done."""
        found = session.execute(
            select(DocumentVersion, Document)
            .join(Document, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.id == event.version_id)
            .options(*_WITHOUT_CONTENT)
        ).one_or_none()
        if found is None:
            raise ValueError(
                f"document version {event.version_id} ({event.set_id} v{event.version}) is "
                "not in the store"
            )
        version, document = found
        if session.scalar(select(Routing.id).where(Routing.document_version_id == version.id)):
            log.debug("version %d already routed; event ignored", version.id)
            return None
        if version.status not in ROUTABLE_STATUSES:
            log.info(
                "document %s v%d not routed: status %s",
                event.set_id,
                version.version,
                version.status,
            )
            return None
        meta = DocumentMeta.from_json(version.meta)
        patient = self._patient_for_update(session, document.patient_id)
        first_version = version.version <= 1  # most documents: nothing earlier to read
        if not first_version:
            # Earlier versions' rows may be superseded below: take their routing locks
            # first, as a release of one of their holds would (same lock order).
            session.scalars(
                select(Routing.id)
                .where(Routing.document_id == document.id)
                .order_by(Routing.document_version_id)
                .with_for_update()
            ).all()
        earlier = (
            []
            if first_version
            else list(
                session.scalars(
                    select(Delivery)
                    .join(DocumentVersion, Delivery.document_version_id == DocumentVersion.id)
                    .where(
                        DocumentVersion.document_id == document.id,
                        DocumentVersion.version < version.version,
                    )
                    .order_by(DocumentVersion.version, Delivery.revision, Delivery.id)
                )
            )
        )
        delivered_before = frozenset(
            delivery_key(row) for row in earlier if row.status in LEFT and row.revision == 0
        )
        carried = (
            (frozenset(), {})
            if first_version
            else self._carried_acts(session, document.id, version.version)
        )
        resolved = self._resolve(session, meta, patient)
        routing_input = RoutingInput(
            source=document.source,
            document_kind=_document_kind(document.document_type),
            document_code=document.document_code,
            action=Action(version.action.lower()),
            sender_metadata=meta.sender_metadata,
            confidentiality=version.confidentiality_code or "N",
            patient=patient_facts(patient),
            recipients=merge_recipients(meta.routing_recipients, resolved.recipients),
            unresolved_recipients=resolved.unresolved,
            recipient_notes=resolved.notes,
            patient_address=meta.patient_address,
            patient_may_not_reply=meta.patient_may_not_reply,
            delivered_before=delivered_before,
            released_holds=carried[0],
            operator_masking=carried[1],
        )
        decision = decide(self.routes, routing_input)
        now = utcnow()
        values = {
            "document_version_id": version.id,
            "document_id": document.id,
            "patient_key": event.patient_key,
            "received_at": event.received_at,
            "route": decision.route,
            "input": input_to_json(routing_input),
            "decision": decision.to_json(),
            "revision": 0,
            "created_at": now,
            "updated_at": now,
        }
        # Core insert: the stage's hot path inside SQLite's write lock (see LedgerWriter)
        fast_insert(session, Routing.__table__, [values])  # type: ignore[arg-type]
        routing = Routing(**values)  # what the writer reads; not added to the session
        writer = LedgerWriter(
            session,
            routing,
            version,
            document,
            meta,
            actor=ROUTING_ACTOR,
            reason=f"routed by {decision.route!r}" if decision.route else "routed (no route)",
        )
        sender_release = (
            "released by the sender's visibility update (MODIF_CONF_CODE=Y, "
            f"INVISIBLE_PATIENT=N) in version {version.version}"
            if HoldKind.ANNOUNCEMENT in decision.released_holds
            else None
        )
        for row in earlier:
            if row.status == "held":
                writer.supersede(row, version.version, sender_release)
            elif row.status in LEFT and row.revision == 0:
                # the hold an earlier copy still answered to passes to this version's rows
                writer.close_holds(
                    row,
                    kinds=None,
                    reason=sender_release or f"superseded by version {version.version}",
                    action="hold.release" if sender_release else "hold.close",
                )
        latest_left = _latest_left(earlier)
        writer.add_all(
            decision, [(dest, _previous(dest, latest_left)) for dest in decision.destinations]
        )
        for warning in decision.warnings:
            log.info("document %s v%d: %s", event.set_id, version.version, warning)
        writer.changes.decisions.append(decision)
        return writer.changes

    # -- deciding again --------------------------------------------------------------

    def redecide(
        self,
        session: Session,
        routing: Routing,
        *,
        actor: Principal | str,
        reason: str,
        patient: PatientFacts | None = None,
        released: frozenset[HoldKind] = frozenset(),
        operator_masking: Mapping[str, bool] | None = None,
    ) -> LedgerChanges:
        """Decide again with one fact changed and bring the ledger in line.

        Held rows follow the new decision; rows that left stay as they are, except the
        DMP copy whose masking changed: it gets an update_masking row (ITI-57).
        """
        found = session.execute(
            select(DocumentVersion, Document)
            .join(Document, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.id == routing.document_version_id)
            .options(*_WITHOUT_CONTENT)
        ).one()
        version, document = found
        meta = DocumentMeta.from_json(version.meta)
        stored = input_from_json(routing.input)
        new_input, decision = reevaluate(
            self.routes,
            stored,
            patient=patient,
            released=released,
            operator_masking=operator_masking,
        )
        writer = LedgerWriter(session, routing, version, document, meta, actor=actor, reason=reason)
        rows = list(
            session.scalars(
                select(Delivery)
                .where(Delivery.document_version_id == version.id)
                .order_by(Delivery.revision, Delivery.id)
            )
        )
        first = {delivery_key(r): r for r in rows if r.revision == 0}
        latest = {delivery_key(r): r for r in rows if r.status not in CLOSED}
        seen: set[str] = set()
        for dest in decision.destinations:
            seen.add(dest.key)
            row = first.get(dest.key)
            previous = _previous_of(row)
            if row is None:
                writer.add(decision, dest, previous_delivery_id=None)
            elif row.status == "held":
                writer.apply(row, decision, dest, previous_delivery_id=previous)
            elif (
                row.status in LEFT
                and dest.kind is DestinationKind.DMP
                and dest.outcome is Outcome.SEND
                and stored.action is not Action.DELETION
            ):
                writer.masking_update(row, latest.get(dest.key, row), decision, dest)
        for key, row in first.items():
            if key not in seen and row.status == "held":
                writer.drop(row, f"no longer routed here: {reason}")
            elif released and row.status in LEFT:
                # a row that left under a hold it still answered to (the DMP copy sent
                # invisible for an announcement): that hold ends with this release
                writer.close_holds(row, kinds={k.value for k in released})
                session.flush()  # release_hold refreshes the hold it was asked to release
        routing.input = input_to_json(new_input)
        routing.decision = decision.to_json()
        routing.route = decision.route
        routing.revision += 1
        routing.updated_at = utcnow()
        writer.changes.decisions.append(decision)
        return writer.changes

    # -- the acts that make it decide again -------------------------------------------

    def release_for_patient(
        self, session: Session, patient: Patient, *, actor: str = IDENTITY_ACTOR
    ) -> LedgerChanges:
        """The identity stage changed this patient: release what waited for a qualified INS.

        Called in the identity stage's transaction after its update, so that the patient
        row is locked (see the module docstring).
        """
        changes = LedgerChanges()
        facts = patient_facts(patient)
        if not facts.ins_qualified:
            return changes
        session.flush()
        routings = session.scalars(
            select(Routing)
            .where(
                Routing.document_version_id.in_(
                    select(Hold.document_version_id).where(
                        Hold.released_at.is_(None), Hold.kind == HoldKind.IDENTITY.value
                    )
                ),
                Routing.document_id.in_(
                    select(Document.id).where(Document.patient_id == patient.id)
                ),
            )
            .order_by(Routing.document_version_id)
            .with_for_update()
        ).all()
        for routing in routings:
            changes.merge(
                self.redecide(
                    session,
                    routing,
                    actor=actor,
                    reason=f"identity qualified (INS {facts.ins}, PID-32 "
                    f"{patient.identity_status or '?'})",
                    patient=facts,
                )
            )
        return changes

    def patient_changed(self, session: Session, patient: Patient) -> list[OutgoingRecord]:
        """The identity stage's hook (`IdentityStage(on_patient_changed=...)`)."""
        return self.release_for_patient(session, patient).outgoing

    def release_hold(
        self, session: Session, hold_id: int, *, actor: Principal | str, reason: str
    ) -> tuple[Hold, LedgerChanges]:
        """An operator releases a hold: the whole version's hold of that kind ends.

        A document held before routing (unmapped LOINC code) is released by the documents
        stage's rule: its message goes back to be rebuilt with the current mapping.
        """
        row = session.execute(
            select(Hold.document_version_id, Hold.kind).where(Hold.id == hold_id)
        ).one_or_none()
        if row is None:
            raise RoutingRefused(404, f"no hold {hold_id}")
        version_id, hold_kind = row
        if hold_kind == HOLD_UNMAPPED:
            try:
                release_unmapped_hold_by_id(
                    session, hold_id, actor=str(getattr(actor, "name", actor)), reason=reason
                )
            except ReleaseRefused as exc:
                raise RoutingRefused(409, str(exc)) from None
            released = session.get(Hold, hold_id)
            assert released is not None
            return released, LedgerChanges()
        # Lock order everywhere: the version's routing row, then its ledger rows.
        routing = self._routing_for_update(session, version_id)
        hold = session.scalar(
            select(Hold)
            .where(Hold.id == hold_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert hold is not None
        if hold.released_at is not None:
            raise RoutingRefused(
                409,
                f"hold {hold_id} was already released at {hold.released_at.isoformat()} by "
                f"{hold.released_by}",
            )
        kind = _hold_kind(hold.kind)
        if kind is None or kind not in RELEASABLE_HOLDS:
            raise RoutingRefused(409, _not_releasable(hold.kind))
        if routing is None:
            raise RoutingRefused(409, f"hold {hold_id}: its document version was not routed")
        changes = self.redecide(
            session, routing, actor=actor, reason=reason, released=frozenset({kind})
        )
        session.refresh(hold)
        return hold, changes

    def change_masking(
        self,
        session: Session,
        document_id: int,
        flags: Mapping[str, bool],
        *,
        actor: Principal | str,
        reason: str,
    ) -> MaskingChange:
        """An operator masks or unmasks a document: applies to its latest routed version."""
        document = session.get(Document, document_id)
        if document is None:
            raise RoutingRefused(404, f"no document {document_id}")
        version_id = session.scalar(
            select(Routing.document_version_id)
            .join(DocumentVersion, Routing.document_version_id == DocumentVersion.id)
            .where(DocumentVersion.document_id == document_id)
            .order_by(DocumentVersion.version.desc())
            .limit(1)
        )
        if version_id is None:
            raise RoutingRefused(409, f"document {document_id} has not been routed yet")
        routing = self._routing_for_update(session, version_id)
        assert routing is not None
        if routing.input.get("action") == Action.DELETION.value:
            raise RoutingRefused(409, f"document {document_id} was withdrawn: nothing to mask")
        before = dict(routing.decision.get("masking") or {})
        changes = self.redecide(
            session, routing, actor=actor, reason=reason, operator_masking=dict(flags)
        )
        version_number = session.scalar(
            select(DocumentVersion.version).where(DocumentVersion.id == version_id)
        )
        assert version_number is not None
        return MaskingChange(
            document_id=document_id,
            version_id=version_id,
            version=version_number,
            before=before,
            decision=changes.decisions[-1],
            changes=changes,
        )

    def release_by_signal(
        self, session: Session, signal: ReleaseSignal, *, actor: str, reason: str
    ) -> tuple[list[int], LedgerChanges]:
        """An HL7 release trigger fired: release its kind of hold on the document it names,
        where that hold lists the trigger. Returns the released version ids."""
        changes = LedgerChanges()
        released: list[int] = []
        if signal.problem:
            return released, changes
        candidates = session.execute(
            select(Routing, DocumentVersion, Document)
            .join(DocumentVersion, Routing.document_version_id == DocumentVersion.id)
            .join(Document, DocumentVersion.document_id == Document.id)
            .where(
                Routing.document_version_id.in_(
                    select(Hold.document_version_id).where(
                        Hold.released_at.is_(None), Hold.kind == signal.releases.value
                    )
                )
            )
            .order_by(Routing.document_version_id)
            .options(*_WITHOUT_CONTENT)
        ).all()
        for routing, version, document in candidates:
            if not _names_document(signal, version, document):
                continue
            if not _hold_lists_trigger(routing.decision, signal):
                log.warning(
                    "release trigger %r names %s v%d but its %s hold does not list this trigger",
                    signal.trigger,
                    document.set_id,
                    version.version,
                    signal.releases.value,
                )
                continue
            locked = self._routing_for_update(session, version.id)
            assert locked is not None
            changes.merge(
                self.redecide(
                    session,
                    locked,
                    actor=actor,
                    reason=reason,
                    released=frozenset({signal.releases}),
                )
            )
            released.append(version.id)
        return released, changes

    # -- reading -------------------------------------------------------------------

    @staticmethod
    def _patient_for_update(session: Session, patient_id: int | None) -> Patient | None:
        if patient_id is None:
            return None
        patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update())
        seen = set()
        while patient is not None and patient.merged_into_id is not None:
            if patient.id in seen:
                break
            seen.add(patient.id)
            patient = session.scalar(
                select(Patient).where(Patient.id == patient.merged_into_id).with_for_update()
            )
        return patient

    @staticmethod
    def _routing_for_update(session: Session, version_id: int) -> Routing | None:
        return session.scalar(
            select(Routing).where(Routing.document_version_id == version_id).with_for_update()
        )

    @staticmethod
    def _carried_acts(
        session: Session, document_id: int, version: int
    ) -> tuple[frozenset[HoldKind], dict[str, bool]]:
        """Releases and operator masking of the previous routed version of the document."""
        stored = session.scalar(
            select(Routing.input)
            .join(DocumentVersion, Routing.document_version_id == DocumentVersion.id)
            .where(DocumentVersion.document_id == document_id, DocumentVersion.version < version)
            .order_by(DocumentVersion.version.desc())
            .limit(1)
        )
        if not stored:
            return frozenset(), {}
        released = frozenset(
            HoldKind(h) for h in stored.get("released_holds", []) if h in CARRIED_RELEASES
        )
        return released, dict(stored.get("operator_masking") or {})


def recipient_resolver_of(settings: Settings) -> AnnuaireRecipientResolver | None:
    """The resolver `pfi.yaml` asks for: None without an mssante section."""
    if settings.mssante is None:
        return None
    return AnnuaireRecipientResolver(settings.mssante.recipients)


def patient_facts(patient: Patient | None) -> PatientFacts:
    if patient is None:
        return PatientFacts(ins_qualified=False)
    return PatientFacts.from_store(qualified=patient.qualified, ins=patient.ins, pam=patient.pam)


def _document_kind(document_type: str) -> DocumentKind:
    upper = (document_type or "").strip().upper()
    for kind in (DocumentKind.CR_BIO, DocumentKind.CR_IMG):
        if upper == kind.value:
            return kind
    return DocumentKind.OTHER


def _latest_left(earlier: list[Delivery]) -> dict[str, Delivery]:
    """Per destination key, the newest revision-0 delivery of an earlier version that left."""
    out: dict[str, Delivery] = {}
    for row in earlier:  # ordered by version: later ones overwrite
        if row.revision == 0 and row.status in LEFT:
            out[delivery_key(row)] = row
    return out


def _previous(dest: Any, latest_left: Mapping[str, Delivery]) -> int | None:
    row = latest_left.get(dest.key)
    return row.id if row is not None else None


def _previous_of(row: Delivery | None) -> int | None:
    if row is None or not row.request:
        return None
    value = row.request.get("previous_delivery_id")
    return int(value) if value is not None else None


def _hold_kind(kind: str) -> HoldKind | None:
    try:
        return HoldKind(kind)
    except ValueError:
        return None


def _not_releasable(kind: str) -> str:
    reasons = {
        HoldKind.IDENTITY.value: "an identity hold ends when an ADT qualifies the patient's INS",
        HoldKind.MASKING.value: "a masking hold ends when the masking is lifted "
        "(POST /api/documents/{id}/masking, or the sender's update)",
    }
    return reasons.get(
        kind,
        f"a {kind} hold is not released by routing (announcement, retain and review are)",
    )


def _names_document(signal: ReleaseSignal, version: DocumentVersion, document: Document) -> bool:
    meta = DocumentMeta.from_json(version.meta)
    value = signal.key_value.strip()
    if signal.key_kind == "filler_order_number":
        return value == meta.orders.filler
    if signal.key_kind == "placer_order_number":
        return value == meta.orders.placer
    if signal.key_kind == "accession_number":
        return value == meta.orders.accession
    return value in {document.set_id, version.document_uid, meta.unique_document_number} - {""}


def _hold_lists_trigger(decision: Mapping[str, Any], signal: ReleaseSignal) -> bool:
    for dest in decision.get("destinations", []):
        for hold in [*dest.get("holds", []), *dest.get("watching", [])]:
            if hold.get("kind") == signal.releases.value and signal.trigger in hold.get(
                "released_by", []
            ):
                return True
    return False


__all__ = [
    "DocumentEvent",
    "LedgerChanges",
    "MaskingChange",
    "Router",
    "RoutingDecision",
    "RoutingRefused",
    "patient_facts",
    "recipient_resolver_of",
]
