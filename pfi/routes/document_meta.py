"""`document_versions.meta` as routing reads it.

The documents stage writes the JSON (its `VersionMeta`, pfi/documents/meta.py on the
documents-stage branch): what routing needs that is not in columns — the sender's
MetaDMPMSS, the people the message names (PRT participants, prescriber, copies) with
their MSSanté addresses, the message that carried the document (whom a ZAM answers),
the order numbers (what release triggers name). This module is the routing side of that
contract: one typed view, `DocumentMeta`, read with `from_json`, which names the key
that is wrong instead of routing a document to nobody.

The keys read (VersionMeta.to_json), everything else is ignored:

```json
{
  "way": "transmission",                        // or "built" (PFI built the CR-BIO)
  "message_type": "ORU^R01", "control_id": "015", "sender": "SIL-Y|labo",  // MSH-3|MSH-4
  "sender_metadata": {"DESTDMP": "Y", ..., "CORPSMAIL_PS": "decoded text"},  // or null
  "patient_may_not_reply": false,               // NTE-4 FIN after DESTMSSANTEPAT
  "people": [
    {"role": "recipient", "id": "801234567897", "id_type": "IDNPS", "family": "Hoda",
     "given": "Adam", "organization_name": "", "mssante_address": "adam.hoda@...",
     "is_patient": false},                      // PRT RCT
    {"role": "recipient", "is_patient": true, "mssante_address": "...@patient.mssante.fr"},
    {"role": "reply", "mssante_address": "..."},                 // PRT REPLY
    {"role": "prescriber", "id": "801234567897"},                // ORC-12 / OBR-16
    {"role": "copy", "id": "10003", "mssante_address": "..."}    // OBR-28, once resolved
  ],
  "placer_order": "98765431", "filler_order": "1001-E1",
  "accession_number": "",                       // imaging (optional)
  "txa_unique_document_number": "",             // MDM TXA-12
  "warnings": []
}
```

Recipients: a `recipient` (PRT RCT) is routed as the prescriber when its id is the id of
a `prescriber` entry, else as a copy; a `prescriber` or `copy` entry with an address
(way b, resolved from the annuaire) is routed as such. A `prescriber` or `copy` entry of
a built document (way b) with an id and no address is `to_resolve`: routing looks its
mailbox up in the annuaire (`pfi.routes.mss_recipients`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pfi.routes.inputs import Recipient, RecipientRole
from pfi.routes.metadata import KNOWN as METADATA_NAMES
from pfi.routes.model import PATIENT_MAIL_DOMAIN
from pfi.transforms.hl7 import MessageHeader

WAY_TRANSMISSION = "transmission"
WAY_BUILT = "built"


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
class MetaPerson:
    """A prescriber or copy recipient named by id (RPPS...) whose address is not known."""

    role: RecipientRole
    id: str
    id_type: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", RecipientRole(self.role))


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """The HL7 message a version came from: whom to answer (ZAM) and about which message
    (OBX-4 of the ZAM is its MSH-10)."""

    control_id: str
    sending_application: str
    sending_facility: str
    message_type: str = ""
    processing_id: str = "P"

    @classmethod
    def from_header(cls, header: MessageHeader) -> SourceMessage:
        cs = header.separators.component
        return cls(
            control_id=header.control_id,
            sending_application=header.sending_application.split(cs, 1)[0],
            sending_facility=header.sending_facility.split(cs, 1)[0],
            message_type=header.message_type,
            processing_id=(header.processing_id or "P")[:1],
        )

    @property
    def sender(self) -> str:
        """MSH-3|MSH-4, as the documents stage and intake write it."""
        return f"{self.sending_application}|{self.sending_facility}"


@dataclass(frozen=True, slots=True)
class OrderNumbers:
    """The order the document answers, as release triggers may name it."""

    placer: str = ""  # ORC-2.1 / OBR-2.1
    filler: str = ""  # ORC-3.1 / OBR-3.1
    accession: str = ""  # accession number (imaging)


@dataclass(frozen=True, slots=True)
class DocumentMeta:
    way: str = WAY_BUILT
    sender_metadata: Mapping[str, str] | None = None
    patient_may_not_reply: bool = False
    recipients: tuple[MetaRecipient, ...] = ()
    patient_address: str = ""
    reply_to: str = ""
    message: SourceMessage | None = None
    orders: OrderNumbers = field(default_factory=OrderNumbers)
    unique_document_number: str = ""
    warnings: tuple[str, ...] = ()
    #: way (b): prescriber / copies named by id only, for the annuaire
    to_resolve: tuple[MetaPerson, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "to_resolve", tuple(self.to_resolve))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        if self.sender_metadata is not None:
            unknown = sorted(set(self.sender_metadata) - METADATA_NAMES)
            if unknown:
                raise DocumentMetaError(
                    f"meta.sender_metadata: {', '.join(unknown)} not in the MetaDMPMSS table"
                )

    @property
    def routing_recipients(self) -> tuple[Recipient, ...]:
        return tuple(r.to_recipient() for r in self.recipients)

    # -- reading --------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DocumentMeta:
        """Read `document_versions.meta`; None (a version without meta) is an empty meta."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise DocumentMetaError(f"meta: expected a JSON object, got {type(data).__name__}")
        sender = data.get("sender_metadata")
        if sender is not None:
            sender = {
                str(k): _text(v, f"meta.sender_metadata.{k}")
                for k, v in _mapping(sender, "meta.sender_metadata").items()
            }
        people = [
            _mapping(p, f"meta.people[{i}]")
            for i, p in enumerate(_list(data.get("people", []), "meta.people"))
        ]
        prescriber_ids = {
            _text(p.get("id"), f"meta.people[{i}].id")
            for i, p in enumerate(people)
            if p.get("role") == "prescriber"
        } - {""}
        recipients: list[MetaRecipient] = []
        to_resolve: list[MetaPerson] = []
        seen: set[str] = set()
        seen_ids: set[tuple[str, str]] = set()
        way = _text(data.get("way"), "meta.way") or WAY_BUILT
        patient_address = reply_to = ""
        for i, person in enumerate(people):
            where = f"meta.people[{i}]"
            role = _text(person.get("role"), f"{where}.role")
            address = _text(person.get("mssante_address"), f"{where}.mssante_address").strip()
            if role not in _ROLES:
                raise DocumentMetaError(f"{where}.role: expected one of {_ROLE_LIST}, got {role!r}")
            if not address:
                person_id = _text(person.get("id"), f"{where}.id").strip()
                if (
                    way == WAY_BUILT
                    and role in ("prescriber", "copy")
                    and person_id
                    and (role, person_id) not in seen_ids
                ):
                    seen_ids.add((role, person_id))
                    to_resolve.append(
                        MetaPerson(
                            RecipientRole(role),
                            person_id,
                            _text(person.get("id_type"), f"{where}.id_type"),
                            _display_name(person, where),
                        )
                    )
                continue
            if "@" not in address:
                raise DocumentMetaError(f"{where}.mssante_address: not a mail address: {address!r}")
            if role == "reply":
                reply_to = reply_to or address
                continue
            patient = _bool(person.get("is_patient", False), f"{where}.is_patient")
            if patient or address.lower().endswith("@" + PATIENT_MAIL_DOMAIN):
                if role == "recipient":
                    patient_address = patient_address or address
                continue
            if role not in ("recipient", "prescriber", "copy") or address.lower() in seen:
                continue
            seen.add(address.lower())
            person_id = _text(person.get("id"), f"{where}.id")
            is_prescriber = role == "prescriber" or (
                role == "recipient" and person_id and person_id in prescriber_ids
            )
            recipients.append(
                MetaRecipient(
                    address=address,
                    role=RecipientRole.PRESCRIBER if is_prescriber else RecipientRole.COPY,
                    name=_display_name(person, where),
                    id=person_id
                    or _text(person.get("organization_id"), f"{where}.organization_id"),
                    id_type=_text(person.get("id_type"), f"{where}.id_type")
                    or _text(person.get("organization_id_type"), f"{where}.organization_id_type"),
                )
            )
        return cls(
            way=way,
            sender_metadata=sender,
            patient_may_not_reply=_bool(
                data.get("patient_may_not_reply", False), "meta.patient_may_not_reply"
            ),
            recipients=tuple(recipients),
            patient_address=patient_address,
            reply_to=reply_to,
            message=_message(data),
            orders=OrderNumbers(
                placer=_text(data.get("placer_order"), "meta.placer_order"),
                filler=_text(data.get("filler_order"), "meta.filler_order"),
                accession=_text(data.get("accession_number"), "meta.accession_number"),
            ),
            unique_document_number=_text(
                data.get("txa_unique_document_number"), "meta.txa_unique_document_number"
            ),
            warnings=tuple(
                _text(w, f"meta.warnings[{i}]")
                for i, w in enumerate(_list(data.get("warnings", []), "meta.warnings"))
            ),
            # a person the message already gives an address for needs no look-up
            to_resolve=tuple(
                p for p in to_resolve if p.id not in {r.id for r in recipients if r.id}
            ),
        )

    # -- writing (the same keys; the documents stage's VersionMeta writes them too) ----

    def to_json(self) -> dict[str, Any]:
        people: list[dict[str, Any]] = []
        for r in self.recipients:
            if r.id:  # as a PRT RCT, and the prescriber named by id (way a)
                people.append(_person("recipient", r.address, r.name, r.id, r.id_type))
                if r.role is RecipientRole.PRESCRIBER:
                    people.append(_person("prescriber", "", "", r.id, r.id_type))
            else:  # as a prescriber / copy whose address is known (way b)
                people.append(_person(r.role.value, r.address, r.name, "", ""))
        for p in self.to_resolve:
            people.append(_person(p.role.value, "", p.name, p.id, p.id_type))
        if self.patient_address:
            people.append(
                {**_person("recipient", self.patient_address, "", "", ""), "is_patient": True}
            )
        if self.reply_to:
            people.append(_person("reply", self.reply_to, "", "", ""))
        message = self.message
        return {
            "way": self.way,
            "message_type": message.message_type if message else "",
            "control_id": message.control_id if message else "",
            "sender": message.sender if message else "",
            "sender_metadata": dict(self.sender_metadata)
            if self.sender_metadata is not None
            else None,
            "people": people,
            "patient_may_not_reply": self.patient_may_not_reply,
            "placer_order": self.orders.placer,
            "filler_order": self.orders.filler,
            "accession_number": self.orders.accession,
            "txa_unique_document_number": self.unique_document_number,
            "warnings": list(self.warnings),
        }


_ROLE_LIST = "recipient, sender, reply, prescriber, copy, validator"
_ROLES = frozenset(_ROLE_LIST.split(", "))


def _person(role: str, address: str, name: str, person_id: str, id_type: str) -> dict[str, Any]:
    return {
        "role": role,
        "id": person_id,
        "id_type": id_type,
        "family": name,
        "given": "",
        "organization_name": "",
        "mssante_address": address,
        "is_patient": False,
    }


def _display_name(person: Mapping[str, Any], where: str) -> str:
    given = _text(person.get("given"), f"{where}.given")
    family = _text(person.get("family"), f"{where}.family")
    organization = _text(person.get("organization_name"), f"{where}.organization_name")
    return " ".join(x for x in (given, family) if x) or organization


def _message(data: Mapping[str, Any]) -> SourceMessage | None:
    control_id = _text(data.get("control_id"), "meta.control_id")
    if not control_id:
        return None
    sender = _text(data.get("sender"), "meta.sender")
    application, _, facility = sender.partition("|")
    return SourceMessage(
        control_id=control_id,
        sending_application=application,
        sending_facility=facility,
        message_type=_text(data.get("message_type"), "meta.message_type"),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DocumentMetaError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise DocumentMetaError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return list(value)


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
