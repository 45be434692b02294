"""`document_versions.meta`: what the documents stage keeps from the message for routing.

The documents stage writes it, the routing stage reads it (and so do the delivery
workers: reply-to address, and the business acknowledgement owed to the sender). One
typed shape on both sides, serialised as plain JSON, so that a key renamed on one side
is a test failure, not a document that silently goes nowhere.

What lives in columns is not repeated here: document type and LOINC code, source and
patient (`documents`), action, confidentiality, version, CDA id (`document_versions`).

```json
{
  "schema": 1,
  "sender_metadata": {"MASQUE_PS": "N", "INVISIBLE_PATIENT": "N", "DESTDMP": "Y", ...,
                      "CORPSMAIL_PS": "text, base64 already decoded"},   // or null (way b)
  "patient_may_not_reply": false,                   // NTE-4 FIN after DESTMSSANTEPAT
  "recipients": [{"address": "dr.x@chu.mssante.fr", "role": "prescriber",
                  "name": "Dr X", "id": "810001234567", "id_type": "RPPS"}],
  "patient_address": "1790328...@patient.mssante.fr",   // PRT RCT of the patient, if any
  "reply_to": "secretariat@chu.mssante.fr",          // PRT REPLY
  "message": {"control_id": "015", "sending_application": "SIL-Y",
              "sending_facility": "labo", "receiving_application": "PFI-X",
              "receiving_facility": "Organisation-X", "message_type": "ORU^R01",
              "processing_id": "P"},
  "orders": {"placer": "98765431", "filler": "1001-E1", "accession": ""},
  "unique_document_number": "",                      // MDM TXA-12
  "warnings": ["..."]
}
```

Either side builds it with `DocumentMeta(...)` or the helpers (`from_transmission`,
`SourceMessage.from_header`), and reads it with `DocumentMeta.from_json`, which names
the key that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pfi.routes.inputs import Recipient, RecipientRole
from pfi.routes.metadata import KNOWN as METADATA_NAMES
from pfi.transforms.cda.transmission import CdaTransmission, DmpMssMetadata
from pfi.transforms.hl7 import MessageHeader

SCHEMA_VERSION = 1

#: DmpMssMetadata attribute -> MetaDMPMSS OBX-3.1.
_METADATA_FIELDS = (
    ("masque_ps", "MASQUE_PS"),
    ("invisible_patient", "INVISIBLE_PATIENT"),
    ("invisible_rep_legaux", "INVISIBLE_REP_LEGAUX"),
    ("connexion_secrete", "CONNEXION_SECRETE"),
    ("modif_conf_code", "MODIF_CONF_CODE"),
    ("dest_dmp", "DESTDMP"),
    ("dest_mssante_ps", "DESTMSSANTEPS"),
    ("dest_mssante_patient", "DESTMSSANTEPAT"),
    ("ack_reception", "ACK_RECEPTION"),
    ("ack_lecture_mss", "ACK_LECTURE_MSS"),
    ("corpsmail_ps", "CORPSMAIL_PS"),
    ("corpsmail_patient", "CORPSMAIL_PATIENT"),
)


class DocumentMetaError(ValueError):
    """`document_versions.meta` does not have the agreed shape; names the key."""


@dataclass(frozen=True, slots=True)
class MetaRecipient:
    """A professional or organisation to mail, as the message named them."""

    address: str
    role: RecipientRole = RecipientRole.COPY
    name: str = ""
    id: str = ""  # RPPS / IDNPS / FINESS...
    id_type: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", RecipientRole(self.role))

    def to_recipient(self) -> Recipient:
        return Recipient(self.address, self.role, self.name)


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """The HL7 message a version came from: whom to answer (ZAM) and about which message
    (OBX-4 of the ZAM is its MSH-10)."""

    control_id: str
    sending_application: str
    sending_facility: str
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    processing_id: str = "P"

    @classmethod
    def from_header(cls, header: MessageHeader) -> SourceMessage:
        cs = header.separators.component
        return cls(
            control_id=header.control_id,
            sending_application=header.sending_application.split(cs, 1)[0],
            sending_facility=header.sending_facility.split(cs, 1)[0],
            receiving_application=header.receiving_application.split(cs, 1)[0],
            receiving_facility=header.receiving_facility.split(cs, 1)[0],
            message_type=header.message_type,
            processing_id=(header.processing_id or "P")[:1],
        )


@dataclass(frozen=True, slots=True)
class OrderNumbers:
    """The order the document answers, as release triggers may name it."""

    placer: str = ""  # ORC-2.1 / OBR-2.1
    filler: str = ""  # ORC-3.1 / OBR-3.1
    accession: str = ""  # accession number (imaging)


@dataclass(frozen=True, slots=True)
class DocumentMeta:
    sender_metadata: Mapping[str, str] | None = None
    patient_may_not_reply: bool = False
    recipients: tuple[MetaRecipient, ...] = ()
    patient_address: str = ""
    reply_to: str = ""
    message: SourceMessage | None = None
    orders: OrderNumbers = field(default_factory=OrderNumbers)
    unique_document_number: str = ""
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        if self.sender_metadata is not None:
            unknown = sorted(set(self.sender_metadata) - METADATA_NAMES)
            if unknown:
                raise DocumentMetaError(
                    f"meta.sender_metadata: {', '.join(unknown)} not in the MetaDMPMSS table"
                )

    # -- building -------------------------------------------------------------------

    @classmethod
    def from_transmission(
        cls,
        transmission: CdaTransmission,
        header: MessageHeader,
        *,
        prescriber_ids: Iterable[str] = (),
        orders: OrderNumbers | None = None,
    ) -> DocumentMeta:
        """Way (a): MetaDMPMSS and PRT segments of a transmission-volet message.

        `prescriber_ids`: ids of the ordering provider (ORC-12 / OBR-16) so that the PRT
        RCT of the same person is routed as the prescriber (`mss_prescriber`).
        """
        prescribers = {p for p in prescriber_ids if p}
        recipients: list[MetaRecipient] = []
        patient_address = ""
        for p in transmission.recipients:
            if not p.mssante_address:
                continue
            if p.is_patient:
                patient_address = p.mssante_address
                continue
            name = " ".join(x for x in (p.given, p.family) if x) or p.organization_name
            recipients.append(
                MetaRecipient(
                    address=p.mssante_address,
                    role=RecipientRole.PRESCRIBER
                    if p.person_id and p.person_id in prescribers
                    else RecipientRole.COPY,
                    name=name,
                    id=p.person_id or p.organization_id,
                    id_type=p.person_id_type or p.organization_id_type,
                )
            )
        return cls(
            sender_metadata=metadata_values(transmission.metadata),
            patient_may_not_reply=transmission.metadata.patient_may_not_reply,
            recipients=tuple(recipients),
            patient_address=patient_address,
            reply_to=transmission.reply_to,
            message=SourceMessage.from_header(header),
            orders=orders or OrderNumbers(),
            unique_document_number=transmission.unique_document_number,
            warnings=transmission.warnings,
        )

    # -- reading --------------------------------------------------------------------

    @property
    def routing_recipients(self) -> tuple[Recipient, ...]:
        return tuple(r.to_recipient() for r in self.recipients)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "sender_metadata": dict(self.sender_metadata)
            if self.sender_metadata is not None
            else None,
            "patient_may_not_reply": self.patient_may_not_reply,
            "recipients": [
                {
                    "address": r.address,
                    "role": r.role.value,
                    "name": r.name,
                    "id": r.id,
                    "id_type": r.id_type,
                }
                for r in self.recipients
            ],
            "patient_address": self.patient_address,
            "reply_to": self.reply_to,
            "message": _message_json(self.message),
            "orders": {
                "placer": self.orders.placer,
                "filler": self.orders.filler,
                "accession": self.orders.accession,
            },
            "unique_document_number": self.unique_document_number,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DocumentMeta:
        """Read `document_versions.meta`; None (a version without meta) is an empty meta."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise DocumentMetaError(f"meta: expected a JSON object, got {type(data).__name__}")
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise DocumentMetaError(
                f"meta.schema: this PFI reads schema {SCHEMA_VERSION}, got {schema!r}"
            )
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise DocumentMetaError(f"meta: unknown key(s) {', '.join(unknown)}")
        sender = data.get("sender_metadata")
        if sender is not None:
            sender = {
                str(k): _text(v, f"meta.sender_metadata.{k}")
                for k, v in _mapping(sender, "meta.sender_metadata").items()
            }
        recipients = []
        for i, item in enumerate(_list(data.get("recipients", []), "meta.recipients")):
            where = f"meta.recipients[{i}]"
            item = _mapping(item, where)
            address = _text(item.get("address"), f"{where}.address")
            if "@" not in address:
                raise DocumentMetaError(f"{where}.address: not a mail address: {address!r}")
            role = item.get("role", RecipientRole.COPY.value)
            if role not in {r.value for r in RecipientRole}:
                raise DocumentMetaError(f"{where}.role: expected prescriber or copy, got {role!r}")
            recipients.append(
                MetaRecipient(
                    address=address,
                    role=RecipientRole(role),
                    name=_text(item.get("name", ""), f"{where}.name"),
                    id=_text(item.get("id", ""), f"{where}.id"),
                    id_type=_text(item.get("id_type", ""), f"{where}.id_type"),
                )
            )
        orders = _mapping(data.get("orders") or {}, "meta.orders")
        return cls(
            sender_metadata=sender,
            patient_may_not_reply=_bool(
                data.get("patient_may_not_reply", False), "meta.patient_may_not_reply"
            ),
            recipients=tuple(recipients),
            patient_address=_text(data.get("patient_address", ""), "meta.patient_address"),
            reply_to=_text(data.get("reply_to", ""), "meta.reply_to"),
            message=_message(data.get("message")),
            orders=OrderNumbers(
                placer=_text(orders.get("placer", ""), "meta.orders.placer"),
                filler=_text(orders.get("filler", ""), "meta.orders.filler"),
                accession=_text(orders.get("accession", ""), "meta.orders.accession"),
            ),
            unique_document_number=_text(
                data.get("unique_document_number", ""), "meta.unique_document_number"
            ),
            warnings=tuple(
                _text(w, "meta.warnings[]")
                for w in _list(data.get("warnings", []), "meta.warnings")
            ),
        )


