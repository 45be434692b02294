"""One poll of the application mailbox: keep every new mail, then integrate what waits.

Order matters for "nothing lost": each mail is committed to the store before its IMAP
message is marked \\Seen; a crash in between fetches it again, and the Message-ID makes
the second fetch a no-op. Integration works from the store, not from IMAP: documents
left pending (the DPI was down) are sent at the next poll even when no new mail came,
and an IMAP outage does not stop them.

The mailbox also receives the answers to what PFI sends (DSN, MDN). Those are not
documents: they are left unseen for the outbound side's reader, or handed to
`other_mail` when the caller polls for both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from pfi.adapters.mssante.imap import FetchedMail, MssImapError, MssImapPoller
from pfi.config.model import Settings
from pfi.console.roles import Principal
from pfi.inbound import worklist
from pfi.inbound.config import InboundConfig
from pfi.inbound.integration import DpiLink, integrate
from pfi.inbound.reception import is_report, keep_mail, parse_mail
from pfi.observability import metrics
from pfi.store import Database
from pfi.store.models import InboundDocumentRow, utcnow

log = logging.getLogger(__name__)

#: Documents integrated per poll at most (each is one MLLP round trip).
MAX_DOCUMENTS_PER_POLL = 200


@dataclass
class PollSummary:
    fetched: int = 0
    kept: int = 0  # new mails stored
    already_kept: int = 0  # fetched again (same Message-ID): nothing added
    reports: int = 0  # DSN/MDN left to the outbound side
    integrated: int = 0
    ko: int = 0
    pending: int = 0  # still to send (DPI unreachable)
    imap_error: str | None = None
    outcomes: dict[int, str] = field(default_factory=dict)  # document id -> outcome


#: Handles a mail that is not a document (DSN, MDN); True: it may be marked \\Seen.
OtherMail = Callable[[FetchedMail], bool]


class InboundIntegrator:
    def __init__(
        self,
        db: Database,
        cfg: InboundConfig,
        *,
        other_mail: OtherMail | None = None,
        poller_factory: Callable[[], MssImapPoller] | None = None,
    ) -> None:
        self.db = db
        self.cfg = cfg
        self.other_mail = other_mail
        self._poller_factory = poller_factory or (lambda: MssImapPoller(cfg.imap))

    def poll_once(self) -> PollSummary:
        summary = PollSummary()
        try:
            self.fetch(summary)
        except (MssImapError, OSError) as exc:
            summary.imap_error = f"{type(exc).__name__}: {exc}"
            log.warning("inbound MSSanté: mailbox %s not read: %s", self.cfg.imap.mailbox, exc)
        self.integrate_waiting(summary)
        return summary

    def fetch(self, summary: PollSummary) -> None:
        with self._poller_factory() as poller:
            mails = poller.fetch_unseen()
            summary.fetched = len(mails)
            done: list[int] = []
            try:
                for fetched in mails:
                    if self._keep(fetched, summary):
                        done.append(fetched.uid)
            finally:
                poller.mark_processed(done)
        if mails and summary.reports == len(mails) == self.cfg.imap.batch_size:
            log.warning(
                "inbound MSSanté: the %d oldest unseen mails of %s are delivery reports left "
                "for the outbound side's reader; documents behind them wait until it reads "
                "them (or give mssante.inbound a mailbox folder of its own)",
                len(mails),
                self.cfg.imap.mailbox,
            )

    def _keep(self, fetched: FetchedMail, summary: PollSummary) -> bool:
        if is_report(fetched.raw, self.cfg.patient_domain):
            summary.reports += 1
            return self.other_mail(fetched) if self.other_mail is not None else False
        msg = parse_mail(fetched.raw)
        with self.db.transaction() as session:
            kept = keep_mail(
                session,
                fetched.raw,
                mailbox=self.cfg.imap.mailbox,
                uid=fetched.uid,
                now=utcnow(),
                msg=msg,
            )
        if kept.new:
            summary.kept += 1
            metrics.record_inbound_mail()
            for _ in range(kept.ko):
                metrics.record_inbound_document("ko")
            summary.ko += kept.ko
        else:
            summary.already_kept += 1
        return True

    def integrate_waiting(self, summary: PollSummary | None = None) -> PollSummary:
        """Send every pending document (and any left `sending` by a crash) to the DPI."""
        summary = summary if summary is not None else PollSummary()
        stale = utcnow().timestamp() - self.cfg.resend_after_s
        T = InboundDocumentRow
        with self.db.reader() as session:
            rows = session.execute(
                select(T.id, T.status, T.updated_at)
                .where(T.status.in_(("pending", "sending")))
                .order_by(T.id)
                .limit(MAX_DOCUMENTS_PER_POLL)
            ).all()
        ids = [i for i, status, at in rows if status == "pending" or at.timestamp() < stale]
        with DpiLink(self.cfg) as link:
            self._integrate_all(ids, summary, link)
        return summary

    def _integrate_all(self, ids: list[int], summary: PollSummary, link: DpiLink) -> None:
        for n, row_id in enumerate(ids):
            outcome = integrate(self.db, self.cfg, row_id, link)
            summary.outcomes[row_id] = outcome
            if outcome == "integrated":
                summary.integrated += 1
            elif outcome == "ko":
                summary.ko += 1
            elif outcome == "pending":
                summary.pending += len(ids) - n
                break  # the DPI is down: the others would wait for the same time-out

    def integrate(self, row_id: int) -> str:
        return integrate(self.db, self.cfg, row_id)


def poll_once(db: Database, settings: Settings) -> PollSummary:
    """One poll with the configured mailbox and DPI; an empty summary when inbound
    integration is not configured."""
    cfg = InboundConfig.of(settings)
    if cfg is None:
        return PollSummary()
    return InboundIntegrator(db, cfg).poll_once()


def resolve_and_integrate(
    integrator: InboundIntegrator,
    document_id: int,
    act: str,
    *,
    actor: Principal | str,
    reason: str,
    patient_key: str = "",
) -> str:
    """An operator's `assign` or `retry` (committed with its audit entry), then the
    integration at once: "integrated", "ko" (the DPI refused, or still no patient),
    "pending" (the DPI is unreachable: the runner sends it at its next poll)."""
    with integrator.db.transaction() as session:
        if act == "assign":
            worklist.assign(session, document_id, patient_key, actor=actor, reason=reason)
        elif act == "retry":
            worklist.retry(session, document_id, actor=actor, reason=reason)
        else:
            raise ValueError(f"unknown act {act!r}")
    return integrator.integrate(document_id)


def reject_document(db: Database, document_id: int, *, actor: Principal | str, reason: str) -> None:
    with db.transaction() as session:
        worklist.reject(session, document_id, actor=actor, reason=reason)
    metrics.record_inbound_document("rejected")
