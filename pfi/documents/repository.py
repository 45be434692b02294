"""Documents, versions, unmapped codes and document holds in the store.

The documents stage reads the state of the document sets a batch touches (once, before
building, from a read snapshot) and writes versions inside its transaction; the CLI and
the HTTP API search versions. Everything keyed on business identity: a document by its
setId, a version by (document, version) and by the CDA id it carries, a message's version
by the message id (a re-delivered message never makes a second version).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from pfi.store.models import (
    Delivery,
    Document,
    DocumentVersion,
    Hold,
    Patient,
    PatientIdentifier,
    Routing,
    UnmappedCode,
    utcnow,
)

HOLD_UNMAPPED = "unmapped_code"

VALID, INVALID, HELD, WITHDRAWN = "valid", "invalid", "held", "withdrawn"
VERSION_STATUSES = (VALID, INVALID, HELD, WITHDRAWN)


@dataclass(frozen=True, slots=True)
class VersionState:
    """What planning needs to know about one stored version."""

    id: int
    document_id: int
    set_id: str
    version: int
    action: str
    status: str
    document_uid: str
    replaces_uid: str | None
    message_id: int | None
    fingerprint: str
    open_unmapped_hold: bool
    release_policy: str  # "" or keep_local (an operator released with local codes)


@dataclass(frozen=True, slots=True)
class SetState:
    """One document set as stored: its row and its latest versions."""

    document_id: int
    set_id: str
    patient_id: int | None
    status: str
    current_version: int
    latest: VersionState | None
    #: the latest version that carries a CDA (what a replacement replaces, a deletion deletes)
    latest_document: VersionState | None


def _version_state(v: DocumentVersion, set_id: str, open_hold: bool) -> VersionState:
    meta = v.meta or {}
    return VersionState(
        id=v.id,
        document_id=v.document_id,
        set_id=set_id,
        version=v.version,
        action=v.action,
        status=v.status,
        document_uid=v.document_uid,
        replaces_uid=v.replaces_uid,
        message_id=v.message_id,
        fingerprint=str(meta.get("fingerprint", "")),
        open_unmapped_hold=open_hold,
        release_policy=str(meta.get("release_policy", "")),
    )


def _open_unmapped_holds(session: Session, version_ids: Sequence[int]) -> set[int]:
    if not version_ids:
        return set()
    return set(
        session.scalars(
            select(Hold.document_version_id).where(
                Hold.document_version_id.in_(version_ids),
                Hold.kind == HOLD_UNMAPPED,
                Hold.released_at.is_(None),
            )
        )
    )


def load_set_states(
    session: Session, set_ids: Iterable[str] = (), document_uids: Iterable[str] = ()
) -> tuple[dict[str, SetState], dict[str, str]]:
    """The sets named by setId, and those holding a version with one of `document_uids`.

    Returns (states by setId, setId by document uid): way (a) finds the set of a
    replaced or deleted document by its CDA id when the CDA carries no setId.
    """
    set_ids = sorted(set(set_ids))
    uids = sorted(set(u for u in document_uids if u))
    set_by_uid: dict[str, str] = {}
    docs: dict[int, Document] = {}
    for chunk in _chunks(set_ids):
        for d in session.scalars(select(Document).where(Document.set_id.in_(chunk))):
            docs[d.id] = d
    for chunk in _chunks(uids):
        rows = session.execute(
            select(DocumentVersion.document_uid, Document)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(DocumentVersion.document_uid.in_(chunk))
        ).all()
        for uid, d in rows:
            docs[d.id] = d
            set_by_uid[uid] = d.set_id
    states: dict[str, SetState] = {}
    if not docs:
        return states, set_by_uid
    versions: dict[int, list[DocumentVersion]] = {}
    for chunk in _chunks(sorted(docs)):
        for v in session.scalars(
            select(DocumentVersion)
            .where(DocumentVersion.document_id.in_(chunk))
            .order_by(DocumentVersion.document_id, DocumentVersion.version)
        ):
            versions.setdefault(v.document_id, []).append(v)
    open_holds = _open_unmapped_holds(session, [v.id for vs in versions.values() for v in vs])
    for d in docs.values():
        vs = versions.get(d.id, [])
        latest = vs[-1] if vs else None
        latest_doc = next((v for v in reversed(vs) if v.action != "DELETION"), None)
        states[d.set_id] = SetState(
            document_id=d.id,
            set_id=d.set_id,
            patient_id=d.patient_id,
            status=d.status,
            current_version=d.current_version,
            latest=_version_state(latest, d.set_id, latest.id in open_holds) if latest else None,
            latest_document=(
                _version_state(latest_doc, d.set_id, latest_doc.id in open_holds)
                if latest_doc
                else None
            ),
        )
    return states, set_by_uid


def versions_of_messages(session: Session, message_ids: Iterable[int]) -> dict[int, VersionState]:
    """The version each message already produced (the latest if several)."""
    ids = sorted(set(message_ids))
    out: dict[int, VersionState] = {}
    found: list[tuple[DocumentVersion, str]] = []
    for chunk in _chunks(ids):
        found += [
            (v, set_id)
            for v, set_id in session.execute(
                select(DocumentVersion, Document.set_id)
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(DocumentVersion.message_id.in_(chunk))
                .order_by(DocumentVersion.id)
            ).all()
        ]
    holds = _open_unmapped_holds(session, [v.id for v, _ in found])
    for v, set_id in found:
        if v.message_id is not None:
            out[v.message_id] = _version_state(v, set_id, v.id in holds)
    return out


def _chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- writes (inside the stage's transaction) -------------------------------------------
def create_document(
    session: Session,
    *,
    set_id: str,
    document_type: str,
    document_code: str,
    title: str,
    source: str,
    patient_id: int | None,
) -> Document:
    doc = Document(
        set_id=set_id[:200],
        document_type=document_type[:32],
        document_code=document_code[:32],
        title=title[:400],
        source=source[:16],
        patient_id=patient_id,
        status="active",
        current_version=0,
    )
    session.add(doc)
    session.flush()
    return doc


def add_version(session: Session, document: Document, **values: Any) -> DocumentVersion:
    """Append version `values['version']` and move the document's pointer to it."""
    version = DocumentVersion(document_id=document.id, **values)
    session.add(version)
    document.current_version = max(document.current_version, version.version)
    document.updated_at = utcnow()
    if version.action == "DELETION":
        document.status = "withdrawn"
    elif version.status in (VALID, HELD, INVALID):
        document.status = "active"
    session.flush()
    return version


