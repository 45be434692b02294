"""The MSSanté destination adapter: one ledger row (one recipient) → one secure mail.

`MssDeliverySender` implements `pfi.delivery.sender.DeliverySender` for the mss_pro and
mss_patient ledger rows. It builds the message with `build_mss_message` (subject, bodies,
IHE_XDM.zip with action C/D, PDF, X-MSS-MES, Disposition-Notification-To) from the job's
snapshot and routing's request, sends it From the application mailbox through one
`MssSmtpSender` connection reused across jobs, and maps the relay's answer:

- 250 after DATA → delivered, external_id = the Message-ID (what DSNs and MDNs quote,
  so that `pfi.delivery.mss_readback` finds the row again);
- 5xx → refused, with the relay's own text;
- 4xx, TLS, connection problems, our own MAIL FROM refused → transient.

A message that cannot be built (no birth date for the subject, a CDA the XDS mapping
cannot read, an operation mail cannot carry) is refused "not sent: ...": retrying would
fail the same way.

The Message-ID is derived from the delivery (id, revision and the document's id), so a
retried attempt carries the same Message-ID as the first: a receiver that got both
collapses them, and a DSN of either attempt finds the row.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pfi.adapters.mssante.smtp import MssSmtpSender, OutcomeKind
from pfi.config import Settings
from pfi.config.mssante import MssanteSettings
from pfi.delivery.sender import DeliveryJob, SendResult
from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.message import (
    Audience,
    MssDocument,
    MssOptions,
    MssPatient,
    build_mss_message,
)
from pfi.transforms.mssante.message import MssSender as MailIdentity
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.errors import XdsError
from pfi.transforms.xds.hl7_types import esc, xon
from pfi.transforms.xds.model import Author, SubmissionContext

Clock = Callable[[], datetime]

_ACTIONS = {
    "submit": DocumentAction.NEW,
    "replace": DocumentAction.REPLACE,
    "delete": DocumentAction.DELETE,
}
_AUDIENCES = {"mss_pro": Audience.PROFESSIONAL, "mss_patient": Audience.PATIENT}


class MssSenderConfigError(ValueError):
    """The mssante section lacks what sending needs (names the key)."""


_OUR_MESSAGE_ID = re.compile(r"^<pfi\.(\d+)\.(\d+)\.[0-9a-f]{12}@[^<>@\s]+>$")


def message_id_for(job: DeliveryJob, domain: str) -> str:
    """The Message-ID of a delivery: the same for every attempt of the same row."""
    digest = hashlib.sha256(job.document.document_uid.encode()).hexdigest()[:12]
    return f"<pfi.{job.delivery_id}.{job.revision}.{digest}@{domain}>"


def delivery_id_from_message_id(message_id: str) -> int | None:
    """The delivery a Message-ID of ours names (a report may come back before the
    delivery stage recorded the Message-ID as the row's external_id)."""
    match = _OUR_MESSAGE_ID.match(message_id.strip())
    return int(match.group(1)) if match else None


class MssDeliverySender:
    """`DeliverySender` for {"mss_pro", "mss_patient"}; one SMTP connection reused."""

    destinations = frozenset({"mss_pro", "mss_patient"})

    def __init__(
        self,
        settings: MssanteSettings,
        *,
        source_id: str | None = None,
        smtp: MssSmtpSender | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        """`source_id`: the XDS sourceId when `mssante.xdm.source_id` is empty (the
        engine passes `dmp.identity.source_id`)."""
        source = settings.xdm.source_id or source_id
        if not source:
            raise MssSenderConfigError(
                "mssante.xdm.source_id: the OID of this PFI is needed for IHE_XDM.zip "
                "(or configure dmp.identity.source_id)"
            )
        self.settings = settings
        self.source_id = source
        self.smtp = smtp or MssSmtpSender(settings.smtp)
        self.clock = clock
        self.domain = settings.application_mailbox.rpartition("@")[2]
        organisation = settings.organisation_name or settings.application_display_name or ""
        self.identity = MailIdentity(
            settings.application_mailbox,
            settings.application_display_name or "",
            organisation,
        )
        self.submitter = Author(
            person=f"^{esc(settings.application_display_name or 'PFI')}",
            institutions=(xon(organisation),) if organisation else (),
        )
        xdm = settings.xdm
        self.content_type = Code(
            xdm.content_type_code, xdm.content_type_system, xdm.content_type_display
        )

    # -- DeliverySender ---------------------------------------------------------------

    def send(self, job: DeliveryJob) -> SendResult:
        try:
            message_id, message = self._build(job)
        except (ValueError, XdsError) as exc:
            return SendResult.refused(f"not sent: {exc}")
        outcome = self.smtp.send(
            message,
            [job.recipient],
            envelope_from=self.settings.application_mailbox,
            delivery_receipt=_flag(job.request, "ACK_RECEPTION", self.settings.smtp.request_dsn),
        )[0]
        detail: dict[str, Any] = {"smtp_code": outcome.code, "smtp_reply": outcome.reply[:500]}
        if outcome.enhanced_status:
            detail["smtp_status"] = outcome.enhanced_status
        if outcome.kind is OutcomeKind.ACCEPTED:
            return SendResult.delivered(message_id, message_id=message_id, **detail)
        reason = f"{outcome.code} {outcome.reply}" if outcome.code else outcome.reply
        if outcome.kind is OutcomeKind.REFUSED:
            return SendResult.refused(reason, **detail)
        return SendResult.transient(reason, **detail)

    def close(self) -> None:
        self.smtp.close()

    # -- building ---------------------------------------------------------------------

    def _build(self, job: DeliveryJob) -> tuple[str, Any]:
        audience = _AUDIENCES.get(job.destination)
        if audience is None:
            raise ValueError(f"destination {job.destination!r} is not an MSSanté mailbox")
        action = _ACTIONS.get(job.operation)
        if action is None:
            raise ValueError(f"operation {job.operation!r} has no MSSanté mail")
        if not job.recipient or "@" not in job.recipient:
            raise ValueError(f"recipient {job.recipient!r} is not a mail address")
        doc = job.document
        if doc.cda is None:
            raise ValueError(
                f"{action.value} of {doc.set_id} v{doc.version}: the job carries no CDA "
                "(a withdrawal mail carries the CDA of the version withdrawn)"
            )
        patient = job.patient
        if patient.birth_date is None:
            raise ValueError("the patient has no birth date (the MSSanté subject needs it)")
        message_id = message_id_for(job, self.domain)
        now = self.clock()
        submission = SubmissionContext(
            submission_time=now,
            source_id=self.source_id,
            content_type_code=self.content_type,
            submitter=self.submitter,
            entry_uuid=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, message_id)}",
            submission_set_uuid=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, message_id + '/ss')}",
        )
        mail = job.request.get("mail") or {}
        reply_to = job.request.get("reply_to") or ""
        options = MssOptions(
            body=mail.get("body") or None,
            reply_to=tuple(a.strip() for a in str(reply_to).split(",") if a.strip()),
            read_receipt=_flag(job.request, "ACK_LECTURE_MSS", False),
            patient_no_reply=bool(job.request.get("no_reply")),
        )
        message = build_mss_message(
            MssDocument(
                title=doc.title,
                cda=doc.cda,
                submission=submission,
                pdf=doc.pdf,
                action=action,
                document_date=doc.effective_time.date() if doc.effective_time else None,
            ),
            MssPatient(
                family_name=patient.birth_name or patient.used_name,
                given_name=patient.first_name,
                birth_date=patient.birth_date,
                ins=patient.ins or "" if patient.qualified else "",
            ),
            [job.recipient],
            audience,
            self.identity,
            self.settings.templates,
            message_id=message_id,
            date=now,
            options=options,
            patient_domain=self.settings.patient_domain,
        )
        return message_id, message


def mss_sender_of(settings: Settings) -> MssDeliverySender | None:
    """The MSSanté sender `pfi.yaml` asks for (None without an enabled mssante section);
    the XDS sourceId falls back to the DMP's."""
    mss = settings.mssante
    if mss is None or not mss.enabled:
        return None
    return MssDeliverySender(
        mss, source_id=settings.dmp.identity.source_id if settings.dmp is not None else None
    )


def _flag(request: dict[str, Any], name: str, default: bool) -> bool:
    """An acks flag routing wrote ({"ACK_LECTURE_MSS": {"value": true, ...}})."""
    value = (request.get("acks") or {}).get(name)
    if isinstance(value, dict):
        return bool(value.get("value", default))
    return default if value is None else bool(value)
