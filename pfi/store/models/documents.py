"""Documents and their versions: what PFI built or received, ready for the destinations.

A document is identified by its CDA setId; each correction is a new version (same
setId, versionNumber + 1, relatedDocument RPLC); a cancellation is a version with
action DELETION and no CDA. Idempotency key: (document, version).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pfi.store.models.base import Base, BigId, Json, UtcDateTime, utcnow


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    set_id: Mapped[str] = mapped_column(String(200), unique=True)
    document_type: Mapped[str] = mapped_column(String(32))  # CR-BIO, CR-IMG, OTHER
    document_code: Mapped[str] = mapped_column(String(32), default="")  # LOINC type code
    title: Mapped[str] = mapped_column(String(400), default="")
    source: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | withdrawn
    current_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.version"
    )


class DocumentVersion(Base):
    """One version: the CDA (with its embedded PDF) as sent, its validation, its origin.

    `status`: valid (ready to route), invalid (failed XSD/schematron: not sent, dead
    letter), held (e.g. unmapped LOINC code, see holds), withdrawn (a DELETION).
    `meta` keeps what routing needs from the message: MetaDMPMSS values, PRT
    participants, ordering provider and copy recipients, action details.
    """

    __tablename__ = "document_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    action: Mapped[str] = mapped_column(String(16))  # INITIAL | REPLACEMENT | DELETION
    document_uid: Mapped[str] = mapped_column(String(200), default="")  # CDA id root^ext
    replaces_uid: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    way: Mapped[str] = mapped_column(String(16))  # transmission (a) | built (b)
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    confidentiality_code: Mapped[str] = mapped_column(String(8), default="N")
    effective_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cda: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    validation: Mapped[str | None] = mapped_column(Text)  # one-line summary
    findings: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    meta: Mapped[dict[str, Any] | None] = mapped_column(Json)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    document: Mapped[Document] = relationship(back_populates="versions")

    __table_args__ = (
        UniqueConstraint("document_id", "version"),
        Index("ix_document_versions_status", "status"),
        Index("ix_document_versions_document_uid", "document_uid"),
    )


class UnmappedCode(Base):
    """A lab's local code seen without a LOINC mapping (for `pfi loinc unmapped`)."""

    __tablename__ = "loinc_unmapped"

    lab: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(400), default="")
    occurrences: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
