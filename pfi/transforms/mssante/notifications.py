"""Building delivery status (RFC 3464) and disposition (RFC 8098) notifications.

PFI answers an inbound MSSanté document with an MDN once the DPI has acknowledged it
(CI-SIS volet "LPS doc CDA courriel MSS": ``processed`` or ``processed/Error: code^label``,
subject prefixed ``[KO Intégration système !][code]`` on error, the original attachments
given back). The MSSanté simulator uses the same builders to bounce and to acknowledge,
so what PFI parses in tests is what a standard MTA or mail client writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses

from pfi.transforms.mssante.xtext import xtext_encode

_POLICY = policy.SMTP


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    final_recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # RFC 3463, e.g. 5.1.1
    diagnostic: str = ""  # the SMTP reply, e.g. "550 5.1.1 <x@y>: user unknown"
    original_recipient: str = ""
    remote_mta: str = ""


def build_dsn(
    original: bytes,
    recipients: Sequence[DsnRecipient],
    *,
    reporting_mta: str,
    sender: str,
    to: str,
    date: datetime,
    message_id: str,
    envelope_id: str = "",
    arrival_date: datetime | None = None,
    return_full_message: bool = False,
) -> EmailMessage:
    """A multipart/report; report-type=delivery-status about `original` (raw bytes)."""
    if not recipients:
        raise ValueError("a DSN reports on at least one recipient")
    original_msg = message_from_bytes(original, policy=policy.default)
    failed = any(r.action == "failed" for r in recipients)
    report = EmailMessage(policy=_POLICY)
    report["From"] = sender
    report["To"] = to
    report["Date"] = format_datetime(date)
    report["Message-ID"] = message_id
    report["Subject"] = (
        "Undelivered Mail Returned to Sender" if failed else "Delivery Status Notification"
    )
    report["Auto-Submitted"] = "auto-replied"
    if original_msg.get("Message-ID"):
        report["In-Reply-To"] = str(original_msg["Message-ID"])
    lines = [
        "Ce message est généré automatiquement par le serveur de messagerie.",
        "This is an automatically generated delivery status notification.",
        "",
    ]
    for r in recipients:
        verdict = "n'a pas pu être remis" if r.action == "failed" else f"état : {r.action}"
        lines.append(f"<{r.final_recipient}> : {verdict}. {r.diagnostic}".rstrip())
    report.set_content("\n".join(lines) + "\n", subtype="plain", charset="utf-8")
    report.make_mixed()
    report.replace_header("Content-Type", "multipart/report")
    report.set_param("report-type", "delivery-status")

    per_message = Message(policy=_POLICY)
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    if envelope_id:
        per_message["Original-Envelope-Id"] = xtext_encode(envelope_id)
    if arrival_date is not None:
        per_message["Arrival-Date"] = format_datetime(arrival_date)
    blocks = [per_message]
    for r in recipients:
        block = Message(policy=_POLICY)
        if r.original_recipient:
            block["Original-Recipient"] = f"rfc822; {r.original_recipient}"
        block["Final-Recipient"] = f"rfc822; {r.final_recipient}"
        block["Action"] = r.action
        block["Status"] = r.status
        if r.remote_mta:
            block["Remote-MTA"] = f"dns; {r.remote_mta}"
        if r.diagnostic:
            block["Diagnostic-Code"] = f"smtp; {r.diagnostic}"
        blocks.append(block)
    status = Message(policy=_POLICY)
    status["Content-Type"] = "message/delivery-status"
    status.set_payload(blocks)
    report.attach(status)

    returned = EmailMessage(policy=_POLICY)
    if return_full_message:
        returned["Content-Type"] = "message/rfc822"
        returned["Content-Disposition"] = "inline"
        returned.set_payload([original_msg])
    else:
        header_end = original.find(b"\r\n\r\n")
        if header_end < 0:
            header_end = original.find(b"\n\n")
        headers = original[: header_end if header_end >= 0 else len(original)]
        returned.set_content(
            headers.decode("utf-8", "replace") + "\n",
            subtype="rfc822-headers",
            charset="utf-8",
        )
    report.attach(returned)
    return report


def build_mdn(
    original: bytes,
    *,
    final_recipient: str,
    sender: str,
    date: datetime,
    message_id: str,
    disposition_type: str = "processed",
    error: tuple[str, str] | None = None,
    automatic: bool = True,
    original_recipient: str = "",
    human_text: str | None = None,
    reattach_attachments: bool = True,
) -> EmailMessage:
    """An MDN (CI-SIS form) answering `original`, to its Disposition-Notification-To.

    `error=(code, label)` gives ``processed/Error: code^label`` and the
    ``[KO Intégration système !][code]`` subject. The IHE_XDM.zip and PDF of the original
    are attached again after the three report parts, as the volet asks.
    """
    original_msg = message_from_bytes(original, policy=policy.default)
    notify_to = str(original_msg.get("Disposition-Notification-To", "")).strip()
    to = notify_to or str(original_msg.get("Return-Path", "") or original_msg.get("From", ""))
    if not getaddresses([to])[0][1]:
        raise ValueError("the original message has no Disposition-Notification-To nor From")
    subject = str(original_msg.get("Subject", ""))
    if error is not None:
        subject = f"[KO Intégration système !][{error[0]}] {subject}"
    report = EmailMessage(policy=_POLICY)
    report["From"] = sender
    report["To"] = to
    report["Date"] = format_datetime(date)
    report["Message-ID"] = message_id
    report["Subject"] = subject
    report["Auto-Submitted"] = "auto-replied" if automatic else "no"
    if original_msg.get("Message-ID"):
        report["In-Reply-To"] = str(original_msg["Message-ID"])
        report["References"] = str(original_msg["Message-ID"])
    if human_text is None:
        human_text = (
            "Le message ci-dessous n'a pas pu être intégré automatiquement dans le DPI pour la "
            f"raison suivante : {error[1]} (erreur {error[0]})."
            if error
            else f"Le message ci-dessous a été traité ({disposition_type})."
        )
    report.set_content(human_text + "\n", subtype="plain", charset="utf-8")
    report.make_mixed()
    report.replace_header("Content-Type", "multipart/report")
    report.set_param("report-type", "disposition-notification")

    mode = (
        "automatic-action/MDN-sent-automatically"
        if automatic
        else "manual-action/MDN-sent-manually"
    )
    disposition = f"{mode}; {disposition_type}"
    if error is not None:
        disposition += f"/Error: {error[0]}^{error[1]}"
    fields = Message(policy=_POLICY)
    fields["Reporting-UA"] = "PFI"
    if original_recipient:
        fields["Original-Recipient"] = f"rfc822; {original_recipient}"
    fields["Final-Recipient"] = f"rfc822; {final_recipient}"
    if original_msg.get("Message-ID"):
        fields["Original-Message-ID"] = str(original_msg["Message-ID"])
    fields["Disposition"] = disposition
    notification = Message(policy=_POLICY)
    notification["Content-Type"] = "message/disposition-notification"
    notification.set_payload([fields])
    report.attach(notification)

    returned = EmailMessage(policy=_POLICY)
    returned["Content-Type"] = "message/rfc822"
    returned.set_payload([original_msg])
    report.attach(returned)
    if reattach_attachments:
        for part in original_msg.iter_attachments():
            data = part.get_payload(decode=True)
            if data is None:
                continue
            attached = EmailMessage(policy=_POLICY)
            maintype, _, subtype = part.get_content_type().partition("/")
            attached.set_content(
                data, maintype=maintype, subtype=subtype, filename=part.get_filename()
            )
            report.attach(attached)
    return report
