"""The delivery ledger and the holds: every document version × destination ends
delivered, held (with reason), refused (with the destination's reason), or dead-lettered
with a replay path. Nothing is silently dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pfi.store.models.base import Base, BigId, Json, UtcDateTime, utcnow


class Delivery(Base):
    """One document version to one destination: the idempotency key of delivery.

    destination: dmp | mss_pro | mss_patient; recipient: the mail address ('' for dmp,
    and for the patient's mailbox until a qualified INS gives it).
    operation: submit | replace | delete | update_masking.
    revision: 0 for what routing decided for the version; n > 0 for the n-th later act on
    the same version and destination (a DMP masking update after a hold release or an
    operator's masking), each its own row so that none overwrites another in flight.
    status: pending → sending → delivered | refused | failed (transient, will retry) |
    dead_letter; held while a hold is open; superseded when a newer version (or its
    withdrawal) came before it left; acknowledged when a read receipt came.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("document_versions.id", ondelete="CASCADE"), index=True
    )
    destination: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320), default="")
    operation: Mapped[str] = mapped_column(String(16), default="submit")
    revision: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(400))  # entryUUID, Message-ID
    request: Mapped[dict[str, Any] | None] = mapped_column(Json)  # masking, options, trace
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("document_version_id", "destination", "recipient", "revision"),
        Index("ix_deliveries_status_destination", "status", "destination"),
        Index("ix_deliveries_external_id", "external_id"),
    )


class Hold(Base):
    """Something waits: a delivery (or a whole document version) until released.

    kind: the routing hold kinds (`pfi.routes.HoldKind`: identity, announcement, retain,
    masking, review) on a delivery, or a documents-stage kind (unmapped_code) on a whole
    version. Released automatically (an ADT qualifying the INS, a sender's visibility
    update, an HL7 release trigger) or by an audited operator act; `released_by` names
    who ("pfi:identity", "pfi:hl7:<trigger>", an API user, "cli:<user>").
    """

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("document_versions.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    released_by: Mapped[str | None] = mapped_column(String(200))
    release_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_holds_open", "released_at", "kind"),)
