"""The XDS objects PFI submits: document entry, submission set, association, masking.

Plain frozen dataclasses: built from a CDA by `metadata`, rendered to ebRIM by `ebrim`,
parsed back by the simulator, and stored as JSON by the delivery ledger (`to_json`) so that a
later replacement or masking update can reuse the exact metadata the DMP holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from pfi.transforms.xds import ns
from pfi.transforms.xds.codes import Code


def new_entry_uuid() -> str:
    """A fresh `urn:uuid:` identifier for an ebRIM object."""
    return f"urn:uuid:{uuid.uuid4()}"


def new_unique_oid() -> str:
    """A fresh OID under the UUID arc 2.25 (ITU-T X.667), usable as a submission uniqueId."""
    return f"2.25.{uuid.uuid4().int}"


_MASKING_FIELDS = {
    "MASQUE_PS": "masque_ps",
    "INVISIBLE_PATIENT": "invisible_patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "invisible_representants_legaux",
}
# The HL7 MetaDMPMSS table spells the legal-representatives flag differently from the DMP.
_HL7_MASKING_NAMES = {
    "MASQUE_PS": "masque_ps",
    "INVISIBLE_PATIENT": "invisible_patient",
    "INVISIBLE_REP_LEGAUX": "invisible_representants_legaux",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "invisible_representants_legaux",
    "CONNEXION_SECRETE": "connexion_secrete",
}
_MASKING_DISPLAY = {
    "MASQUE_PS": "Masqué aux professionnels de santé",
    "INVISIBLE_PATIENT": "Non visible par le patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux du patient",
}


@dataclass(frozen=True, slots=True)
class MaskingFlags:
    """DMP restriction flags (HL7 OBX MetaDMPMSS) for one document.

    MASQUE_PS, INVISIBLE_PATIENT and INVISIBLE_REPRESENTANTS_LEGAUX travel as extra
    confidentialityCode values (code system 1.2.250.1.213.1.1.4.13, JDV_J08) next to the
    CDA's N/R/V. CONNEXION_SECRETE is not a document attribute: JDV_J08 has no such code;
    it is a property of the DMP access and travels in the VIHF as the
    `urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code` attribute.
    """

    masque_ps: bool = False
    invisible_patient: bool = False
    invisible_representants_legaux: bool = False
    connexion_secrete: bool = False

    @classmethod
    def from_hl7(cls, flags: Mapping[str, str | bool]) -> MaskingFlags:
        """From OBX-3.1 names (MASQUE_PS, INVISIBLE_REP_LEGAUX...) to Y/N or bool values."""
        values: dict[str, bool] = {}
        for name, raw in flags.items():
            attr = _HL7_MASKING_NAMES.get(name.upper())
            if attr is None:
                continue
            if isinstance(raw, bool):
                values[attr] = raw
            elif raw.strip().upper() in ("Y", "N"):
                values[attr] = raw.strip().upper() == "Y"
            else:
                raise ValueError(f"{name}: expected Y or N (HL7 table 0136), got {raw!r}")
        return cls(**values)

    def confidentiality_codes(self) -> list[Code]:
        return [
            Code(code, ns.MASKING_CODE_SYSTEM, _MASKING_DISPLAY[code])
            for code, attr in _MASKING_FIELDS.items()
            if getattr(self, attr)
        ]

    @classmethod
    def from_confidentiality(
        cls, codes: Sequence[Code], *, connexion_secrete: bool = False
    ) -> MaskingFlags:
        present = {c.code for c in codes if c.scheme == ns.MASKING_CODE_SYSTEM}
        return cls(
            **{attr: code in present for code, attr in _MASKING_FIELDS.items()},
            connexion_secrete=connexion_secrete,
        )


@dataclass(frozen=True, slots=True)
class Author:
    """An XDS author: person (XCN), institutions (XON), roles, specialties."""

    person: str = ""
    institutions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "institutions": list(self.institutions),
            "roles": list(self.roles),
            "specialties": list(self.specialties),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Author:
        return cls(
            person=data.get("person", ""),
            institutions=tuple(data.get("institutions", ())),
            roles=tuple(data.get("roles", ())),
            specialties=tuple(data.get("specialties", ())),
        )


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """XDSDocumentEntry metadata of one stable document (ITI TF-3 §4.2.3.2)."""

    entry_uuid: str
    unique_id: str
    patient_id: str
    source_patient_id: str
    mime_type: str
    hash: str
    size: int
    creation_time: str
    language_code: str
    title: str
    class_code: Code
    type_code: Code
    format_code: Code
    healthcare_facility_type_code: Code
    practice_setting_code: Code
    confidentiality_codes: tuple[Code, ...]
    authors: tuple[Author, ...]
    legal_authenticator: str = ""
    service_start_time: str = ""
    service_stop_time: str = ""
    source_patient_info: tuple[str, ...] = ()
    event_codes: tuple[Code, ...] = ()
    reference_ids: tuple[str, ...] = ()
    logical_id: str = ""
    comments: str = ""

    @property
    def masking(self) -> MaskingFlags:
        return MaskingFlags.from_confidentiality(self.confidentiality_codes)

    def with_masking(self, masking: MaskingFlags) -> DocumentEntry:
        """The same entry with its DMP masking codes replaced (the CDA's N/R/V kept)."""
        base = [c for c in self.confidentiality_codes if c.scheme != ns.MASKING_CODE_SYSTEM]
        return replace(self, confidentiality_codes=(*base, *masking.confidentiality_codes()))

    def new_version(self, entry_uuid: str | None = None) -> DocumentEntry:
        """The next metadata version of this entry (ITI-57): new entryUUID, same logical id."""
        return replace(
            self,
            entry_uuid=entry_uuid or new_entry_uuid(),
            logical_id=self.logical_id or self.entry_uuid,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Code | Author):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = [v.to_json() if isinstance(v, Code | Author) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DocumentEntry:
        codes = {
            "class_code",
            "type_code",
            "format_code",
            "healthcare_facility_type_code",
            "practice_setting_code",
        }
        kwargs: dict[str, Any] = dict(data)
        for name in codes:
            kwargs[name] = Code.from_json(data[name])
        for name in ("confidentiality_codes", "event_codes"):
            kwargs[name] = tuple(Code.from_json(c) for c in data.get(name, ()))
        kwargs["authors"] = tuple(Author.from_json(a) for a in data.get("authors", ()))
        for name in ("source_patient_info", "reference_ids"):
            kwargs[name] = tuple(data.get(name, ()))
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """XDSSubmissionSet metadata (ITI TF-3 §4.2.3.3)."""

    entry_uuid: str
    unique_id: str
    source_id: str
    patient_id: str
    submission_time: str
    content_type_code: Code
    authors: tuple[Author, ...]
    title: str = ""
    comments: str = ""


@dataclass(frozen=True, slots=True)
class Association:
    """An ebRIM association between two registry objects, with its slots."""

    association_type: str
    source: str
    target: str
    entry_uuid: str = field(default_factory=new_entry_uuid)
    slots: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def slot(self, name: str) -> tuple[str, ...]:
        for slot_name, values in self.slots:
            if slot_name == name:
                return values
        return ()


def has_member(
    submission_set: SubmissionSet, target: str, *, previous_version: int | None = None
) -> Association:
    """SubmissionSet HasMember link; `previous_version` marks an ITI-57 metadata update."""
    slots: list[tuple[str, tuple[str, ...]]] = [("SubmissionSetStatus", ("Original",))]
    if previous_version is not None:
        slots.append(("PreviousVersion", (str(previous_version),)))
    return Association(ns.ASSOC_HAS_MEMBER, submission_set.entry_uuid, target, slots=tuple(slots))


@dataclass(frozen=True, slots=True)
class SubmissionContext:
    """What a DMP submission needs beyond the CDA itself.

    `submission_time` is passed in (transforms read no clock). Identifiers default to fresh
    UUIDs; a caller that wants idempotent retries passes the ones it stored the first time.
    """

    submission_time: datetime
    source_id: str
    content_type_code: Code
    submitter: Author
    masking: MaskingFlags = MaskingFlags()
    replaces: str | None = None
    class_code: Code | None = None
    event_codes: tuple[Code, ...] = ()
    entry_uuid: str = field(default_factory=new_entry_uuid)
    submission_set_uuid: str = field(default_factory=new_entry_uuid)
    submission_set_unique_id: str = field(default_factory=new_unique_oid)
    submission_set_title: str = ""
