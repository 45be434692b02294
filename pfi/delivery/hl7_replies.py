"""What the hospital is owed over MLLP once a delivery's outcome is known, queued in
the delivery stage's own transaction.

`enqueue_replies` is called by the delivery stage right after it wrote a final outcome
(delivered, refused) or a read receipt (acknowledged) on a ledger row, in the same
transaction: the reply is queued if and only if the outcome is committed. It asks
`pfi.routes.acks` what is owed (that module knows the CI-SIS rules: transmission-volet
senders, ACK_RECEPTION / ACK_LECTURE_MSS, configured endpoints) and puts it in
`outbound_messages`; `pfi.delivery.hl7_sender` sends it later, with retries, so that a
hospital listener that is down never holds up or re-sends a delivery.

- ZAM^Z01 (DMP accepted / refused) and ZAM^Z02 (MSSanté server took the mail / SMTP
  refusal) for delivered and refused; ZAM^Z03 (read) for acknowledged. A dead letter
  owes no ZAM (the destination never answered); the masking ORU reports it.
- the ORU with masking data (`outbound.masking_oru`) once no delivery of the version is
  in flight (pending, sending, failed): one report of where the document went, not one
  per destination. A later change (a hold released, a replay) makes a new report.

Idempotent: each message has a `dedupe_key` naming the outcome it reports (delivery,
status, and how many times the row was replayed; for the ORU, the version's statuses),
unique in the table and inserted with ON CONFLICT DO NOTHING. A stage that applies the
same outcome twice (a redelivered record) queues it once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pfi.config.outbound import OutboundSettings
from pfi.routes.acks import OutboundHl7, dmp_business_ack, masking_report, mss_business_ack
from pfi.store.models import Delivery, OutboundMessage, utcnow

if TYPE_CHECKING:
    from pfi.delivery.sender import SendResult
    from pfi.delivery.stage import OutcomeHook

log = logging.getLogger(__name__)

#: Message kinds (the `kind` column and the metrics label).
ZAM_Z01 = "zam_z01"
ZAM_Z02 = "zam_z02"
ZAM_Z03 = "zam_z03"
MASKING_ORU = "masking_oru"
KINDS = frozenset({ZAM_Z01, ZAM_Z02, ZAM_Z03, MASKING_ORU})

#: Ledger statuses after which a delivery of the version may still change soon.
IN_FLIGHT = frozenset({"pending", "sending", "failed"})
#: Statuses `enqueue_replies` owes something for.
OUTCOMES = frozenset({"delivered", "refused", "acknowledged", "dead_letter", "superseded"})
MSS_DESTINATIONS = frozenset({"mss_pro", "mss_patient"})


def enqueue_replies(
    session: Session,
    delivery_id: int,
    outbound: OutboundSettings,
    *,
    now: datetime | None = None,
) -> int:
    """Queue the HL7 replies owed for the current outcome of `delivery_id`; how many
    were queued now (0 when nothing is owed or it was queued before).

    `now`: the time written in MSH-7 (the establishment's local time, as HL7 senders
    expect; default: this host's local time).
    """
    row = session.get(Delivery, delivery_id)
    if row is None:
        raise ValueError(f"no delivery {delivery_id}")
    if row.status not in OUTCOMES:
        return 0
    local_now = now or datetime.now().astimezone()
    generation = len((row.request or {}).get("replays", []))
    queued = 0
    zam = _zam(session, outbound, row, generation, local_now)
    if zam is not None:
        queued += _insert(session, *zam, delivery_id=row.id)
    if outbound.masking_oru is not None:
        oru = _masking_oru(session, outbound, row, local_now)
        if oru is not None:
            queued += _insert(session, *oru, delivery_id=row.id)
    return queued


def replies_on_report(outbound: OutboundSettings) -> Callable[[Session, int], None] | None:
    """The MSSanté readback's hook (a DSN or MDN changed a delivery): queue the ZAM^Z02 /
    Z03 owed, in the transaction that records the report; None without an endpoint."""
    if not outbound.configured:
        return None

    def queue_replies(session: Session, delivery_id: int) -> None:
        enqueue_replies(session, delivery_id, outbound)

    return queue_replies


def replies_on_outcome(outbound: OutboundSettings) -> list[OutcomeHook]:
    """The delivery stages' outcome hook queuing what is owed, in the transaction that
    ends the delivery (so the reply and the outcome commit together); none when
    `outbound:` names no endpoint."""
    if not outbound.configured:
        return []

    def queue_replies(session: Session, row: Delivery, result: SendResult | None) -> None:
        enqueue_replies(session, row.id, outbound)

    return [queue_replies]


def _zam(
    session: Session,
    outbound: OutboundSettings,
    row: Delivery,
    generation: int,
    now: datetime,
) -> tuple[str, str, OutboundHl7] | None:
    if not outbound.business_acks:
        return None
    status = row.status
    if status not in ("delivered", "refused", "acknowledged"):
        return None
    if row.destination == "dmp":
        if status == "acknowledged":
            return None
        kind, key = ZAM_Z01, f"{ZAM_Z01}:{row.id}:{status}:{generation}"
        if _queued(session, key):
            return None
        code, text = _error(row)
        out = dmp_business_ack(
            session,
            outbound,
            row.id,
            accepted=status == "delivered",
            now=now,
            error_code=code,
            error_text=text,
        )
    elif row.destination in MSS_DESTINATIONS:
        read = status == "acknowledged"
        kind = ZAM_Z03 if read else ZAM_Z02
        key = f"{kind}:{row.id}:{status}:{generation}"
        if _queued(session, key):
            return None
        code, text = _error(row)
        result = (row.request or {}).get("result") or {}
        out = mss_business_ack(
            session,
            outbound,
            row.id,
            read=read,
            success=status != "refused",
            now=now,
            party=str(result.get("read_by") or result.get("reader") or "") if read else "",
            error_code=code,
            error_text=text,
        )
    else:
        return None
    return (kind, key, out) if out is not None else None


def _masking_oru(
    session: Session, outbound: OutboundSettings, row: Delivery, now: datetime
) -> tuple[str, str, OutboundHl7] | None:
    rows = session.execute(
        select(Delivery.destination, Delivery.recipient, Delivery.revision, Delivery.status)
        .where(Delivery.document_version_id == row.document_version_id)
        .order_by(Delivery.destination, Delivery.recipient, Delivery.revision)
    ).all()
    if any(status in IN_FLIGHT for *_, status in rows):
        return None
    fingerprint = "|".join(f"{d}:{r}:{n}:{s}" for d, r, n, s in rows)
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
    key = f"{MASKING_ORU}:{row.document_version_id}:{digest}"
    if _queued(session, key):
        return None
    out = masking_report(session, outbound, row.document_version_id, now=now)
    return (MASKING_ORU, key, out) if out is not None else None


def _error(row: Delivery) -> tuple[str, str]:
    """(code, text) of a refusal: the destination's error code when the sender kept one
    (DMP RegistryError errorCode, SMTP reply code), and its reason."""
    if row.status != "refused":
        return "", ""
    result: dict[str, Any] = (row.request or {}).get("result") or {}
    code = ""
    errors = result.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "")
    code = code or str(result.get("smtp_code") or result.get("code") or "")
    return code[:80], (row.refusal_reason or "")[:200]


def _queued(session: Session, key: str) -> bool:
    return (
        session.scalar(select(OutboundMessage.id).where(OutboundMessage.dedupe_key == key))
        is not None
    )


def _insert(session: Session, kind: str, key: str, out: OutboundHl7, *, delivery_id: int) -> int:
    now = utcnow()
    values = {
        "kind": kind,
        "dedupe_key": key,
        "host": out.endpoint.host,
        "port": out.endpoint.port,
        "timeout_s": out.endpoint.timeout_s,
        "control_id": out.control_id,
        "description": out.description,
        "payload": out.message,
        "status": "pending",
        "attempts": 0,
        "delivery_id": delivery_id,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = OutboundMessage.__table__
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id)
    )
    inserted = len(session.execute(statement).all())  # no row back on a conflict
    if inserted:
        log.info("queued %s for delivery %d: %s", kind, delivery_id, out.description)
    return inserted
