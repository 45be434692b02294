"""All tables, one module per concept; importing this package registers them all."""

from pfi.store.models.annuaire import AnnuaireImport, AnnuaireMailbox, AnnuaireProfessional
from pfi.store.models.audit import AuditEntry
from pfi.store.models.base import Base, utcnow
from pfi.store.models.bus import DeadLetter, OutboxEvent, ProcessedEvent
from pfi.store.models.deliveries import Delivery, Hold
from pfi.store.models.documents import Document, DocumentVersion, UnmappedCode
from pfi.store.models.inbound import InboundDocumentRow, InboundMail
from pfi.store.models.messages import Message
from pfi.store.models.outbound import OutboundMessage
from pfi.store.models.patients import Patient, PatientEvent, PatientIdentifier, PatientLink
from pfi.store.models.routing import Routing
from pfi.store.models.users import ApiToken, User

__all__ = [
    "AnnuaireImport",
    "AnnuaireMailbox",
    "AnnuaireProfessional",
    "ApiToken",
    "AuditEntry",
    "Base",
    "DeadLetter",
    "Delivery",
    "Document",
    "DocumentVersion",
    "Hold",
    "InboundDocumentRow",
    "InboundMail",
    "Message",
    "OutboundMessage",
    "OutboxEvent",
    "Patient",
    "PatientEvent",
    "PatientIdentifier",
    "PatientLink",
    "ProcessedEvent",
    "Routing",
    "UnmappedCode",
    "User",
    "utcnow",
]
