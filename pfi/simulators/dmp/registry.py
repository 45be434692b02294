"""The simulator's memory: registered entries per patient, with versions and statuses."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from pfi.transforms.xds import ns
from pfi.transforms.xds.hl7_types import parse_cx
from pfi.transforms.xds.model import DocumentEntry

STATUS_NAMES = {
    ns.STATUS_APPROVED: "Approved",
    ns.STATUS_DEPRECATED: "Deprecated",
    ns.STATUS_DELETED: "Deleted",
    ns.STATUS_ARCHIVED: "Archived",
}


@dataclass(frozen=True)
class StoredEntry:
    entry: DocumentEntry
    logical_id: str
    version: int
    status: str
    received_at: str
    set_id: str = ""
    cda_version: str = ""
    submission_set_unique_id: str = ""
    replaced_by: str = ""
    content: bytes = field(default=b"", repr=False)

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        return {
            "entryUUID": e.entry_uuid,
            "logicalID": self.logical_id,
            "uniqueId": e.unique_id,
            "setId": self.set_id,
            "version": self.cda_version,
            "metadataVersion": self.version,
            "status": STATUS_NAMES.get(self.status, self.status),
            "confidentialityCodes": [c.code for c in e.confidentiality_codes],
            "classCode": e.class_code.code,
            "typeCode": e.type_code.code,
            "formatCode": e.format_code.code,
            "patientId": e.patient_id,
            "hash": e.hash,
            "size": e.size,
            "title": e.title,
            "receivedAt": self.received_at,
            "submissionSetUniqueId": self.submission_set_unique_id,
            "replacedBy": self.replaced_by,
        }


def ins_of(patient_id: str) -> str:
    """The matricule of a CX patient id (or the value itself when it is not a CX)."""
    try:
        return parse_cx(patient_id)[0]
    except ValueError:
        return patient_id


class DmpRegistry:
    """Entries by entryUUID, with lookups by uniqueId and by patient INS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, StoredEntry] = {}
        self._by_unique_id: dict[str, str] = {}
        self.closed_ins: set[str] = set()

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_unique_id.clear()
            self.closed_ins.clear()

    def get(self, entry_uuid: str) -> StoredEntry | None:
        return self._entries.get(entry_uuid)

    def by_unique_id(self, unique_id: str) -> StoredEntry | None:
        entry_uuid = self._by_unique_id.get(unique_id)
        return self._entries.get(entry_uuid) if entry_uuid else None

    def current_of(self, logical_id: str) -> StoredEntry | None:
        """The latest metadata version of a logical document."""
        versions = [s for s in self._entries.values() if s.logical_id == logical_id]
        return max(versions, key=lambda s: s.version) if versions else None

    def add(self, stored: StoredEntry) -> None:
        with self._lock:
            self._entries[stored.entry.entry_uuid] = stored
            self._by_unique_id.setdefault(stored.entry.unique_id, stored.entry.entry_uuid)

    def update(self, entry_uuid: str, **changes: Any) -> None:
        with self._lock:
            self._entries[entry_uuid] = replace(self._entries[entry_uuid], **changes)

    def for_patient(self, ins: str) -> list[StoredEntry]:
        wanted = ins_of(ins)
        return sorted(
            (s for s in self._entries.values() if ins_of(s.entry.patient_id) == wanted),
            key=lambda s: (s.received_at, s.version),
        )

    def __len__(self) -> int:
        return len(self._entries)
