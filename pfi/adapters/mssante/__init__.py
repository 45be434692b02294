"""MSSanté I/O: SMTP to the operator's relay, IMAP polling of the application mailbox,
and the delivery stage's sender for mss_pro / mss_patient rows."""

from pfi.adapters.mssante.imap import FetchedMail, MssImapError, MssImapPoller
from pfi.adapters.mssante.sender import MssDeliverySender, mss_sender_of
from pfi.adapters.mssante.smtp import MssSmtpSender, OutcomeKind, SmtpOutcome, client_ssl_context

__all__ = [
    "FetchedMail",
    "MssDeliverySender",
    "MssImapError",
    "MssImapPoller",
    "MssSmtpSender",
    "OutcomeKind",
    "SmtpOutcome",
    "client_ssl_context",
    "mss_sender_of",
]
