"""What routing decided for each document version, and the facts it decided from.

The decision is pure (`pfi.routes.decide`): the stored input is what makes it
repeatable. When a fact changes (identity qualified, a hold released, an operator's
masking) the routing layer decides again from this input with the change applied, and
keeps the new input and decision here; the ledger (`deliveries`, `holds`) says what was
done about it. One row per version, locked while it is being re-decided so that two
releases of the same document (an operator and an ADT at once) do not both send it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from pfi.store.models.base import Base, BigId, Json, UtcDateTime, utcnow


class Routing(Base):
    __tablename__ = "routings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("document_versions.id", ondelete="CASCADE"), unique=True
    )
    document_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    #: Partition key of the delivery requests (the patient), as the document event had it.
    patient_key: Mapped[str] = mapped_column(String(200), default="")
    #: When the originating HL7 message arrived: end-to-end latency counts from there.
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    route: Mapped[str | None] = mapped_column(String(200))
    input: Mapped[dict[str, Any]] = mapped_column(Json)
    decision: Mapped[dict[str, Any]] = mapped_column(Json)
    #: How many times it was decided again (0: only at arrival).
    revision: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
