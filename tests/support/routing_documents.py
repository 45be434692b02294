"""Documents and versions as the documents stage stores them, for routing tests.

Until the documents stage is merged, tests insert `documents` / `document_versions`
rows themselves and put the DOCUMENTS event in the outbox in the same transaction, the
way that stage will: the relay publishes it and the routing stage consumes it for real.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.bus.outbox import OutgoingRecord, add_to_outbox
from pfi.bus.topics import DOCUMENTS
from pfi.routes.document_meta import DocumentMeta, MetaRecipient, OrderNumbers, SourceMessage
from pfi.store.models import Document, DocumentVersion, Patient

PRESCRIBER = "dr.martin@chu-x.mssante.fr"
COPY = "dr.copie@cabinet.mssante.fr"


def lab_meta(
    *, filler: str = "LAB-1", prescriber: str = PRESCRIBER, copy: str = COPY
) -> DocumentMeta:
    return DocumentMeta(
        recipients=(
            MetaRecipient(prescriber, "prescriber", "Dr Martin", "10003", "RPPS"),
            MetaRecipient(copy, "copy", "Dr Copie"),
        ),
        message=SourceMessage("MSG-1", "SIL", "LABO", "ORU^R01"),
        orders=OrderNumbers(placer="PL-1", filler=filler),
    )


def store_version(
    session: Session,
    *,
    patient_id: int | None,
    set_id: str,
    version: int = 1,
    action: str = "INITIAL",
    source: str = "SGL",
    document_type: str = "CR-BIO",
    document_code: str = "11502-2",
    meta: DocumentMeta | None = None,
    status: str | None = None,
    confidentiality: str = "N",
    way: str = "built",
    emit: bool = True,
    patient_key: str = "",
) -> DocumentVersion:
    """Insert (or extend) a document with one version, and its DOCUMENTS event."""
    document = session.scalar(select(Document).where(Document.set_id == set_id))
    if document is None:
        document = Document(
            set_id=set_id,
            document_type=document_type,
            document_code=document_code,
            title=f"{document_type} {set_id}",
            source=source,
            patient_id=patient_id,
            status="active",
            current_version=0,
        )
        session.add(document)
        session.flush()
    withdrawn = action == "DELETION"
    row = DocumentVersion(
        document_id=document.id,
        version=version,
        action=action,
        document_uid=f"1.2.250.1.999.2^{set_id}.{version}",
        status=status or ("withdrawn" if withdrawn else "valid"),
        way=way,
        confidentiality_code=confidentiality,
        cda=None if withdrawn else b"<ClinicalDocument/>",
        meta={**(meta or DocumentMeta()).to_json(), "way": way},
    )
    session.add(row)
    document.current_version = version
    if withdrawn:
        document.status = "withdrawn"
    session.flush()
    if emit:
        emit_event(session, row, patient_key=patient_key)
    return row


def emit_event(session: Session, version: DocumentVersion, *, patient_key: str = "") -> None:
    document = session.get(Document, version.document_id)
    assert document is not None
    add_to_outbox(
        session,
        [OutgoingRecord(DOCUMENTS, patient_key.encode(), event(document, version, patient_key))],
    )


def event(document: Document, version: DocumentVersion, patient_key: str = "") -> dict[str, Any]:
    return {
        "document_id": document.id,
        "version_id": version.id,
        "set_id": document.set_id,
        "version": version.version,
        "action": version.action,
        "document_type": document.document_type,
        "source": document.source,
        "patient_key": patient_key or f"patient-{document.patient_id}",
        "message_id": None,
        "received_at": datetime(2024, 3, 6, 10, 0, tzinfo=UTC),
    }


def add_patient(
    session: Session,
    *,
    ins: str | None = None,
    qualified: bool = False,
    pam: dict[str, Any] | None = None,
    name: str = "DUPONT",
) -> Patient:
    patient = Patient(
        ins=ins,
        ins_oid="1.2.250.1.213.1.4.10" if ins else None,
        identity_status="VALI" if qualified else "PROV",
        qualified=qualified,
        birth_name=name,
        first_name="JEAN",
        pam=pam,
    )
    session.add(patient)
    session.flush()
    return patient
