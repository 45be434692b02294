"""From ledger rows to `DeliveryJob`s: what the delivery stage reads before it sends.

For each delivery request the stage asks `plan_deliveries` what to do with its row, in a
short transaction, and gets a `Plan`:
- skip: the row already ended (delivered, refused, superseded, acknowledged) or waits
  for an operator (held): a redelivered request does nothing (a request for a
  dead-lettered row is a replay: sent again);
- supersede: a newer version of the document (or its withdrawal) has its own row for the
  same destination and recipient, and this one never left: the newer one goes instead;
- wait: the row acts on an earlier delivery still on its way (a replacement whose
  predecessor is failed and will be retried, a masking update before the submission
  reached the DMP): try again later, without counting an attempt;
- close: nothing to send (a withdrawal of a version that never reached the destination
  is done; a masking update of a document that never got there is refused);
- send: with the `DeliveryJob` (row, version with its content, document, patient, and the
  external id and stored answer of the delivery it replaces / updates / deletes).

Reads are batched per polled batch: rows, versions, documents and patients in one query
each. The predecessor of a replacement or an update is resolved per row (rare, small).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pfi.delivery.sender import DeliveryJob, DocumentSnapshot, PatientSnapshot
from pfi.store.models import Delivery, Document, DocumentVersion, Patient

#: Statuses a delivery request finds its row in when there is nothing left to do.
DONE = frozenset({"delivered", "refused", "superseded", "acknowledged", "held"})
#: Statuses of a row that is on its way (may be sent now). A request for a dead-lettered
#: row is a replay: a new event (the stage's inbox drops a redelivered one), and nothing
#: else publishes requests for such rows.
SENDABLE = frozenset({"pending", "failed", "sending", "dead_letter"})
#: Statuses of a delivery that reached its destination.
REACHED = frozenset({"delivered", "acknowledged"})
#: Statuses of an earlier delivery that may still reach its destination.
IN_FLIGHT = frozenset({"pending", "sending", "failed"})
#: Statuses of a revision-0 row that counts as the newer version having gone (or going).
NEWER_GOES = frozenset({"pending", "sending", "delivered", "failed", "acknowledged"})

PlanKind = Literal["skip", "supersede", "wait", "close", "send"]


@dataclass(frozen=True, slots=True)
class Plan:
    kind: PlanKind
    delivery_id: int
    reason: str = ""
    job: DeliveryJob | None = None
    #: close: the status to end the row in (delivered for a no-op, refused)
    close_status: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """The fields of a delivery request (delivery.avsc) the stage needs."""

    delivery_id: int
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Previous:
    row: Delivery | None = None
    wait: str = ""
    refuse: str = ""
    refuse_status: str = "refused"


def plan_deliveries(
    session: Session, requests: Sequence[Request], *, lock: bool = False
) -> dict[int, Plan]:
    """What to do with each requested row (by delivery id), reading in batches."""
    ids = sorted({r.delivery_id for r in requests})
    if not ids:
        return {}
    query = select(Delivery).where(Delivery.id.in_(ids))
    if lock:
        query = query.with_for_update()
    rows = {row.id: row for row in session.scalars(query)}
    correlation = {r.delivery_id: r.correlation_id for r in requests}
    plans: dict[int, Plan] = {}
    live = []
    for delivery_id in ids:
        row = rows.get(delivery_id)
        if row is None:
            plans[delivery_id] = Plan("skip", delivery_id, f"no delivery {delivery_id}")
        elif row.status in DONE or row.status not in SENDABLE:
            plans[delivery_id] = Plan("skip", delivery_id, f"already {row.status}")
        else:
            live.append(row)
    if not live:
        return plans
    versions = _versions(session, {r.document_version_id for r in live})
    newer = _newer_versions(session, live, versions)
    to_send: list[tuple[Delivery, _Previous]] = []
    for row in live:
        version = versions[row.document_version_id]
        by = newer.get(row.id)
        if by is not None and row.attempts == 0 and row.status == "pending":
            what = "withdrawal" if by[1] == "DELETION" else "version"
            plans[row.id] = Plan(
                "supersede",
                row.id,
                f"superseded by {what} {by[0]} before it was sent",
            )
            continue
        previous = _previous(session, row, version)
        if previous.wait:
            plans[row.id] = Plan("wait", row.id, previous.wait)
        elif previous.refuse:
            plans[row.id] = Plan(
                "close", row.id, previous.refuse, close_status=previous.refuse_status
            )
        elif row.operation == "delete" and previous.row is None:
            plans[row.id] = Plan(
                "close",
                row.id,
                "nothing to withdraw: no earlier version reached the destination",
                close_status="delivered",
            )
        else:
            to_send.append((row, previous))
    if to_send:
        documents, patients = _documents_and_patients(session, versions, to_send)
        for row, previous in to_send:
            version = versions[row.document_version_id]
            document = documents[version.document_id]
            patient = patients.get(document.patient_id) if document.patient_id else None
            withdrawn = _withdrawn_cda(session, version) if row.destination != "dmp" else None
            plans[row.id] = Plan(
                "send",
                row.id,
                job=_job(
                    row,
                    version,
                    document,
                    patient,
                    previous,
                    correlation.get(row.id),
                    withdrawn_cda=withdrawn,
                ),
            )
    return plans


# -- reading -----------------------------------------------------------------------


def _withdrawn_cda(session: Session, version: DocumentVersion) -> bytes | None:
    """For a withdrawal (no CDA of its own): the CDA it withdraws, the latest earlier
    version's. A mail announcing a deletion carries it in its XDM (action D); the DMP
    deletes by entry id and needs none."""
    if version.cda is not None or version.action != "DELETION":
        return None
    return session.scalar(
        select(DocumentVersion.cda)
        .where(
            DocumentVersion.document_id == version.document_id,
            DocumentVersion.version < version.version,
            DocumentVersion.cda.is_not(None),
        )
        .order_by(DocumentVersion.version.desc())
        .limit(1)
    )


def _versions(session: Session, ids: Iterable[int]) -> dict[int, DocumentVersion]:
    return {
        v.id: v for v in session.scalars(select(DocumentVersion).where(DocumentVersion.id.in_(ids)))
    }


def _newer_versions(
    session: Session, rows: Sequence[Delivery], versions: Mapping[int, DocumentVersion]
) -> dict[int, tuple[int, str]]:
    """Per row, the newest later version of its document with a revision-0 row for the
    same destination and recipient that goes (or went): (version number, action)."""
    document_ids = {versions[r.document_version_id].document_id for r in rows}
    found = session.execute(
        select(
            DocumentVersion.document_id,
            DocumentVersion.version,
            DocumentVersion.action,
            Delivery.destination,
            Delivery.recipient,
        )
        .join(Delivery, Delivery.document_version_id == DocumentVersion.id)
        .where(
            DocumentVersion.document_id.in_(document_ids),
            Delivery.revision == 0,
            Delivery.status.in_(NEWER_GOES),
        )
    ).all()
    newest: dict[tuple[int, str, str], tuple[int, str]] = {}
    for document_id, number, action, destination, recipient in found:
        key = (document_id, destination, recipient)
        if key not in newest or newest[key][0] < number:
            newest[key] = (number, action)
    out: dict[int, tuple[int, str]] = {}
    for row in rows:
        version = versions[row.document_version_id]
        best = newest.get((version.document_id, row.destination, row.recipient))
        if best is not None and best[0] > version.version:
            out[row.id] = best
    return out


def _previous(session: Session, row: Delivery, version: DocumentVersion) -> _Previous:
    if row.operation == "update_masking":
        return _updated(session, row)
    if row.operation in ("replace", "delete"):
        return _replaced(session, row)
    return _Previous()


def _replaced(session: Session, row: Delivery) -> _Previous:
    """The delivery of the replaced version, following the ledger's chain back past the
    versions that never reached the destination (refused, superseded, dead letters)."""
    pid = (row.request or {}).get("previous_delivery_id")
    seen: set[int] = set()
    while pid is not None and int(pid) not in seen:
        seen.add(int(pid))
        prev = session.get(Delivery, int(pid))
        if prev is None:
            return _Previous()
        if prev.status in REACHED:
            return _Previous(_current_of(session, prev, below=None) or prev)
        if prev.status in IN_FLIGHT:
            return _Previous(
                wait=f"waiting for delivery {prev.id} (the version it replaces, "
                f"{prev.status}) to reach the destination first"
            )
        pid = (prev.request or {}).get("previous_delivery_id")
    return _Previous()


def _updated(session: Session, row: Delivery) -> _Previous:
    """The latest metadata version of this document version at the destination: an
    update must follow the submission and the updates before it."""
    earlier = list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.document_version_id == row.document_version_id,
                Delivery.destination == row.destination,
                Delivery.recipient == row.recipient,
                Delivery.revision < row.revision,
            )
            .order_by(Delivery.revision)
        )
    )
    first = earlier[0] if earlier else None
    if first is None:
        return _Previous(refuse="not sent: no delivery of this version to update")
    if first.status in ("refused", "dead_letter", "superseded"):
        return _Previous(
            refuse=f"not sent: the document never reached the destination (delivery "
            f"{first.id} is {first.status})",
            refuse_status="superseded" if first.status == "superseded" else "refused",
        )
    busy = [r for r in earlier if r.status in IN_FLIGHT]
    if busy:
        return _Previous(
            wait=f"waiting for delivery {busy[0].id} ({busy[0].operation}, {busy[0].status}) "
            "to reach the destination first"
        )
    reached = [r for r in earlier if r.status in REACHED and r.external_id]
    if not reached:
        return _Previous(refuse="not sent: the document never reached the destination")
    return _Previous(reached[-1])


def _current_of(session: Session, row: Delivery, *, below: int | None) -> Delivery | None:
    """The newest delivered revision of `row`'s version at its destination (a masking
    update gives the DMP entry a new id: replacing or deleting targets that one)."""
    query = (
        select(Delivery)
        .where(
            Delivery.document_version_id == row.document_version_id,
            Delivery.destination == row.destination,
            Delivery.recipient == row.recipient,
            Delivery.status.in_(REACHED),
            Delivery.external_id.is_not(None),
        )
        .order_by(Delivery.revision.desc())
        .limit(1)
    )
    if below is not None:
        query = query.where(Delivery.revision < below)
    return session.scalar(query)


def _documents_and_patients(
    session: Session,
    versions: Mapping[int, DocumentVersion],
    rows: Sequence[tuple[Delivery, _Previous]],
) -> tuple[dict[int, Document], dict[int, Patient]]:
    document_ids = {versions[r.document_version_id].document_id for r, _ in rows}
    documents = {
        d.id: d for d in session.scalars(select(Document).where(Document.id.in_(document_ids)))
    }
    patient_ids = {d.patient_id for d in documents.values() if d.patient_id is not None}
    patients: dict[int, Patient] = {}
    if patient_ids:
        found = {
            p.id: p
            for p in session.scalars(
                select(Patient)
                .where(Patient.id.in_(patient_ids))
                .options(selectinload(Patient.identifiers))
            )
        }
        for patient_id in patient_ids:
            patients[patient_id] = _surviving(session, found[patient_id])
    return documents, patients


def _surviving(session: Session, patient: Patient) -> Patient:
    """A merged patient's record is the one it was merged into (A40)."""
    seen = {patient.id}
    while patient.merged_into_id is not None and patient.merged_into_id not in seen:
        target = session.get(Patient, patient.merged_into_id)
        if target is None:
            break
        seen.add(target.id)
        patient = target
    return patient


