"""Delivery reports read back from the application mailbox into the delivery ledger.

PFI's mails leave From the application mailbox, so everything about them comes back
there: DSNs (RFC 3464), MDNs (RFC 8098), CI-SIS error mails and patient-opposition
auto-replies. Each one is parsed (`parse_delivery_report`) and tied to the ledger row it
is about by the Message-ID PFI gave the mail (`deliveries.external_id`, or the delivery
id inside PFI's own Message-ID when the report overtook the delivery stage) and by the
recipient:

- DSN failed, or the patient's opposition auto-reply → the row is refused with the
  report's reason (audited as `pfi:mssante`): the mailbox took the mail, the recipient
  never will;
- DSN delivered → stays delivered (the report is kept on the row: ZAM^Z02);
- MDN displayed or processed → acknowledged, with acknowledged_at (ZAM^Z03);
- MDN with an error, CI-SIS error mail → kept on the row with the error (ZAM^Z03);
- DSN delayed, MDN deleted/dispatched → kept on the row, nothing changes.

Every report applied is listed in `deliveries.request["mss_reports"]` (kind, status,
reason, report Message-ID), which also makes a report read twice (IMAP is at-least-once)
a no-op. `on_outcome(session, delivery_id)` is called in the same transaction for each
row a report changed or confirmed: the HL7 replies (ZAM^Z02 / Z03) hook in there.

What is not a report (an inbound document, an out-of-office) is left unseen for the
inbound poller. A report about no message of ours is logged, counted and marked seen
(it stays in the mailbox); one that cannot be applied is logged and never stops the
poller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pfi.adapters.mssante.imap import FetchedMail, MssImapPoller
from pfi.adapters.mssante.sender import delivery_id_from_message_id
from pfi.config import Settings
from pfi.config.mssante import MssanteSettings
from pfi.console.audit import record_audit
from pfi.store import Database
from pfi.store.models import Delivery, utcnow
from pfi.transforms.mssante.reports import (
    DeliveryReport,
    RecipientReport,
    RecipientStatus,
    ReportKind,
    parse_delivery_report,
)

if TYPE_CHECKING:
    from pfi.observability.metrics import EngineMetrics

log = logging.getLogger(__name__)

READBACK_ACTOR = "pfi:mssante"
MSS_DESTINATIONS = ("mss_pro", "mss_patient")
#: Rows a report may still change (refused / superseded / dead rows stay as they are).
_OPEN = frozenset({"pending", "sending", "delivered", "failed", "acknowledged"})
#: Not yet known to have left: a report about them waits for the delivery stage.
_NOT_YET_SENT = frozenset({"pending", "sending", "failed"})

#: The hook for HL7 replies: `pfi.delivery.hl7_replies.enqueue_replies` fits.
OnOutcome = Callable[[Session, int], None]


def no_reply_hook(session: Session, delivery_id: int) -> None:
    """Default `on_outcome`: the HL7 replies (ZAM^Z02 / Z03) are wired by the engine."""


@dataclass
class ReadbackTally:
    """What one poll did, by outcome (for logs and tests)."""

    refused: int = 0
    delivered: int = 0
    acknowledged: int = 0
    unchanged: int = 0
    unmatched: int = 0
    deferred: int = 0
    ignored: int = 0  # not a report: left for the inbound poller
    errors: int = 0
    mails: int = 0

    def add(self, other: ReadbackTally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class MssReadback:
    """Reads the mailbox and applies reports; keeps which UIDs it leaves unseen."""

    db: Database
    settings: MssanteSettings
    poller: MssImapPoller
    on_outcome: OnOutcome = no_reply_hook
    metrics: EngineMetrics | None = None
    #: (UIDVALIDITY, UID) of mails left unseen for good: not reports, or failing ones
    left_unseen: set[tuple[int | None, int]] = field(default_factory=set)

    def poll_once(self) -> ReadbackTally:
        tally = ReadbackTally()
        validity = self.poller.uidvalidity
        exclude = {uid for v, uid in self.left_unseen if v == validity}
        mails = self.poller.fetch_unseen(exclude=exclude)
        done: list[int] = []
        for mail in mails:
            tally.mails += 1
            outcome = self._handle(mail, tally)
            if outcome == "seen":
                done.append(mail.uid)
            elif outcome == "leave":
                self.left_unseen.add((self.poller.uidvalidity, mail.uid))
        self.poller.mark_processed(done)
        return tally

    def _handle(self, mail: FetchedMail, tally: ReadbackTally) -> str:
        """'seen' (mark it), 'leave' (never again in this process), 'retry' (next poll)."""
        try:
            report = parse_delivery_report(mail.raw, self.settings.patient_domain)
        except Exception:  # a malformed mail must not stop the poller
            log.exception("MSSanté mail uid %d: cannot be parsed as a report", mail.uid)
            tally.errors += 1
            return "leave"
        if report is None:
            tally.ignored += 1
            self._count("other", "ignored")
            return "leave"
        try:
            with self.db.transaction() as session:
                outcomes = apply_report(session, report, self.on_outcome)
        except Exception:
            log.exception(
                "MSSanté %s about %s (uid %d) could not be applied; left unseen",
                report.kind.value,
                report.original_message_id or "?",
                mail.uid,
            )
            tally.errors += 1
            return "leave"
        if "deferred" in outcomes:
            tally.deferred += 1
            return "retry"
        for outcome in outcomes:
            setattr(tally, outcome, getattr(tally, outcome) + 1)
            self._count(report.kind.value, outcome)
        return "seen"

    def _count(self, kind: str, outcome: str) -> None:
        metrics = self.metrics
        if metrics is None:
            from pfi.observability.metrics import DEFAULT_METRICS

            metrics = self.metrics = DEFAULT_METRICS
        metrics.record_mss_report(kind, outcome)


def apply_report(
    session: Session, report: DeliveryReport, on_outcome: OnOutcome = no_reply_hook
) -> list[str]:
    """Apply one report to the ledger in the caller's transaction; one outcome per
    recipient it names (refused, delivered, acknowledged, unchanged, unmatched,
    deferred)."""
    rows = _rows_for(session, report.original_message_id)
    if not rows:
        log.warning(
            "MSSanté %s %s about %s: no delivery of ours; kept in the mailbox",
            report.kind.value,
            report.report_message_id or "",
            report.original_message_id or "(no original Message-ID)",
        )
        return ["unmatched"] * max(len(report.recipients), 1)
    outcomes: list[str] = []
    for rr in report.recipients or ():
        row = _match(rows, rr)
        if row is None:
            log.warning(
                "MSSanté %s about %s names %s, not a recipient of that message",
                report.kind.value,
                report.original_message_id,
                rr.recipient,
            )
            outcomes.append("unmatched")
            continue
        if row.status in _NOT_YET_SENT and not row.external_id:
            outcomes.append("deferred")
            continue
        outcome = _apply(session, row, report, rr)
        if outcome is None:  # the same report read again
            outcomes.append("unchanged")
            continue
        on_outcome(session, row.id)
        outcomes.append(outcome)
    return outcomes or ["unmatched"]


def _rows_for(session: Session, message_id: str) -> list[Delivery]:
    if not message_id:
        return []
    rows = list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.external_id == message_id,
                Delivery.destination.in_(MSS_DESTINATIONS),
            )
            .with_for_update()
        )
    )
    if rows:
        return rows
    delivery_id = delivery_id_from_message_id(message_id)
    if delivery_id is None:
        return []
    row = session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.destination.in_(MSS_DESTINATIONS))
        .with_for_update()
    )
    if row is None or (row.external_id and row.external_id != message_id):
        return []
    return [row]


def _match(rows: list[Delivery], rr: RecipientReport) -> Delivery | None:
    names = {a.strip().lower() for a in (rr.recipient, rr.original_recipient) if a}
    for row in rows:
        if row.recipient.strip().lower() in names:
            return row
    # one mail per ledger row: a forwarded or aliased final recipient still means this one
    return rows[0] if len(rows) == 1 else None


def _apply(
    session: Session, row: Delivery, report: DeliveryReport, rr: RecipientReport
) -> str | None:
    """The outcome of a report new to this row; None for one already applied."""
    request: dict[str, Any] = dict(row.request or {})
    seen = list(request.get("mss_reports") or [])
    key = report.report_message_id or f"{report.kind.value}:{rr.status.value}:{rr.reason[:80]}"
    if any(r.get("report_message_id") == key for r in seen):
        return None
    now = utcnow()
    seen.append(
        {
            "kind": report.kind.value,
            "status": rr.status.value,
            "recipient": rr.recipient,
            "reason": rr.reason[:1000],
            "status_code": rr.status_code,
            "error_code": rr.error_code,
            "opposition": rr.opposition,
            "report_message_id": key,
            "at": now.isoformat(),
        }
    )
    request["mss_reports"] = seen
    row.request = request
    outcome = "unchanged"
    if rr.status is RecipientStatus.REFUSED and row.status in _OPEN:
        reason = refusal_reason(report, rr)
        previous = row.status
        row.status = "refused"
        row.refusal_reason = reason
        row.next_attempt_at = None
        record_audit(
            session,
            READBACK_ACTOR,
            "delivery.refuse",
            "delivery",
            row.id,
            reason=reason,
            details={
                "report": report.kind.value,
                "message_id": report.original_message_id,
                "report_message_id": report.report_message_id,
                "recipient": row.recipient,
                "status_before": previous,
                "status_code": rr.status_code,
            },
        )
        outcome = "refused"
    elif rr.status is RecipientStatus.DELIVERED and row.status in _OPEN:
        if row.status != "acknowledged":
            row.status = "delivered"
            row.delivered_at = row.delivered_at or now
        outcome = "delivered"
    elif rr.status in (RecipientStatus.DISPLAYED, RecipientStatus.PROCESSED) and (
        row.status in ("delivered", "acknowledged")
    ):
        row.status = "acknowledged"
        row.acknowledged_at = row.acknowledged_at or now
        outcome = "acknowledged"
    elif rr.status is RecipientStatus.ERROR:
        row.last_error = f"{report.kind.value} error {rr.error_code}: {rr.reason}".strip()[:2000]
    row.updated_at = now
    return outcome


def refusal_reason(report: DeliveryReport, rr: RecipientReport) -> str:
    if report.kind is ReportKind.OPPOSITION or rr.opposition:
        return f"patient opposition ({report.kind.value}): {rr.reason}".strip()
    code = f" {rr.status_code}" if rr.status_code else ""
    return f"{report.kind.value.upper()}{code}: {rr.reason}".strip()


def poll_once(
    db: Database,
    settings: MssanteSettings | Settings,
    *,
    on_outcome: OnOutcome = no_reply_hook,
    poller: MssImapPoller | None = None,
) -> int:
    """One pass over the unseen mail: the number of mails read (reports or not).

    `settings`: the mssante section, or the whole configuration (which must have one)."""
    if isinstance(settings, Settings):
        if settings.mssante is None:
            raise ValueError("mssante: the configuration has no mssante section")
        settings = settings.mssante
    own = poller is None
    imap = poller or MssImapPoller(settings.imap)
    try:
        return MssReadback(db, settings, imap, on_outcome).poll_once().mails
    finally:
        if own:
            imap.close()


class MssReadbackRunner:
    """Polls every `mssante.imap.poll_interval_s` in a thread until `stop()`.

    IMAP outages are logged and retried at the next interval; the connection is kept
    between polls and re-opened by the poller when it dropped.
    """

    def __init__(
        self,
        db: Database,
        settings: MssanteSettings,
        *,
        on_outcome: OnOutcome = no_reply_hook,
        poller: MssImapPoller | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.readback = MssReadback(
            db, settings, poller or MssImapPoller(settings.imap), on_outcome
        )
        self.interval_s = interval_s if interval_s is not None else settings.imap.poll_interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.tally = ReadbackTally()
        self.polls = 0
        self.last_error: str | None = None

    def start(self) -> MssReadbackRunner:
        if self._thread is not None:
            raise RuntimeError("MSSanté readback already started")
        self._thread = threading.Thread(target=self._run, name="mss-readback", daemon=True)
        self._thread.start()
        return self

    def poll_now(self) -> None:
        """Ask for a poll without waiting for the interval."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.readback.poller.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tally.add(self.readback.poll_once())
                self.last_error = None
            except Exception as exc:  # IMAP down, login refused...: retry next interval
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("MSSanté readback: %s", self.last_error)
                self.readback.poller.close()
            self.polls += 1
            self._wake.wait(self.interval_s)
            self._wake.clear()


def readback_runner_of(
    db: Database, settings: Settings, *, on_outcome: OnOutcome = no_reply_hook
) -> MssReadbackRunner | None:
    """The readback `pfi.yaml` asks for: None without an enabled mssante section."""
    mss = settings.mssante
    if mss is None or not mss.enabled:
        return None
    return MssReadbackRunner(db, mss, on_outcome=on_outcome)
