"""The contract between the delivery stage and a destination adapter.

The stage reads the ledger row, the document version and the patient inside a short
transaction and hands the adapter a `DeliveryJob`: plain values, no ORM object, so that
the adapter's network I/O happens outside any database transaction (SQLite has one write
lock) and can be tested without a store. The adapter answers with a `SendResult`; the
stage alone writes the ledger (delivered / refused / failed + next attempt / dead letter),
the audit trail and the metrics, the same way for every destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol


class SendStatus(StrEnum):
    DELIVERED = "delivered"  # the destination took it: external_id says under what id
    REFUSED = "refused"  # the destination said no for good: reason is its own words
    TRANSIENT = "transient"  # outage, timeout, 4xx-temporary: try again later


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    external_id: str | None = None  # DMP entryUUID, Message-ID of the mail
    reason: str = ""  # the destination's reason (refused) or the error (transient)
    detail: dict[str, Any] = field(default_factory=dict)  # kept in deliveries.request

    @classmethod
    def delivered(cls, external_id: str | None, **detail: Any) -> SendResult:
        return cls(SendStatus.DELIVERED, external_id, "", detail)

    @classmethod
    def refused(cls, reason: str, **detail: Any) -> SendResult:
        return cls(SendStatus.REFUSED, None, reason, detail)

    @classmethod
    def transient(cls, reason: str, **detail: Any) -> SendResult:
        return cls(SendStatus.TRANSIENT, None, reason, detail)


@dataclass(frozen=True, slots=True)
class PatientSnapshot:
    patient_id: int | None
    ins: str | None
    ins_oid: str | None
    qualified: bool
    birth_name: str
    used_name: str
    first_name: str
    first_names: str
    birth_date: date | None
    sex: str
    #: local identifiers: (assigning authority, value, authority OID)
    identifiers: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentSnapshot:
    document_id: int
    version_id: int
    set_id: str
    document_type: str  # CR-BIO | CR-IMG | OTHER
    document_code: str  # LOINC type code
    title: str
    source: str
    version: int
    action: str  # INITIAL | REPLACEMENT | DELETION
    document_uid: str
    replaces_uid: str | None
    confidentiality_code: str
    effective_time: datetime | None
    cda: bytes | None  # for a DELETION: None to the DMP, the withdrawn CDA for a mail
    pdf: bytes | None
    meta: dict[str, Any]  # document_versions.meta (pfi.routes.document_meta shape)


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One ledger row ready to leave, with everything the adapter needs to send it."""

    delivery_id: int
    destination: str  # dmp | mss_pro | mss_patient
    recipient: str  # mail address ('' for the DMP)
    operation: str  # submit | replace | delete | update_masking
    revision: int
    attempt: int  # 1 for the first try
    #: deliveries.request as routing wrote it (masking, confidentiality codes, mail body,
    #: acks, reply_to, no_reply, previous_delivery_id, ...), see LedgerWriter.request_json
    request: dict[str, Any]
    document: DocumentSnapshot
    patient: PatientSnapshot
    #: external id of the delivery this one replaces/updates/deletes (DMP entryUUID,
    #: previous Message-ID), when there is one
    previous_external_id: str | None = None
    correlation_id: str | None = None
    #: what the destination answered for that previous delivery (its SendResult.detail,
    #: kept in deliveries.request["result"]): e.g. the DMP entry's metadata and version
    previous_detail: dict[str, Any] = field(default_factory=dict)
    #: the previous attempt was in flight when the engine stopped: the destination may
    #: already hold this delivery, so an "already there" answer means delivered
    resumed: bool = False


class DeliverySender(Protocol):
    """A destination adapter: blocking I/O only, never touches the store."""

    #: ledger destinations it serves (e.g. {"dmp"} or {"mss_pro", "mss_patient"})
    destinations: frozenset[str]

    def send(self, job: DeliveryJob) -> SendResult:
        """Deliver `job`; never raises for a destination's answer (refused/transient are
        results); an exception is treated as transient with its text as the reason."""
        ...

    def close(self) -> None: ...
