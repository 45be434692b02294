"""DmpSender: the DMP destination behind the delivery stage (`DeliverySender`).

submit: ITI-41 (TD2). replace: ITI-41 with an RPLC association to the DMP entry of the
replaced version (TD2.1); when no earlier version reached the DMP, a plain submission.
delete: ITI-57 availability status → Deleted (TD3.3c). update_masking: ITI-57 metadata
update with the masking flags of the request (TD3.3a/b), on the entry's latest metadata
version, which the ledger keeps (`SendResult.detail["entry"]`, `["metadata_version"]`).

Identifiers are derived from the delivery (uuid5 of the instance's source OID, the
delivery id and the document's uniqueId), not drawn at random: a retry of the same
delivery sends the same entryUUID and submission set uniqueId. That is what makes a
retry after an unknown outcome (a time-out, a kill -9 during the call) safe: when the
DMP answers that the document is already registered (XDSDuplicateUniqueIdInRegistry
with the same hash), or already deleted, or its metadata already at the version this
update makes, and this was not our first try, the delivery is done: delivered, with the
entryUUID we sent. On a first try the same answer is somebody else's document: refused.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import replace
from typing import Any

from pfi.adapters.dmp.client import DmpClient
from pfi.adapters.dmp.outcome import DmpOutcome
from pfi.config.dmp import DmpSettings
from pfi.delivery.sender import DeliveryJob, SendResult
from pfi.transforms.xds import ns
from pfi.transforms.xds.hl7_types import cx
from pfi.transforms.xds.model import DocumentEntry, MaskingFlags, SubmissionContext

DESTINATION = "dmp"
_NAMESPACE = uuid.UUID("6f1c7a52-5d0e-4c43-9a8e-2f5b0c9d1e77")
_HOLDS_VERSION = re.compile(r"registry holds version (\d+)")


def _stable_uuid(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, "|".join(str(p) for p in parts))


def masking_of(request: dict[str, Any]) -> MaskingFlags:
    """The DMP masking flags routing decided (deliveries.request["masking"])."""
    masking = request.get("masking") or {}

    def flag(name: str) -> bool:
        value = masking.get(name)
        if isinstance(value, dict):
            return bool(value.get("value"))
        return bool(value)

    return MaskingFlags(
        masque_ps=flag("MASQUE_PS"),
        invisible_patient=flag("INVISIBLE_PATIENT"),
        invisible_representants_legaux=flag("INVISIBLE_REPRESENTANTS_LEGAUX"),
        connexion_secrete=bool(masking.get("connexion_secrete")),
    )


class DmpSender:
    """Sends ledger rows of destination `dmp` with a `DmpClient` (one per sender)."""

    destinations = frozenset({DESTINATION})

    def __init__(self, settings: DmpSettings, *, client: DmpClient | None = None) -> None:
        """The client (keys read, connection pool) is made at the first send: the engine
        builds its stages in the front-door process too, where nothing is sent. Missing
        key files are a configuration error now, not a dead letter later."""
        for key in ("signing_certfile", "signing_keyfile", "tls_certfile", "tls_keyfile"):
            path = getattr(settings, key)
            if path is not None and not path.is_file():
                raise ValueError(f"dmp.{key}: no such file {path}")
        self.settings = settings
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> DmpClient:
        with self._lock:
            if self._client is None:
                self._client = DmpClient(self.settings)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- DeliverySender --------------------------------------------------------------

    def send(self, job: DeliveryJob) -> SendResult:
        if job.operation in ("submit", "replace"):
            return self._submit(job)
        if job.operation == "delete":
            return self._delete(job)
        if job.operation == "update_masking":
            return self._update_masking(job)
        return SendResult.refused(f"not sent: unknown operation {job.operation!r}")

    # -- operations ------------------------------------------------------------------

    def _ids(self, job: DeliveryJob, what: str) -> dict[str, str]:
        base = (self.settings.identity.source_id, job.delivery_id, job.document.document_uid)
        return {
            "entry_uuid": f"urn:uuid:{_stable_uuid(*base, what, 'entry')}",
            "submission_set_uuid": f"urn:uuid:{_stable_uuid(*base, what, 'set')}",
            "submission_set_unique_id": f"2.25.{_stable_uuid(*base, what, 'set-uid').int}",
        }

    def _context(
        self, job: DeliveryJob, what: str, masking: MaskingFlags, replaces: str | None = None
    ) -> SubmissionContext:
        return replace(
            self.client.context(masking=masking, replaces=replaces), **self._ids(job, what)
        )

    def _submit(self, job: DeliveryJob) -> SendResult:
        if job.document.cda is None:
            return SendResult.refused("not sent: the document version has no CDA")
        replaces = job.previous_external_id if job.operation == "replace" else None
        context = self._context(job, "submit", masking_of(job.request), replaces)
        outcome = self.client.submit(job.document.cda, context)
        detail: dict[str, Any] = {"operation": "submit", "replaces": replaces}
        if job.operation == "replace" and replaces is None:
            detail["note"] = "no earlier version reached the DMP: submitted as a new document"
        if outcome.accepted and outcome.entry is not None:
            return self._delivered(outcome, outcome.entry, 1, detail)
        if (
            outcome.permanent
            and self._retried(job)
            and _only(outcome, "XDSDuplicateUniqueIdInRegistry")
            and outcome.entry is not None
        ):
            detail["note"] = "already registered by an earlier attempt of this delivery"
            return self._delivered(outcome, outcome.entry, 1, detail)
        return self._not_delivered(outcome, detail)

    def _update_masking(self, job: DeliveryJob) -> SendResult:
        stored = job.previous_detail.get("entry")
        if not job.previous_external_id or not stored:
            return SendResult.transient(
                "the DMP entry to update is not known yet (its submission has no entryUUID)"
            )
        current = DocumentEntry.from_json(stored)
        previous_version = int(job.previous_detail.get("metadata_version") or 1)
        masking = masking_of(job.request)
        context = self._context(job, "update", masking)
        outcome = self.client.update_metadata(
            current, masking=masking, previous_version=previous_version, context=context
        )
        detail: dict[str, Any] = {"operation": "update_masking", "updates": current.entry_uuid}
        new_entry = outcome.entry or current.with_masking(masking).new_version(context.entry_uuid)
        if outcome.accepted:
            return self._delivered(outcome, new_entry, previous_version + 1, detail)
        if outcome.permanent and self._retried(job) and _only(outcome, "XDSMetadataVersionError"):
            holds = _HOLDS_VERSION.search(outcome.reason)
            if holds and int(holds.group(1)) == previous_version + 1:
                detail["note"] = "the DMP already holds this update (an earlier attempt)"
                return self._delivered(outcome, new_entry, previous_version + 1, detail)
        return self._not_delivered(outcome, detail)

    def _delete(self, job: DeliveryJob) -> SendResult:
        target = job.previous_external_id
        if not target:
            return SendResult.transient("the DMP entry to delete is not known yet")
        stored = job.previous_detail.get("entry") or {}
        patient_id = stored.get("patient_id") or self._patient_id(job)
        if not patient_id:
            return SendResult.refused("not sent: no INS for the patient of the deleted entry")
        context = self._context(job, "delete", masking_of(job.request))
        outcome = self.client.delete(target, patient_id, context)
        detail: dict[str, Any] = {"operation": "delete", "deleted": target}
        if outcome.accepted:
            return SendResult.delivered(target, **detail, **_trace(outcome))
        if (
            outcome.permanent
            and self._retried(job)
            and _only(outcome, "XDSMetadataUpdateError")
            and ns.STATUS_DELETED in outcome.reason
        ):
            detail["note"] = "already deleted by an earlier attempt of this delivery"
            return SendResult.delivered(target, **detail, **_trace(outcome))
        return self._not_delivered(outcome, detail)

    # -- outcomes ----------------------------------------------------------------------

    @staticmethod
    def _retried(job: DeliveryJob) -> bool:
        """Could an earlier attempt of this delivery have reached the DMP?"""
        return job.resumed or job.attempt > 1

    @staticmethod
    def _patient_id(job: DeliveryJob) -> str:
        p = job.patient
        if not p.ins or not p.ins_oid:
            return ""
        return cx(p.ins, p.ins_oid, "NH")

    @staticmethod
    def _delivered(
        outcome: DmpOutcome, entry: DocumentEntry, metadata_version: int, detail: dict[str, Any]
    ) -> SendResult:
        return SendResult.delivered(
            entry.entry_uuid,
            **detail,
            entry=entry.to_json(),
            metadata_version=metadata_version,
            **_trace(outcome),
        )

    @staticmethod
    def _not_delivered(outcome: DmpOutcome, detail: dict[str, Any]) -> SendResult:
        extra = {**detail, **_trace(outcome)}
        if outcome.permanent:
            return SendResult.refused(outcome.reason, **extra)
        return SendResult.transient(outcome.reason, **extra)


def _only(outcome: DmpOutcome, code: str) -> bool:
    errors = [e for e in outcome.registry_errors if e.is_error]
    return bool(errors) and all(e.error_code == code for e in errors)


def _trace(outcome: DmpOutcome) -> dict[str, Any]:
    return {
        "http_status": outcome.http_status,
        "message_id": outcome.message_id,
        "submission_set_unique_id": outcome.submission_set_unique_id,
        "errors": [
            {"code": e.error_code, "context": e.code_context, "severity": e.severity}
            for e in outcome.registry_errors
        ],
        "elapsed_ms": round(outcome.elapsed_s * 1000, 1),
    }
