"""The simulator's SMTP side (aiosmtpd): checks, stores, bounces, auto-replies.

aiosmtpd answers 555 to any MAIL/RCPT parameter it does not know, and it knows none of
RFC 3461's; `DsnSMTP` takes RET/ENVID/NOTIFY/ORCPT off the command line before aiosmtpd
sees it and keeps them on the envelope, and the EHLO hook advertises DSN, as the
operators' relays (Postfix) do.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from pfi.simulators.mssante.checks import check_submission, decoded_header
from pfi.simulators.mssante.state import RejectedSubmission, SimulatorState, StoredMessage
from pfi.transforms.mssante.notifications import DsnRecipient, build_dsn, build_mdn
from pfi.transforms.mssante.xtext import xtext_decode


class _ClientCertWarningFilter(logging.Filter):
    """aiosmtpd warns on every connection when client certificates are required; the
    simulator requires them on purpose (MSSanté operators do)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "tls_context.verify_mode not in" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_ClientCertWarningFilter())

_MAIL_DSN = ("RET", "ENVID")
_RCPT_DSN = ("NOTIFY", "ORCPT")
OPPOSITION_TEXT = (
    "Ce message n'a pas été remis : l'usager s'est opposé à l'utilisation de sa messagerie "
    "sécurisée de santé Mon espace santé. Merci de lui transmettre ce document par un autre "
    "moyen."
)


