"""`/api/documents`: document versions, searchable the way `pfi documents list` is.

Reads of patient data (viewer), audited before they answer: a search records its filters
and the version ids it returned, a read records the version and its document set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Viewer
from pfi.documents import repository as repo

router = APIRouter(prefix="/documents", tags=["documents"], responses=AUTH_RESPONSES)

VersionStatus = Literal["valid", "invalid", "held", "withdrawn"]


class DocumentVersionSummary(BaseModel):
    """One stored version of a document, as listed."""

    id: int
    document_id: int
    set_id: str
    version: int
    action: str
    """INITIAL, REPLACEMENT or DELETION (a withdrawal: no CDA)."""
    status: str
    """valid (published for routing), invalid (failed XSD/schematron: not sent), held
    (e.g. unmapped LOINC code: waits for a release) or withdrawn (a deletion)."""
    document_type: str
    title: str
    source: str
    way: str
    """transmission (the sender built the CDA) or built (PFI built it from lab results)."""
    patient_id: int | None
    document_uid: str
    replaces_uid: str | None
    message_id: int | None
    received_at: datetime | None
    created_at: datetime | None
    validation: str | None
    warnings: list[str]


class DocumentVersionDetail(DocumentVersionSummary):
    confidentiality_code: str
    effective_time: datetime | None
    cda_bytes: int
    pdf_bytes: int
    findings: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    meta: dict[str, Any]
    #: the ledger rows of this version (destination, recipient, status, reason)
    deliveries: list[dict[str, Any]] = []
    routing_warnings: list[str] = []


class DocumentPage(BaseModel):
    items: list[DocumentVersionSummary]
    next_before_id: int | None = None


@router.get("", response_model=DocumentPage, summary="Search document versions, newest first")
def list_documents(
    principal: Viewer,
    db: DatabaseDep,
    ipp: Annotated[str | None, Query(max_length=64, description="patient IPP")] = None,
    ins: Annotated[str | None, Query(max_length=64, description="patient INS")] = None,
    status_: Annotated[VersionStatus | None, Query(alias="status")] = None,
    document_type: Annotated[
        str | None, Query(alias="type", max_length=32, description="CR-BIO, CR-IMG...")
    ] = None,
    source: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, description="paging cursor")] = None,
) -> DocumentPage:
    query = repo.VersionFilter(
        ipp=ipp,
        ins=ins,
        status=status_,
        document_type=document_type,
        source=source,
        limit=limit + 1,
        before_id=before_id,
    )
    with db.reader() as session:
        rows = repo.find_versions(session, query)
        items = [DocumentVersionSummary(**repo.version_summary(v, d)) for v, d in rows[:limit]]
    filters = {
        k: v
        for k, v in {
            "ipp": ipp,
            "ins": ins,
            "status": status_,
            "type": document_type,
            "source": source,
            "before_id": before_id,
        }.items()
        if v is not None
    }
    target = "&".join(f"{k}={v}" for k, v in filters.items() if k != "before_id") or "*"
    record_read(
        db,
        principal,
        "document.search",
        "documents",
        target[:200],
        details={
            "filters": filters,
            "version_ids": [i.id for i in items],
            "patient_ids": sorted({i.patient_id for i in items if i.patient_id}),
        },
    )
    return DocumentPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)


@router.get(
    "/{version_id}",
    response_model=DocumentVersionDetail,
    summary="One document version: validation findings, holds, routing metadata",
    responses={404: {"description": "no document version with this id"}},
)
def get_document(
    principal: Viewer, db: DatabaseDep, version_id: Annotated[int, Path(ge=1)]
) -> DocumentVersionDetail:
    with db.reader() as session:
        found = repo.get_version(session, version_id)
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no document version {version_id}"
            )
        detail = DocumentVersionDetail(**repo.version_detail(session, *found))
    record_read(
        db,
        principal,
        "document.read",
        "document_version",
        version_id,
        details={"set_id": detail.set_id, "patient_id": detail.patient_id},
    )
    return detail


@router.get(
    "/{version_id}/content",
    summary="The version's CDA (application/xml) or, with ?form=pdf, its PDF rendering",
    responses={
        200: {
            "content": {"application/xml": {}, "application/pdf": {}},
            "description": "the bytes as stored (the CDA as sent to the destinations)",
        },
        404: {"description": "no such version, or it has no such content (a deletion)"},
    },
)
def get_document_content(
    principal: Viewer,
    db: DatabaseDep,
    version_id: Annotated[int, Path(ge=1)],
    form: Annotated[Literal["cda", "pdf"], Query()] = "cda",
) -> Response:
    with db.reader() as session:
        found = repo.get_version(session, version_id)
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no document version {version_id}"
            )
        v, d = found
        body = v.cda if form == "cda" else v.pdf
        patient_id, set_id = d.patient_id, d.set_id
    if body is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"document version {version_id} has no {form}"
        )
    record_read(
        db,
        principal,
        f"document.read_{form}",
        "document_version",
        version_id,
        details={"set_id": set_id, "patient_id": patient_id},
    )
    return Response(
        content=body, media_type="application/xml" if form == "cda" else "application/pdf"
    )
