"""Keeping a fetched mail and listing its documents, before anything is attempted.

One transaction per mail: the raw bytes, and one `inbound_documents` row per document
the mail carries (pending), or per reason it carries none that can be read (ko). A mail
already kept (same Message-ID) adds nothing: fetched twice, integrated once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.store.models import InboundDocumentRow, InboundMail
from pfi.transforms.mssante.inbound import (
    ERROR_OTHER,
    InboundDocument,
    InboundRejection,
    InboundResult,
    MailContext,
    read_inbound_documents,
)
from pfi.transforms.mssante.reports import parse_delivery_report

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeptMail:
    mail_id: int
    new: bool
    pending: int  # documents to integrate
    ko: int  # documents that went straight to the KO worklist


def parse_mail(raw: bytes) -> Message:
    return message_from_bytes(raw, policy=policy.default)


def is_report(raw: bytes, patient_domain: str = "patient.mssante.fr") -> bool:
    """An answer to what PFI sent (DSN, MDN, error mail, a patient's opposition
    auto-reply): the outbound side's business, not a document sent to the hospital.
    The same classifier the outbound side uses, so that no mail is claimed by both."""
    return parse_delivery_report(raw, patient_domain) is not None


def mail_key(msg: Message, raw: bytes) -> str:
    """The Message-ID, or a digest of the bytes for a mail that has none."""
    message_id = str(msg.get("Message-ID", "") or "").strip()
    if message_id and len(message_id) <= 400:
        return message_id
    return f"<sha256:{hashlib.sha256(raw).hexdigest()}@pfi>"


def documents_of(raw: bytes) -> list[InboundResult]:
    """Every document of the mail (INS not required: the traits may find the patient)."""
    try:
        return read_inbound_documents(raw, require_ins=False)
    except Exception as exc:  # a mail we cannot even take apart is a KO, not a crash
        log.warning("inbound mail unreadable: %s", exc, exc_info=True)
        msg = parse_mail(raw)
        return [
            InboundRejection(
                MailContext(mail_key(msg, raw), str(msg.get("Subject", "")), ""),
                ERROR_OTHER[0],
                ERROR_OTHER[1],
                f"mail unreadable: {type(exc).__name__}: {exc}",
            )
        ]


def attachment_key(index: int, result: InboundResult) -> str:
    path = result.xdm_path if isinstance(result, InboundDocument) else ""
    return f"{index}:{path}"[:400]


def keep_mail(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    uid: int | None,
    now: datetime,
    msg: Message | None = None,
) -> KeptMail:
    msg = msg if msg is not None else parse_mail(raw)
    key = mail_key(msg, raw)
    existing = session.scalar(select(InboundMail.id).where(InboundMail.message_id == key))
    if existing is not None:
        return KeptMail(existing, False, 0, 0)
    results = documents_of(raw)
    mail = InboundMail(
        message_id=key,
        sender=_sender(msg)[:320],
        subject=str(msg.get("Subject", "") or ""),
        mailbox=mailbox[:200],
        imap_uid=uid,
        received_at=now,
        raw=raw,
        documents=len(results),
    )
    session.add(mail)
    session.flush()
    pending = ko = 0
    for index, result in enumerate(results):
        row = InboundDocumentRow(
            mail_id=mail.id,
            attachment_key=attachment_key(index, result),
            created_at=now,
            updated_at=now,
        )
        if isinstance(result, InboundDocument):
            header = result.header
            row.status = "pending"
            row.document_uid = str(header.id)[:400]
            row.document_title = (header.title or header.code.display_name)[:400]
            row.ins = result.ins[:32]
            pending += 1
        else:
            row.status = "ko"
            row.reason = result.reason
            row.error_code = result.error_code
            row.document_uid = result.document_id[:400]
            ko += 1
        session.add(row)
    return KeptMail(mail.id, True, pending, ko)


def document_at(raw: bytes, key: str) -> InboundResult:
    """The document a row stands for, read again from the kept mail."""
    index_s, _, _path = key.partition(":")
    results = documents_of(raw)
    index = int(index_s)
    if index >= len(results):
        raise LookupError(f"mail has {len(results)} document(s), no #{index}")
    result = results[index]
    if attachment_key(index, result) != key:
        raise LookupError(f"document #{index} is {attachment_key(index, result)!r}, not {key!r}")
    return result


def _sender(msg: Message) -> str:
    pairs = getaddresses([str(msg.get("From", "") or "")])
    return pairs[0][1] if pairs and pairs[0][1] else str(msg.get("From", "") or "")
