"""Documents that arrive by MSSanté, ready to be handed to the DPI (CI-SIS volet "LPS doc
CDA courriel MSSanté").

A correspondent sends an IHE_XDM.zip (or, less properly, a bare CDA file). PFI opens it,
finds each CDA, reads the patient identity and the document identity, and what to do
with it (XDM "action": C replace, D delete). What cannot be integrated automatically comes
back as an `InboundRejection` carrying the volet's applicationErrorCondition code, which
is what the MDN / error mail to the sender will say:

- 903 INS absent from the document,
- 905 INS present but traits missing (birth names, birth date, sex),
- 906 anything else (no document, broken archive, not a CDA...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses

from lxml import etree

from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.cda_header import (
    INS_OIDS,
    CdaError,
    CdaHeader,
    parse_cda,
    read_cda_header,
)
from pfi.transforms.mssante.xdm_read import XdmError, read_xdm_zip

ERROR_INS_MISSING = ("903", "INS non présent dans le document")
ERROR_INS_INCOMPLETE = ("905", "L'INS transmis n'est pas complet")
ERROR_OTHER = ("906", "Erreur 'Autre'")

_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
_XML_TYPES = {"text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml"}


@dataclass(frozen=True, slots=True)
class MailContext:
    """The e-mail a document came in: what the MDM's second OBX group and PRTs carry."""

    message_id: str
    subject: str
    sender: str
    reply_to: str = ""
    recipients: tuple[str, ...] = ()
    original_recipient: str = ""  # the application mailbox it was delivered to
    body_text: str = ""
    notify_to: str = ""  # Disposition-Notification-To: the sender wants an MDN
    date: str = ""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class InboundDocument:
    mail: MailContext
    action: DocumentAction
    cda: bytes
    header: CdaHeader
    source: str  # "xdm" or "cda"
    xdm_path: str = ""
    confidentiality_codes: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = field(default=())  # PDF and others, as sent

    @property
    def ins(self) -> str:
        ins = self.header.patient.ins
        return ins.extension if ins else ""

    @property
    def ins_oid(self) -> str:
        ins = self.header.patient.ins
        return ins.root if ins else ""

    @property
    def masked_from_professionals(self) -> bool:
        return "MASQUE_PS" in self.confidentiality_codes

    @property
    def invisible_to_patient(self) -> bool:
        return "INVISIBLE_PATIENT" in self.confidentiality_codes

    @property
    def invisible_to_legal_representatives(self) -> bool:
        return "INVISIBLE_REPRESENTANTS_LEGAUX" in self.confidentiality_codes


@dataclass(frozen=True, slots=True)
class InboundRejection:
    mail: MailContext
    error_code: str
    error_label: str
    reason: str  # what exactly is wrong, for the ops console and the MDN text
    document_id: str = ""


InboundResult = InboundDocument | InboundRejection


def read_inbound_documents(
    message: Message | bytes, *, require_ins: bool = True
) -> list[InboundResult]:
    """Every document of the mail, each integrable or rejected with its reason."""
    msg = (
        message_from_bytes(message, policy=policy.default)
        if isinstance(message, bytes)
        else message
    )
    mail = _mail_context(msg)
    xdm_parts: list[tuple[str, bytes]] = []
    cda_parts: list[tuple[str, bytes]] = []
    others: list[Attachment] = []
    for part in _leaf_parts(msg):
        filename = part.get_filename() or ""
        ctype = part.get_content_type()
        if not filename and part.get_content_disposition() != "attachment":
            continue
        data = part.get_payload(decode=True) or b""
        lower = filename.lower()
        if ctype in _ZIP_TYPES or lower.endswith(".zip"):
            xdm_parts.append((filename, data))
        elif (ctype in _XML_TYPES or lower.endswith(".xml")) and _is_cda(data):
            cda_parts.append((filename, data))
        else:
            others.append(Attachment(filename, ctype, data))
    attachments = tuple(others)
    results: list[InboundResult] = []
    for filename, data in xdm_parts:
        try:
            package = read_xdm_zip(data)
        except XdmError as exc:
            results.append(_reject(mail, ERROR_OTHER, f"{filename}: {exc}"))
            continue
        for doc in package.documents:
            try:
                action = DocumentAction.from_xdm_code(doc.action)
            except ValueError as exc:
                results.append(_reject(mail, ERROR_OTHER, f"{filename} {doc.path}: {exc}"))
                continue
            results.append(
                _document(
                    mail,
                    doc.content,
                    action,
                    "xdm",
                    doc.path,
                    doc.confidentiality_codes,
                    attachments,
                    require_ins,
                )
            )
    for filename, data in cda_parts:
        try:
            header = read_cda_header(data)
        except CdaError as exc:
            results.append(_reject(mail, ERROR_OTHER, f"{filename}: {exc}"))
            continue
        action = DocumentAction.REPLACE if header.relation == "RPLC" else DocumentAction.NEW
        results.append(
            _document(mail, data, action, "cda", filename, (), attachments, require_ins, header)
        )
    if not results:
        results.append(
            _reject(
                mail,
                ERROR_OTHER,
                "no IHE_XDM.zip nor CDA document attached"
                + (f" (attachments: {', '.join(a.filename for a in others)})" if others else ""),
            )
        )
    return results