def open_hold(session: Session, version_id: int, kind: str, reason: str) -> Hold:
    hold = Hold(document_version_id=version_id, kind=kind, reason=reason)
    session.add(hold)
    session.flush()
    return hold


def close_holds(session: Session, version_id: int, kind: str, *, by: str, reason: str) -> int:
    result = session.execute(
        update(Hold)
        .where(
            Hold.document_version_id == version_id,
            Hold.kind == kind,
            Hold.released_at.is_(None),
        )
        .values(released_at=utcnow(), released_by=by[:200], release_reason=reason)
    )
    return int(result.rowcount or 0)


def count_unmapped(
    session: Session, lab: str, codes: Iterable[tuple[str, str]], now: datetime | None = None
) -> None:
    """Add one occurrence per (code, label) to `loinc_unmapped` (lab = source name)."""
    now = now or utcnow()
    counts: dict[str, tuple[str, int]] = {}
    for code, label in codes:
        _, n = counts.get(code, (label, 0))
        counts[code] = (label, n + 1)
    for code, (label, n) in counts.items():
        row = session.get(UnmappedCode, (lab[:64], code[:64]))
        if row is None:
            session.add(
                UnmappedCode(
                    lab=lab[:64],
                    code=code[:64],
                    label=label[:400],
                    occurrences=n,
                    first_seen=now,
                    last_seen=now,
                )
            )
        else:
            row.occurrences += n
            row.last_seen = now
            if label and not row.label:
                row.label = label[:400]
    session.flush()


# -- searches (CLI, HTTP API) ----------------------------------------------------------
@dataclass(frozen=True)
class VersionFilter:
    ipp: str | None = None
    ins: str | None = None
    status: str | None = None
    document_type: str | None = None
    source: str | None = None
    set_id: str | None = None
    limit: int = 50
    before_id: int | None = None


