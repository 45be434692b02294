"""Every HL7 message received, accepted or not, with its raw bytes unchanged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pfi.store.models.base import Base, BigId, UtcDateTime, utcnow


class Message(Base):
    """One received message.

    `status` is accepted (ACKed AA, published), rejected (AE/AR, kept for inspection with
    its reason) or duplicate (same sender and MSH-10 within the window: ACKed AA again,
    not processed twice; `duplicate_of` names the original).
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    sending_application: Mapped[str] = mapped_column(String(200), default="")
    sending_facility: Mapped[str] = mapped_column(String(200), default="")
    control_id: Mapped[str] = mapped_column(String(200), default="")
    message_type: Mapped[str] = mapped_column(String(32), default="")
    version: Mapped[str] = mapped_column(String(16), default="")
    charset: Mapped[str] = mapped_column(String(32), default="")
    ipp: Mapped[str | None] = mapped_column(String(64))
    ins: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    ack_code: Mapped[str] = mapped_column(String(2))
    error_code: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[int | None] = mapped_column(BigId)
    size: Mapped[int] = mapped_column(default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        # control_id first: duplicate detection looks a batch of MSH-10 values up at once
        Index(
            "ix_messages_sender_control", "control_id", "sending_application", "sending_facility"
        ),
        Index("ix_messages_status_source", "status", "source"),
        Index("ix_messages_ipp", "ipp"),
        Index("ix_messages_ins", "ins"),
    )
