"""All tables, one module per concept; importing this package registers them all."""

from pfi.store.models.audit import AuditEntry
from pfi.store.models.base import Base, utcnow
from pfi.store.models.bus import DeadLetter, OutboxEvent, ProcessedEvent

__all__ = ["AuditEntry", "Base", "DeadLetter", "OutboxEvent", "ProcessedEvent", "utcnow"]
