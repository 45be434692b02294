"""HL7 messages PFI owes the hospital, queued until the peer's MLLP listener ACKs them.

The business acknowledgements (ZAM^Z01/Z02/Z03) and the ORU with masking data are
decided in the delivery stage's transaction (`pfi.delivery.hl7_replies`) but sent later,
by `pfi.delivery.hl7_sender`: the hospital's listener may be down for hours, and the
delivery itself must not wait for it nor be retried because of it. `dedupe_key` makes
the enqueue idempotent (a stage that applies the same outcome twice queues once);
`status`: pending (never tried) → sent | failed (will retry at `next_attempt_at`) →
dead (attempts exhausted: `last_error` says the peer's NACK text or the connection
error; `pfi outbound retry` sends it again).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pfi.store.models.base import Base, BigId, UtcDateTime, utcnow


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: zam_z01 | zam_z02 | zam_z03 | masking_oru
    kind: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    timeout_s: Mapped[float] = mapped_column(Float, default=10.0)
    control_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: MSA-1 of the last answer (AA, AE, AR, CA...), empty when none came
    ack_code: Mapped[str | None] = mapped_column(String(4))
    delivery_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_outbound_messages_status_endpoint", "status", "host", "port", "id"),
    )
