"""MSSanté I/O: SMTP to the operator's relay, IMAP polling of the application mailbox."""

from pfi.adapters.mssante.imap import FetchedMail, MssImapError, MssImapPoller
from pfi.adapters.mssante.smtp import MssSmtpSender, OutcomeKind, SmtpOutcome, client_ssl_context

__all__ = [
    "FetchedMail",
    "MssImapError",
    "MssImapPoller",
    "MssSmtpSender",
    "OutcomeKind",
    "SmtpOutcome",
    "client_ssl_context",
]