def find_versions(session: Session, f: VersionFilter) -> list[tuple[DocumentVersion, Document]]:
    """Versions, newest first, with their document (CDA and PDF bytes not loaded)."""
    query = (
        select(DocumentVersion, Document)
        .join(Document, Document.id == DocumentVersion.document_id)
        .options(defer(DocumentVersion.cda), defer(DocumentVersion.pdf))
        .order_by(DocumentVersion.id.desc())
        .limit(f.limit)
    )
    if f.before_id:
        query = query.where(DocumentVersion.id < f.before_id)
    if f.status:
        query = query.where(DocumentVersion.status == f.status)
    if f.document_type:
        query = query.where(Document.document_type == f.document_type)
    if f.source:
        query = query.where(Document.source == f.source)
    if f.set_id:
        query = query.where(Document.set_id == f.set_id)
    if f.ipp or f.ins:
        patient_ids = _patients_matching(session, f.ipp, f.ins)
        if not patient_ids:
            return []
        query = query.where(Document.patient_id.in_(patient_ids))
    return [(v, d) for v, d in session.execute(query).all()]


def _patients_matching(session: Session, ipp: str | None, ins: str | None) -> list[int]:
    """Patients (and those merged into them) with this IPP (any authority) / INS."""
    ids: set[int] = set()
    if ipp:
        ids |= set(
            session.scalars(
                select(PatientIdentifier.patient_id).where(PatientIdentifier.value == ipp)
            )
        )
    if ins:
        ins_ids = set(session.scalars(select(Patient.id).where(Patient.ins == ins)))
        ids = (ids & ins_ids) if ipp else ins_ids
    if ids:
        ids |= set(session.scalars(select(Patient.id).where(Patient.merged_into_id.in_(ids))))
    return sorted(ids)


def version_summary(v: DocumentVersion, d: Document) -> dict[str, Any]:
    """One version as listed by the CLI (`--json`) and the HTTP API."""
    return {
        "id": v.id,
        "document_id": d.id,
        "set_id": d.set_id,
        "version": v.version,
        "action": v.action,
        "status": v.status,
        "document_type": d.document_type,
        "title": d.title,
        "source": d.source,
        "way": v.way,
        "patient_id": d.patient_id,
        "document_uid": v.document_uid,
        "replaces_uid": v.replaces_uid,
        "message_id": v.message_id,
        "received_at": v.received_at,
        "created_at": v.created_at,
        "validation": v.validation,
        "warnings": list((v.meta or {}).get("warnings", [])),
    }


def version_detail(session: Session, v: DocumentVersion, d: Document) -> dict[str, Any]:
    """Everything about one version but its bytes: findings, holds, routing meta."""
    return version_summary(v, d) | {
        "confidentiality_code": v.confidentiality_code,
        "effective_time": v.effective_time,
        "cda_bytes": len(v.cda) if v.cda else 0,
        "pdf_bytes": len(v.pdf) if v.pdf else 0,
        "findings": list(v.findings or []),
        "holds": [
            {
                "id": h.id,
                "kind": h.kind,
                "reason": h.reason,
                "created_at": h.created_at,
                "released_at": h.released_at,
                "released_by": h.released_by,
                "release_reason": h.release_reason,
            }
            for h in version_holds(session, v.id)
        ],
        "meta": dict(v.meta or {}),
        "deliveries": [
            {
                "id": r.id,
                "destination": r.destination,
                "recipient": r.recipient,
                "operation": r.operation,
                "revision": r.revision,
                "status": r.status,
                "reason": r.refusal_reason or r.last_error or "",
                "external_id": r.external_id,
            }
            for r in session.scalars(
                select(Delivery)
                .where(Delivery.document_version_id == v.id)
                .order_by(Delivery.revision, Delivery.id)
            )
        ],
        "routing_warnings": list(
            (
                session.scalar(select(Routing.decision).where(Routing.document_version_id == v.id))
                or {}
            ).get("warnings", [])
        ),
    }


def get_version(session: Session, version_id: int) -> tuple[DocumentVersion, Document] | None:
    v = session.get(DocumentVersion, version_id)
    if v is None:
        return None
    return v, v.document


def version_holds(session: Session, version_id: int) -> list[Hold]:
    return list(
        session.scalars(
            select(Hold).where(Hold.document_version_id == version_id).order_by(Hold.id)
        )
    )


def unmapped_codes(session: Session, lab: str | None = None) -> list[UnmappedCode]:
    """Codes seen without a LOINC mapping, most frequent first."""
    query = select(UnmappedCode).order_by(
        UnmappedCode.occurrences.desc(), UnmappedCode.lab, UnmappedCode.code
    )
    if lab:
        query = query.where(UnmappedCode.lab == lab)
    return list(session.scalars(query))


def count_versions_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(DocumentVersion.status, func.count()).group_by(DocumentVersion.status)
    ).all()
    return {status: int(n) for status, n in rows}