def metadata_values(meta: DmpMssMetadata) -> dict[str, str]:
    """MetaDMPMSS as the sender set it: Y/N flags, texts; optional ones left out if absent."""
    out: dict[str, str] = {}
    for attr, name in _METADATA_FIELDS:
        value = getattr(meta, attr)
        if value is None:
            continue
        out[name] = ("Y" if value else "N") if isinstance(value, bool) else value
    return out


_TOP_KEYS = frozenset(
    {
        "schema",
        "sender_metadata",
        "patient_may_not_reply",
        "recipients",
        "patient_address",
        "reply_to",
        "message",
        "orders",
        "unique_document_number",
        "warnings",
    }
)
_MESSAGE_KEYS = (
    "control_id",
    "sending_application",
    "sending_facility",
    "receiving_application",
    "receiving_facility",
    "message_type",
    "processing_id",
)


def _message_json(message: SourceMessage | None) -> dict[str, str] | None:
    if message is None:
        return None
    return {key: getattr(message, key) for key in _MESSAGE_KEYS}


def _message(data: Any) -> SourceMessage | None:
    if data is None:
        return None
    data = _mapping(data, "meta.message")
    values = {key: _text(data.get(key, ""), f"meta.message.{key}") for key in _MESSAGE_KEYS}
    if not values["control_id"]:
        raise DocumentMetaError("meta.message.control_id: the MSH-10 of the message is required")
    values["processing_id"] = values["processing_id"] or "P"
    return SourceMessage(**values)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DocumentMetaError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DocumentMetaError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DocumentMetaError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DocumentMetaError(f"{where}: expected true or false, got {value!r}")
    return value
