"""Mail received by MSSanté and the documents it carried, each with its fate.

The raw mail is stored before anything else is attempted (and before the IMAP message
is marked \\Seen): whatever happens next, nothing a correspondent sent is lost. Each
document extracted from it is one row, keyed on the mail and its place in the mail, so
that a mail fetched twice (a crash before \\Seen, a server that redelivers) yields the
same rows and is integrated once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pfi.store.models.base import Base, BigId, UtcDateTime, utcnow


class InboundMail(Base):
    """One mail fetched from the application mailbox, as received (raw bytes)."""

    __tablename__ = "inbound_mails"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Message-ID as sent; a mail without one gets "<sha256:HEX@pfi>" of its bytes.
    message_id: Mapped[str] = mapped_column(String(400), unique=True)
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    mailbox: Mapped[str] = mapped_column(String(200), default="")
    imap_uid: Mapped[int | None] = mapped_column(BigInteger)  # UIDs reach 2**32 - 1
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    documents: Mapped[int] = mapped_column(default=0)


class InboundDocumentRow(Base):
    """One document of an inbound mail and what became of it.

    status: pending (to send to the DPI; also after a DPI that could not be reached) →
    sending (claimed by one poller) → integrated (the DPI answered AA) | ko (unreadable,
    no patient found, or the DPI refused: `reason` says which; the operator worklist) |
    rejected (an operator decided it will not be integrated). An operator's assignment
    puts a KO document back to pending with the patient chosen (`assigned_by`).
    """

    __tablename__ = "inbound_documents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    mail_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("inbound_mails.id", ondelete="CASCADE"), index=True
    )
    #: The document's place in the mail: "<n>:<path in the archive or file name>".
    attachment_key: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str] = mapped_column(String(8), default="")  # 903 / 905 / 906
    document_uid: Mapped[str] = mapped_column(String(400), default="")  # CDA id
    document_title: Mapped[str] = mapped_column(String(400), default="")
    ins: Mapped[str] = mapped_column(String(32), default="")
    patient_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="SET NULL"), index=True
    )
    matched_by: Mapped[str] = mapped_column(String(16), default="")  # ins | traits | operator
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    mdm_control_id: Mapped[str | None] = mapped_column(String(40))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dpi_ack_code: Mapped[str | None] = mapped_column(String(4))
    dpi_ack_text: Mapped[str | None] = mapped_column(Text)
    integrated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("mail_id", "attachment_key"),
        Index("ix_inbound_documents_status", "status"),
    )