def _split_params(arg: str | None, names: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    """('TO:<a@b> NOTIFY=SUCCESS ORCPT=rfc822;a@b', names) -> ('TO:<a@b>', {...})."""
    if arg is None:
        return None, {}
    end = arg.find(">")
    head, tail = (arg[: end + 1], arg[end + 1 :]) if end >= 0 else (arg, "")
    kept, found = [], {}
    for token in tail.split():
        key, _, value = token.partition("=")
        if key.upper() in names:
            found[key.upper()] = value
        else:
            kept.append(token)
    return " ".join([head, *kept]), found


class DsnSMTP(SMTP):
    """aiosmtpd's SMTP plus RFC 3461 parameters and a connection counter."""

    def __init__(self, handler: MssSmtpHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sim_handler = handler
        self.connection_number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # not the STARTTLS re-entry
            with self._sim_handler.state.lock:
                self._sim_handler.state.smtp_connections += 1
                self.connection_number = self._sim_handler.state.smtp_connections
        super().connection_made(transport)

    async def smtp_MAIL(self, arg: str | None) -> None:
        cleaned, params = _split_params(arg, _MAIL_DSN)
        await super().smtp_MAIL(cleaned)
        if self.envelope is not None and self.envelope.mail_from:
            self.envelope.dsn_ret = params.get("RET", "").upper()  # type: ignore[attr-defined]
            self.envelope.dsn_envid = xtext_decode(params.get("ENVID", ""))  # type: ignore[attr-defined]

    async def smtp_RCPT(self, arg: str | None) -> None:
        cleaned, params = _split_params(arg, _RCPT_DSN)
        before = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        await super().smtp_RCPT(cleaned)
        envelope = self.envelope
        if envelope is not None and len(envelope.rcpt_tos) > before:
            notify = {n.strip().upper() for n in params.get("NOTIFY", "").split(",") if n.strip()}
            if not hasattr(envelope, "dsn_notify"):
                envelope.dsn_notify = {}  # type: ignore[attr-defined]
            envelope.dsn_notify[envelope.rcpt_tos[-1]] = notify  # type: ignore[attr-defined]


class MssSmtpHandler:
    def __init__(self, state: SimulatorState, hostname: str, credentials: dict[str, str]) -> None:
        self.state = state
        self.hostname = hostname
        self.credentials = credentials

    # -- aiosmtpd hooks -------------------------------------------------------------------

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-DSN", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if "@" not in address:
            return f"501 5.1.3 <{address}>: recipient address must be fully qualified"
        with self.state.lock:
            reject = address.lower() in self.state.unknown and self.state.unknown_mode == "reject"
        if reject:
            return (
                f"550 5.1.1 <{address}>: Recipient address rejected: "
                "User unknown in the MSSante directory"
            )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # compat32 parses in about half the time of the default policy on a 200 kB mail
        msg = message_from_bytes(raw, _class=EmailMessage, policy=policy.compat32)
        rcpts = list(envelope.rcpt_tos)
        problems = check_submission(msg, rcpts, self.state.patient_domain)
        now = datetime.now(UTC)
        mail_from = envelope.mail_from or ""
        if problems:
            with self.state.lock:
                self.state.rejected.append(RejectedSubmission(now, mail_from, rcpts, problems, raw))
            lines = [_ascii(p)[:400] for p in problems[:20]]
            head = [f"554-5.6.0 {line}" for line in lines[:-1]]
            return "\r\n".join([*head, f"554 5.6.0 {lines[-1]}"])
        transport = getattr(server, "transport", None)
        implicit = transport is not None and transport.get_extra_info("ssl_object") is not None
        tls = session.ssl is not None or implicit
        peercert = (
            session.ssl.get("peercert")
            if session.ssl
            else transport.get_extra_info("peercert")
            if implicit
            else None
        )
        cert = _subject(peercert)
        number = getattr(server, "connection_number", 0)
        notify: dict[str, set[str]] = getattr(envelope, "dsn_notify", {})
        bounced: list[DsnRecipient] = []
        delivered: list[DsnRecipient] = []
        for rcpt in rcpts:
            key = rcpt.lower()
            wants = notify.get(rcpt, set())
            with self.state.lock:
                unknown = key in self.state.unknown
                opposed = key in self.state.opposed
            if unknown:
                if "NEVER" not in wants:
                    bounced.append(
                        DsnRecipient(
                            rcpt,
                            "failed",
                            "5.1.1",
                            f"550 5.1.1 <{rcpt}>: Recipient address rejected: "
                            "User unknown in the MSSante directory",
                            original_recipient=rcpt,
                            remote_mta=self.hostname,
                        )
                    )
                continue
            if opposed:
                self._auto_reply_opposition(msg, rcpt, mail_from)
                continue
            self.state.store(
                StoredMessage(
                    0,
                    now,
                    mail_from,
                    rcpt,
                    raw,
                    peer=str(session.peer),
                    tls=tls,
                    client_cert_subject=cert,
                    authenticated_as=str(session.auth_data or ""),
                    connection=number,
                )
            )
            if "SUCCESS" in wants:
                delivered.append(
                    DsnRecipient(
                        rcpt,
                        "delivered",
                        "2.0.0",
                        "250 2.0.0 Ok: delivered",
                        original_recipient=rcpt,
                        remote_mta=self.hostname,
                    )
                )
            auto = self.state.auto_mdn
            if auto and msg.get("Disposition-Notification-To"):
                self.send_mdn(raw, rcpt, disposition=auto)
        envid = getattr(envelope, "dsn_envid", "")
        full = getattr(envelope, "dsn_ret", "") == "FULL"
        for group in (bounced, delivered):
            if group and mail_from:
                report = build_dsn(
                    raw,
                    group,
                    reporting_mta=self.hostname,
                    sender=f"MAILER-DAEMON@{self.hostname}",
                    to=mail_from,
                    date=now,
                    message_id=make_msgid(domain=self.hostname),
                    envelope_id=envid,
                    arrival_date=now,
                    return_full_message=full,
                )
                self.state.deliver_local(
                    mail_from, report.as_bytes(), f"MAILER-DAEMON@{self.hostname}"
                )
        return f"250 2.0.0 Ok: queued as {make_msgid(domain=self.hostname)}"

    # -- simulator behaviours -------------------------------------------------------------

    def send_mdn(
        self,
        original: bytes,
        recipient: str,
        *,
        disposition: str = "displayed",
        error: tuple[str, str] | None = None,
    ) -> EmailMessage:
        """An MDN from `recipient` to the original's Disposition-Notification-To."""
        mdn = build_mdn(
            original,
            final_recipient=recipient,
            sender=recipient,
            date=datetime.now(UTC),
            message_id=make_msgid(domain=recipient.rpartition("@")[2] or self.hostname),
            disposition_type=disposition,
            error=error,
            original_recipient=recipient,
        )
        self.state.deliver_local(str(mdn["To"]), mdn.as_bytes(), recipient)
        return mdn

    def _auto_reply_opposition(self, msg: Message, patient: str, mail_from: str) -> None:
        if not mail_from:
            return
        reply = EmailMessage(policy=policy.SMTP)
        reply["From"] = patient
        reply["To"] = mail_from
        reply["Date"] = format_datetime(datetime.now(UTC))
        reply["Message-ID"] = make_msgid(domain=self.state.patient_domain)
        reply["Subject"] = f"Réponse automatique : {decoded_header(str(msg.get('Subject', '')))}"
        reply["Auto-Submitted"] = "auto-replied"
        if msg.get("Message-ID"):
            reply["In-Reply-To"] = str(msg["Message-ID"])
            reply["References"] = str(msg["Message-ID"])
        reply.set_content(OPPOSITION_TEXT + "\n", charset="utf-8")
        self.state.deliver_local(mail_from, reply.as_bytes(), patient)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            if self.credentials.get(user) == auth_data.password.decode("utf-8", "replace"):
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


def _ascii(text: str) -> str:
    """SMTP replies are ASCII (RFC 5321): accents dropped, line breaks flattened."""
    flat = unicodedata.normalize("NFKD", text.replace("\r", " ").replace("\n", " "))
    return flat.encode("ascii", "ignore").decode("ascii")


def _subject(cert: dict[str, Any] | None) -> str:
    if not cert:
        return ""
    parts = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            parts.append(f"{key}={value}")
    return ",".join(parts)
