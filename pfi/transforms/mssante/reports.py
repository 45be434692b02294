"""What comes back into the application mailbox about a message PFI sent.

- DSN (RFC 3464, multipart/report; report-type=delivery-status): delivered, delayed or
  failed, per recipient, with the remote server's reason. PFI turns these into ZAM^Z02
  (accusé de réception MSSanté) and into refused deliveries in the ledger.
- MDN (RFC 8098, report-type=disposition-notification): read (displayed) or processed by
  the receiving system, possibly with the CI-SIS error form
  ``processed/Error: 902^Identifiant de patient inconnu^...`` (ZAM^Z03).
- The CI-SIS "standard" error mail (volet LPS doc CDA courriel MSS): a plain mail whose
  subject starts with ``[KO Intégration système !][code]`` or ``[Erreur d'intégration !][code]``.
- A patient-opposition auto-reply. Neither the CI-SIS volets nor the MSSanté referentials
  we have specify its form, so PFI's rule is: an auto-reply (RFC 3834 ``Auto-Submitted``
  other than ``no``, or the legacy ``X-Autoreply`` / ``Precedence: auto_reply`` marks)
  sent from the patient domain, whose subject or text mentions an opposition or a
  refusal (opposé, opposition, refus, s'oppose, fermé/clôturé), is a refusal of that
  patient address. Other auto-replies are not delivery reports. A DSN "failed" for a
  patient address whose diagnostic says the same is flagged `opposition=True`.

Each report is linked to the Message-ID of the message PFI sent: from the returned
message or headers (third part), the MDN's Original-Message-ID, the DSN's
Original-Envelope-Id (PFI sets ENVID to its Message-ID), or In-Reply-To / References.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass
from email import message_from_bytes, message_from_string, policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from enum import StrEnum

from pfi.transforms.mssante.xtext import xtext_decode


class ReportKind(StrEnum):
    DSN = "dsn"
    MDN = "mdn"
    ERROR_MAIL = "error-mail"
    OPPOSITION = "opposition"


class RecipientStatus(StrEnum):
    DELIVERED = "delivered"  # DSN delivered / relayed / expanded: accusé de réception
    DELAYED = "delayed"  # DSN delayed: the relay is still trying
    REFUSED = "refused"  # DSN failed, or patient opposition
    DISPLAYED = "displayed"  # MDN: read by a person
    PROCESSED = "processed"  # MDN: processed (integrated) without error
    DISPATCHED = "dispatched"
    DELETED = "deleted"
    ERROR = "error"  # MDN with an error modifier, or a CI-SIS error mail


@dataclass(frozen=True, slots=True)
class RecipientReport:
    recipient: str
    status: RecipientStatus
    reason: str = ""  # diagnostic (DSN), error text (MDN / error mail), auto-reply text
    status_code: str = ""  # RFC 3463 enhanced status, e.g. 5.1.1
    error_code: str = ""  # CI-SIS error code (902...) from an MDN or an error mail
    original_recipient: str = ""
    remote_mta: str = ""
    action: str = ""  # the raw DSN Action or MDN disposition
    opposition: bool = False

    @property
    def permanent(self) -> bool:
        return self.status in (RecipientStatus.REFUSED, RecipientStatus.ERROR)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    kind: ReportKind
    original_message_id: str  # "<id@host>" of the message PFI sent, '' when not found
    recipients: tuple[RecipientReport, ...]
    report_message_id: str = ""
    reporter: str = ""  # Reporting-MTA, or the From of an MDN / auto-reply
    envelope_id: str = ""
    subject: str = ""

    def for_recipient(self, address: str) -> RecipientReport | None:
        wanted = address.strip().lower()
        return next((r for r in self.recipients if r.recipient.lower() == wanted), None)


_OPPOSITION = re.compile(r"oppos|refus|ferme|cloture|ne souhaite pas recevoir", re.IGNORECASE)
_ERROR_SUBJECT = re.compile(
    r"^\s*\[\s*(?:KO\s+Int[ée]gration\s+syst[èe]me\s*!|Erreur\s+d.int[ée]gration\s*!)\s*\]"
    r"\s*\[\s*(\d+)\s*\]",
    re.IGNORECASE,
)
_MSGID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def parse_delivery_report(
    message: Message | bytes, patient_domain: str = "patient.mssante.fr"
) -> DeliveryReport | None:
    """The report this mail is, or None for a mail that is not about a message we sent."""
    # compat32: the default policy's header objects cost ~8 ms per report in parsing alone;
    # reports need a few raw fields, decoded by _header where RFC 2047 may apply.
    msg = (
        message_from_bytes(message, policy=policy.compat32)
        if isinstance(message, bytes)
        else message
    )
    ctype = msg.get_content_type()
    report_type = (
        (msg.get_param("report-type") or "").lower() if ctype == "multipart/report" else ""
    )
    if report_type == "delivery-status" or _find_part(msg, "message/delivery-status"):
        return _dsn(msg, patient_domain)
    if report_type == "disposition-notification" or _find_part(
        msg, "message/disposition-notification"
    ):
        return _mdn(msg)
    subject = _header(msg, "Subject")
    match = _ERROR_SUBJECT.match(subject)
    if match:
        return _error_mail(msg, match.group(1))
    if _is_auto_reply(msg):
        return _opposition(msg, patient_domain)
    return None


# -- DSN -------------------------------------------------------------------------------


def _dsn(msg: Message, patient_domain: str) -> DeliveryReport:
    status_part = _find_part(msg, "message/delivery-status")
    blocks = _status_blocks(status_part) if status_part is not None else []
    per_message = blocks[0] if blocks else {}
    envelope_id = xtext_decode(per_message.get("original-envelope-id", ""))
    recipients = []
    for block in blocks[1:]:
        final = _address_type_value(block.get("final-recipient", ""))
        if not final:
            continue
        action = block.get("action", "").strip().lower()
        diagnostic = _address_type_value(block.get("diagnostic-code", ""), keep_type=False)
        status_code = block.get("status", "").strip()
        match = _STATUS.search(status_code)
        status_code = match.group(1) if match else status_code
        status = {
            "failed": RecipientStatus.REFUSED,
            "delayed": RecipientStatus.DELAYED,
            "delivered": RecipientStatus.DELIVERED,
            "relayed": RecipientStatus.DELIVERED,
            "expanded": RecipientStatus.DELIVERED,
        }.get(
            action, RecipientStatus.REFUSED if status_code[:1] == "5" else RecipientStatus.DELAYED
        )
        opposition = (
            status == RecipientStatus.REFUSED
            and _domain(final) == patient_domain.lower()
            and bool(_OPPOSITION.search(_fold(diagnostic)))
        )
        recipients.append(
            RecipientReport(
                recipient=final,
                status=status,
                reason=diagnostic or _human_text(msg),
                status_code=status_code,
                original_recipient=_address_type_value(block.get("original-recipient", "")),
                remote_mta=_address_type_value(block.get("remote-mta", ""), keep_type=False),
                action=action,
                opposition=opposition,
            )
        )
    original = _returned_message_id(msg) or (f"<{envelope_id}>" if envelope_id else "")
    return DeliveryReport(
        kind=ReportKind.DSN,
        original_message_id=original or _in_reply_to(msg),
        recipients=tuple(recipients),
        report_message_id=_header(msg, "Message-ID"),
        reporter=_address_type_value(per_message.get("reporting-mta", ""), keep_type=False),
        envelope_id=envelope_id,
        subject=_header(msg, "Subject"),
    )


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The per-message block then the per-recipient blocks, field names lower-cased."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [{k.lower(): _decode(str(v)) for k, v in block.items()} for block in payload]
    text = part.get_payload(decode=True) or b""
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\r?\n\s*\r?\n", text.decode("utf-8", "replace")):
        if chunk.strip():
            parsed = message_from_string(chunk.strip() + "\n\n")
            blocks.append({k.lower(): _decode(str(v)) for k, v in parsed.items()})
    return blocks


# -- MDN -------------------------------------------------------------------------------


def _mdn(msg: Message) -> DeliveryReport:
    part = _find_part(msg, "message/disposition-notification")
    fields = _mdn_fields(part) if part is not None else {}
    disposition = fields.get("disposition", "")
    mode, _, rest = disposition.partition(";")
    dtype, _, modifiers = rest.strip().partition("/")
    dtype = dtype.strip().lower()
    error_text = fields.get("error", "")
    is_error = False
    for modifier in (m.strip() for m in modifiers.split(",") if m.strip()):
        name, _, text = modifier.partition(":")
        if name.strip().lower() == "error":
            is_error = True
            error_text = error_text or text.strip()
    subject = _header(msg, "Subject")
    subject_error = _ERROR_SUBJECT.match(subject)
    if subject_error:
        is_error = True
    code, label = _split_error(error_text)
    if subject_error and not code:
        code = subject_error.group(1)
    status = (
        RecipientStatus.ERROR
        if is_error
        else {
            "displayed": RecipientStatus.DISPLAYED,
            "processed": RecipientStatus.PROCESSED,
            "dispatched": RecipientStatus.DISPATCHED,
            "deleted": RecipientStatus.DELETED,
        }.get(dtype, RecipientStatus.PROCESSED)
    )
    final = _address_type_value(fields.get("final-recipient", "")) or _first_address(
        _header(msg, "From")
    )
    original_id = _normalise_msgid(fields.get("original-message-id", ""))
    return DeliveryReport(
        kind=ReportKind.MDN,
        original_message_id=original_id or _returned_message_id(msg) or _in_reply_to(msg),
        recipients=(
            RecipientReport(
                recipient=final,
                status=status,
                reason=label or error_text,
                error_code=code,
                original_recipient=_address_type_value(fields.get("original-recipient", "")),
                action=f"{mode.strip()}; {rest.strip()}".strip("; "),
            ),
        ),
        report_message_id=_header(msg, "Message-ID"),
        reporter=_first_address(_header(msg, "From")),
        subject=subject,
    )


def _mdn_fields(part: Message) -> dict[str, str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        fields = {k.lower(): _decode(str(v)) for k, v in payload[0].items()}
    else:
        raw = part.get_payload(decode=True) or str(payload).encode()
        parsed = message_from_bytes(raw.strip() + b"\n\n")
        fields = {k.lower(): _decode(str(v)) for k, v in parsed.items()}
    if "disposition" not in fields:
        # Written without the blank line after Content-Type (as in the CI-SIS volet's own
        # example), the fields end up among the part's headers.
        fields.update({k.lower(): _decode(str(v)) for k, v in part.items()})
    return fields


def _split_error(text: str) -> tuple[str, str]:
    """'902^Identifiant patient inconnu^messageErrorCondition' -> ('902', 'Identifiant...')."""
    if not text:
        return "", ""
    first = text.split("|")[0]
    parts = [p.strip() for p in first.split("^")]
    if parts and parts[0].isdigit():
        return parts[0], parts[1] if len(parts) > 1 else ""
    return "", text.strip()


# -- error mails and auto-replies ------------------------------------------------------


def _error_mail(msg: Message, code: str) -> DeliveryReport:
    sender = _first_address(_header(msg, "From"))
    text = _human_text(msg)
    return DeliveryReport(
        kind=ReportKind.ERROR_MAIL,
        original_message_id=_returned_message_id(msg) or _in_reply_to(msg),
        recipients=(
            RecipientReport(
                recipient=sender, status=RecipientStatus.ERROR, reason=text, error_code=code
            ),
        ),
        report_message_id=_header(msg, "Message-ID"),
        reporter=sender,
        subject=_header(msg, "Subject"),
    )


def _is_auto_reply(msg: Message) -> bool:
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    return _header(msg, "Precedence").lower() == "auto_reply"


def _opposition(msg: Message, patient_domain: str) -> DeliveryReport | None:
    sender = _first_address(_header(msg, "From"))
    if _domain(sender) != patient_domain.lower():
        return None
    subject = _header(msg, "Subject")
    text = _human_text(msg)
    if not _OPPOSITION.search(_fold(f"{subject}\n{text}")):
        return None
    return DeliveryReport(
        kind=ReportKind.OPPOSITION,
        original_message_id=_in_reply_to(msg) or _returned_message_id(msg),
        recipients=(
            RecipientReport(
                recipient=sender,
                status=RecipientStatus.REFUSED,
                reason=text.strip() or subject,
                action="auto-replied",
                opposition=True,
            ),
        ),
        report_message_id=_header(msg, "Message-ID"),
        reporter=sender,
        subject=subject,
    )


# -- helpers ---------------------------------------------------------------------------


def _find_part(msg: Message, ctype: str) -> Message | None:
    if not msg.is_multipart():
        return msg if msg.get_content_type() == ctype else None
    for part in msg.get_payload():
        if isinstance(part, Message) and part.get_content_type() == ctype:
            return part
    return None


def _returned_message_id(msg: Message) -> str:
    """Message-ID of the returned original (message/rfc822 or text/rfc822-headers part)."""
    if not msg.is_multipart():
        return ""
    for part in msg.get_payload():
        if not isinstance(part, Message):
            continue
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and inner[0].get("Message-ID"):
                return _normalise_msgid(str(inner[0]["Message-ID"]))
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            raw = part.get_payload(decode=True) or b""
            headers = message_from_bytes(raw.lstrip() + b"\n\n")
            if headers.get("Message-ID"):
                return _normalise_msgid(str(headers["Message-ID"]))
    return ""


def _in_reply_to(msg: Message) -> str:
    value = str(msg.get("In-Reply-To", "") or "")
    if not value.strip():
        references = str(msg.get("References", "") or "").split()
        value = references[-1] if references else ""
    return _normalise_msgid(value)


def _normalise_msgid(value: str) -> str:
    match = _MSGID.search(value or "")
    if match:
        return f"<{match.group(1)}>"
    value = (value or "").strip()
    return f"<{value}>" if value and " " not in value else ""


def _address_type_value(value: str, keep_type: bool = False) -> str:
    """'rfc822; a@b' -> 'a@b' (address-type or diagnostic-type stripped)."""
    value = " ".join(str(value).split())
    kind, sep, rest = value.partition(";")
    if sep and kind.strip().lower() in ("rfc822", "dns", "smtp", "x-unix", "utf-8", "x-local"):
        return value if keep_type else rest.strip()
    return value.strip()


def _header(msg: Message, name: str) -> str:
    """A header as text: RFC 2047 words decoded, folding and surrounding blanks removed."""
    value = msg.get(name)
    return "" if value is None else _decode(str(value))


def _decode(text: str) -> str:
    if "=?" in text:
        with contextlib.suppress(HeaderParseError, UnicodeDecodeError, LookupError):
            text = str(make_header(decode_header(text)))
    return " ".join(text.split())


def _first_address(value: object) -> str:
    pairs = getaddresses([str(value or "")])
    return pairs[0][1] if pairs and pairs[0][1] else ""


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _human_text(msg: Message) -> str:
    """The first text/plain part (the human-readable explanation)."""
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.get_content_type() == "text/plain" and not part.get_filename():
            raw = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                return raw.decode(charset, "replace").strip()
            except LookupError:
                return raw.decode("utf-8", "replace").strip()
    return ""


def _fold(text: str) -> str:
    """Lower-case without accents, so 'Opposé' and 'CLÔTURÉ' match plain patterns."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
