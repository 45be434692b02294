"""Sending MSSanté messages to the operator's SMTP relay.

One connection is kept open and reused across messages (TLS handshakes with client
certificates are the slow part); it is renewed after `max_messages_per_connection`, and
re-opened when the relay dropped it. Every recipient gets a typed outcome:

- ACCEPTED: the relay took responsibility (250 after DATA). Later bounces come as DSNs.
- REFUSED: permanent (5xx at RCPT or DATA), with the relay's reason; retrying would fail
  the same way, the ledger records a refusal.
- TRANSIENT: 4xx, TLS or connection problems, and a MAIL FROM refused for want of TLS or
  authentication or by a 5.7.x policy (PFI's own set-up is at fault, not the recipient):
  retry later, and let the failures alert.

Retries here are limited to what cannot duplicate a message: a connection found dead
before DATA is re-opened once and the transaction replayed. A connection lost during or
after DATA leaves the outcome unknown: TRANSIENT, and the caller's retry may duplicate
(the receiver sees the same Message-ID twice, which MSSanté clients collapse).

When the relay offers DSN (RFC 3461) and delivery receipts are wanted (ACK_RECEPTION),
PFI asks for success and failure notifications and sets ENVID to the Message-ID, so that
every DSN can be tied back to its message even when it returns headers only.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from enum import StrEnum
from types import TracebackType

from pfi.config.mssante import MssClientTls, MssSmtpSettings
from pfi.transforms.mssante.xtext import xtext_encode

#: Serialisation on the wire: CRLF, and headers folded at the RFC 5322 hard limit (998)
#: rather than at 78. At 78 the email package moves a value that does not fit on the first
#: line whole onto the next one ("Subject:\r\n XDM/1.0/DDM+..."): valid, yet a receiver
#: reading the raw line, or Python's own parser (which keeps the leading space), then sees
#: a Subject not starting with XDM/1.0/DDM+ - and every real report title is that long.
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_ENHANCED_57 = re.compile(r"^\s*5\.7\.\d{1,3}\b")


class OutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True)
class SmtpOutcome:
    recipient: str
    kind: OutcomeKind
    code: int | None = None  # SMTP reply code, None for connection/TLS problems
    reply: str = ""  # the server's text, or what went wrong locally
    enhanced_status: str = ""  # RFC 3463, e.g. 5.1.1
    message_id: str = ""

    @property
    def accepted(self) -> bool:
        return self.kind is OutcomeKind.ACCEPTED


class _DeadBeforeData(Exception):
    """The connection failed before any DATA byte was sent: safe to replay."""


def client_ssl_context(tls: MssClientTls) -> ssl.SSLContext:
    """TLS 1.2+ context trusting `cafile` (or the system store) and showing the client cert."""
    context = ssl.create_default_context(cafile=str(tls.cafile) if tls.cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = tls.check_hostname
    if tls.certfile and tls.keyfile:
        context.load_cert_chain(str(tls.certfile), str(tls.keyfile))
    return context


class MssSmtpSender:
    """Reusable SMTP connection to the MSSanté relay; thread-safe, one transaction at a time."""

    def __init__(
        self,
        settings: MssSmtpSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._sent_on_conn = 0
        self._lock = threading.Lock()
        self.connections_opened = 0

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> MssSmtpSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._drop(polite=True)

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        message: EmailMessage,
        recipients: Sequence[str] | None = None,
        *,
        envelope_from: str | None = None,
        delivery_receipt: bool | None = None,
    ) -> list[SmtpOutcome]:
        """Send `message` to `recipients` (default: its To and Cc); one outcome each."""
        rcpts = list(recipients) if recipients is not None else _header_addresses(message)
        if not rcpts:
            raise ValueError("no recipient to send to (none given, and no To/Cc header)")
        if envelope_from is None:
            senders = _header_addresses(message, ("From",))
            if not senders:
                raise ValueError("no envelope sender: give envelope_from or a From header")
            envelope_from = senders[0]
        sender = envelope_from
        message_id = str(message.get("Message-ID", "")).strip()
        data = message.as_bytes(policy=WIRE_POLICY)
        want_dsn = self.settings.request_dsn if delivery_receipt is None else delivery_receipt
        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._ensure()
                except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                    self._drop()
                    return _all(rcpts, OutcomeKind.TRANSIENT, None, _describe(exc), message_id)
                try:
                    outcomes = self._transaction(conn, sender, rcpts, data, message_id, want_dsn)
                except _DeadBeforeData as exc:
                    self._drop()
                    if attempt == 2:
                        return _all(
                            rcpts,
                            OutcomeKind.TRANSIENT,
                            None,
                            str(exc.__cause__ or exc),
                            message_id,
                        )
                    continue
                self._sent_on_conn += 1
                if self._sent_on_conn >= self.settings.max_messages_per_connection:
                    self._drop(polite=True)
                return outcomes
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(
        self,
        conn: smtplib.SMTP,
        sender: str,
        rcpts: list[str],
        data: bytes,
        message_id: str,
        want_dsn: bool,
    ) -> list[SmtpOutcome]:
        dsn = want_dsn and conn.has_extn("dsn")
        mail_options = []
        if conn.has_extn("size"):
            mail_options.append(f"SIZE={len(data)}")
        if dsn:
            mail_options.append("RET=HDRS")
            if message_id:
                mail_options.append(f"ENVID={xtext_encode(message_id.strip('<>'))}")
        try:
            code, reply = conn.mail(sender, mail_options)
            if code == 421:  # typically an idle connection the relay timed out
                raise smtplib.SMTPServerDisconnected(_text(reply))
            if code != 250:
                self._reset_or_drop(conn, code)
                # Refused at MAIL FROM for want of TLS or authentication, or by a policy on
                # our own address: a fault of PFI's set-up, not the recipients' refusal.
                kind = _kind(code)
                if code in (530, 535, 538) or _ENHANCED_57.match(_text(reply)):
                    kind = OutcomeKind.TRANSIENT
                return _all(rcpts, kind, code, _text(reply), message_id)
            outcomes: dict[str, SmtpOutcome] = {}
            accepted: list[str] = []
            for rcpt in rcpts:
                options = (
                    ["NOTIFY=SUCCESS,FAILURE,DELAY", f"ORCPT=rfc822;{xtext_encode(rcpt)}"]
                    if dsn
                    else []
                )
                code, reply = conn.rcpt(rcpt, options)
                if code in (250, 251):
                    accepted.append(rcpt)
                else:
                    outcomes[rcpt] = _outcome(rcpt, code, reply, message_id)
                    if code == 421:
                        raise smtplib.SMTPServerDisconnected(_text(reply))
            if not accepted:
                self._reset_or_drop(conn, 250)
                return [outcomes[r] for r in rcpts]
        except (smtplib.SMTPServerDisconnected, OSError, ssl.SSLError) as exc:
            raise _DeadBeforeData(_describe(exc)) from exc
        try:
            code, reply = conn.data(data)
        except smtplib.SMTPDataError as exc:  # DATA refused before the content went out
            self._reset_or_drop(conn, exc.smtp_code)
            code, reply = exc.smtp_code, exc.smtp_error
        except (smtplib.SMTPServerDisconnected, OSError, ssl.SSLError) as exc:
            self._drop()
            lost = f"connection lost during DATA, delivery unknown: {_describe(exc)}"
            for rcpt in accepted:
                outcomes[rcpt] = SmtpOutcome(
                    rcpt, OutcomeKind.TRANSIENT, None, lost, "", message_id
                )
            return [outcomes[r] for r in rcpts]
        for rcpt in accepted:
            outcomes[rcpt] = _outcome(rcpt, code, reply, message_id)
        if code == 421:
            self._drop()
        return [outcomes[r] for r in rcpts]

    # -- connection -----------------------------------------------------------------------

    def _ensure(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        s = self.settings
        context = self._ssl_context
        if context is None and s.tls_mode != "none":
            context = client_ssl_context(s.tls)
        conn: smtplib.SMTP
        if s.tls_mode == "implicit":
            conn = smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=s.helo_name, timeout=s.timeout_s, context=context
            )
        else:
            conn = smtplib.SMTP(s.host, s.port, local_hostname=s.helo_name, timeout=s.timeout_s)
        try:
            conn.ehlo()
            if s.tls_mode == "starttls":
                if not conn.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"{s.host}:{s.port} does not offer STARTTLS; refusing to send in clear"
                    )
                conn.starttls(context=context)
                conn.ehlo()
            if s.username is not None and s.password is not None:
                conn.login(s.username, s.password.get_secret_value())
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._sent_on_conn = 0
        self.connections_opened += 1
        return conn

    def _reset_or_drop(self, conn: smtplib.SMTP, code: int) -> None:
        if code == 421:
            self._drop()
            return
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self, polite: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if polite:
                conn.quit()
            else:
                conn.close()
        except (smtplib.SMTPException, OSError):
            conn.close()


def _header_addresses(message: EmailMessage, names: Sequence[str] = ("To", "Cc")) -> list[str]:
    values = [str(v) for name in names for v in message.get_all(name, [])]
    return [addr for _, addr in getaddresses(values) if addr]


def _kind(code: int) -> OutcomeKind:
    if 200 <= code < 300:
        return OutcomeKind.ACCEPTED
    if 500 <= code < 600:
        return OutcomeKind.REFUSED
    return OutcomeKind.TRANSIENT


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _outcome(rcpt: str, code: int, reply: bytes | str, message_id: str) -> SmtpOutcome:
    text = _text(reply)
    match = _ENHANCED.match(text)
    return SmtpOutcome(rcpt, _kind(code), code, text, match.group(1) if match else "", message_id)


def _all(
    rcpts: Sequence[str], kind: OutcomeKind, code: int | None, reply: str, message_id: str
) -> list[SmtpOutcome]:
    match = _ENHANCED.match(reply)
    status = match.group(1) if match else ""
    return [SmtpOutcome(r, kind, code, reply, status, message_id) for r in rcpts]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"timeout: {exc}"
    return f"{type(exc).__name__}: {exc}"
