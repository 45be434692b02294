"""What happened to one DMP request, classified for the delivery worker.

accepted: the DMP registered it. refused: the DMP said no for a reason that retrying will
not change (metadata error, unknown patient, SOAP Sender fault, 4xx): dead-letter it with
the reason. transient: the DMP could not be reached or was failing (time-out, refused
connection, 5xx, busy registry): retry with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pfi.transforms.xds.model import DocumentEntry
from pfi.transforms.xds.registry_response import RegistryError


class DmpOutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class DmpOutcome:
    kind: DmpOutcomeKind
    reason: str
    http_status: int | None = None
    registry_errors: tuple[RegistryError, ...] = ()
    entry: DocumentEntry | None = None
    signature_entry: DocumentEntry | None = None
    submission_set_unique_id: str = ""
    version: int | None = None
    message_id: str = ""
    elapsed_s: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.kind is DmpOutcomeKind.ACCEPTED

    @property
    def permanent(self) -> bool:
        return self.kind is DmpOutcomeKind.REFUSED

    @property
    def transient(self) -> bool:
        return self.kind is DmpOutcomeKind.TRANSIENT