def read_inbound_document(message: Message | bytes, *, require_ins: bool = True) -> InboundResult:
    """The mail's document (the first when an archive carries several)."""
    return read_inbound_documents(message, require_ins=require_ins)[0]


def _document(
    mail: MailContext,
    cda: bytes,
    action: DocumentAction,
    source: str,
    path: str,
    confidentiality: tuple[str, ...],
    attachments: tuple[Attachment, ...],
    require_ins: bool,
    header: CdaHeader | None = None,
) -> InboundResult:
    if header is None:
        try:
            header = read_cda_header(cda)
        except CdaError as exc:
            return _reject(mail, ERROR_OTHER, f"{path}: {exc}")
    patient = header.patient
    if require_ins:
        if patient.ins is None:
            roots = ", ".join(str(i) for i in patient.ids) or "none"
            return _reject(
                mail,
                ERROR_INS_MISSING,
                f"{path}: recordTarget/patientRole/id carries no INS "
                f"(expected root {' or '.join(INS_OIDS)}; ids found: {roots})",
                str(header.id),
            )
        missing = patient.missing_ins_traits()
        if missing:
            return _reject(
                mail,
                ERROR_INS_INCOMPLETE,
                f"{path}: INS {patient.ins.extension} without its traits: {', '.join(missing)}",
                str(header.id),
            )
    if action is DocumentAction.REPLACE and header.parent_id is None:
        return _reject(
            mail,
            ERROR_OTHER,
            f"{path}: replacement (action C) but the CDA has no relatedDocument/parentDocument/id",
            str(header.id),
        )
    return InboundDocument(
        mail=mail,
        action=action,
        cda=cda,
        header=header,
        source=source,
        xdm_path=path,
        confidentiality_codes=confidentiality,
        attachments=attachments,
    )


def _leaf_parts(msg: Message) -> list[Message]:
    """The mail's leaf parts, not descending into attached messages (message/rfc822):
    a forwarded mail's archive is not this mail's document."""
    if not msg.is_multipart():
        return [msg]
    out: list[Message] = []
    for part in msg.get_payload():
        if isinstance(part, Message):
            out.extend([part] if part.get_content_maintype() == "message" else _leaf_parts(part))
    return out


def _reject(
    mail: MailContext, error: tuple[str, str], reason: str, document_id: str = ""
) -> InboundRejection:
    return InboundRejection(mail, error[0], error[1], reason, document_id)


def _is_cda(data: bytes) -> bool:
    try:
        parse_cda(data)
    except CdaError:
        return False
    except etree.LxmlError:
        return False
    return True


def _mail_context(msg: Message) -> MailContext:
    def first(name: str) -> str:
        pairs = getaddresses([str(msg.get(name, "") or "")])
        return pairs[0][1] if pairs and pairs[0][1] else ""

    body = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            raw = part.get_payload(decode=True) or b""
            try:
                body = raw.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:
                body = raw.decode("utf-8", "replace")
            break
    recipients = tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("To", [])]) if a)
    return MailContext(
        message_id=str(msg.get("Message-ID", "")).strip(),
        subject=str(msg.get("Subject", "")),
        sender=first("From"),
        reply_to=first("Reply-To"),
        recipients=recipients,
        original_recipient=first("Delivered-To")
        or first("X-Original-To")
        or (recipients[0] if recipients else ""),
        body_text=body,
        notify_to=first("Disposition-Notification-To"),
        date=str(msg.get("Date", "")),
    )