# -- building ----------------------------------------------------------------------


def _job(
    row: Delivery,
    version: DocumentVersion,
    document: Document,
    patient: Patient | None,
    previous: _Previous,
    correlation_id: str | None,
    *,
    withdrawn_cda: bytes | None = None,
) -> DeliveryJob:
    prev = previous.row
    return DeliveryJob(
        delivery_id=row.id,
        destination=row.destination,
        recipient=row.recipient,
        operation=row.operation,
        revision=row.revision,
        attempt=row.attempts + 1,
        request=dict(row.request or {}),
        document=DocumentSnapshot(
            document_id=document.id,
            version_id=version.id,
            set_id=document.set_id,
            document_type=document.document_type,
            document_code=document.document_code,
            title=document.title,
            source=document.source,
            version=version.version,
            action=version.action,
            document_uid=version.document_uid,
            replaces_uid=version.replaces_uid,
            confidentiality_code=version.confidentiality_code,
            effective_time=version.effective_time,
            cda=version.cda if withdrawn_cda is None else withdrawn_cda,
            pdf=version.pdf,
            meta=dict(version.meta or {}),
        ),
        patient=patient_snapshot(patient),
        previous_external_id=prev.external_id if prev is not None else None,
        correlation_id=correlation_id,
        previous_detail=dict((prev.request or {}).get("result") or {}) if prev else {},
        # an attempt in flight when the worker died, or a replay after attempts that may
        # have reached the destination (time-outs): "already there" means delivered
        resumed=row.status in ("sending", "dead_letter"),
    )


def patient_snapshot(patient: Patient | None) -> PatientSnapshot:
    if patient is None:
        return PatientSnapshot(
            patient_id=None,
            ins=None,
            ins_oid=None,
            qualified=False,
            birth_name="",
            used_name="",
            first_name="",
            first_names="",
            birth_date=None,
            sex="",
        )
    return PatientSnapshot(
        patient_id=patient.id,
        ins=patient.ins,
        ins_oid=patient.ins_oid,
        qualified=patient.qualified,
        birth_name=patient.birth_name,
        used_name=patient.used_name,
        first_name=patient.first_name,
        first_names=patient.first_names,
        birth_date=patient.birth_date,
        sex=patient.sex,
        identifiers=tuple((i.authority, i.value, i.authority_oid) for i in patient.identifiers),
    )


def request_of(value: Mapping[str, Any], correlation_id: str | None) -> Request:
    return Request(int(value["delivery_id"]), correlation_id)
