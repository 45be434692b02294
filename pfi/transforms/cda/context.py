"""What a document builder needs that the HL7 message does not say.

The establishment identity (FINESS, name, address), the OIDs under which it issues ids,
the document ids (allocated by the documents stage, which knows the previous version)
and the clock: all passed in, so that building a document is a pure function of its
inputs and the same inputs give the same bytes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pfi.transforms.cda.oids import STRUCTURE_ID_ROOT
from pfi.transforms.cda.summary import InstanceId


@dataclass(frozen=True, slots=True)
class PostalAddress:
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.street or self.postal_code or self.city)


@dataclass(frozen=True, slots=True)
class Organization:
    """The custodian / performing lab: FINESS (géographique) and contact."""

    finess: str
    name: str
    telecom: str = ""  # "tel:0174589607"
    address: PostalAddress = field(default_factory=PostalAddress)
    #: Cadre d'exercice (JDV_J04 practice setting, 1.2.250.1.213.1.1.4.9).
    practice_setting: tuple[str, str] = ("ETABLISSEMENT", "Etablissement de santé")
    #: Modalité d'exercice / healthcare facility type (JDV_J02, 1.2.250.1.71.4.2.4).
    facility_type: tuple[str, str] = ("SA25", "Laboratoire de biologie médicale")
    id_root: str = STRUCTURE_ID_ROOT

    @property
    def id(self) -> InstanceId:
        """FINESS under the structure OID, prefixed "1" (FINESS) as the DMP expects."""
        ext = self.finess if len(self.finess) == 10 else f"1{self.finess}"
        return InstanceId(self.id_root, ext)


@dataclass(frozen=True, slots=True)
class DocumentIds:
    """The identity of the version being built.

    `replaces` is the id of the version this one replaces (RPLC): required from version 2
    on, and the documents stage passes the id it stored for version n-1.
    """

    document_id: InstanceId
    set_id: InstanceId
    version: int = 1
    replaces: InstanceId | None = None

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"versionNumber must be a positive integer, got {self.version}")
        if self.version > 1 and self.replaces is None:
            raise ValueError(f"version {self.version} must name the version it replaces")
        if self.version == 1 and self.replaces is not None:
            raise ValueError("version 1 cannot replace another document")


@dataclass(frozen=True, slots=True)
class CdaContext:
    """Establishment identity, id roots, document ids, confidentiality and the clock."""

    organization: Organization
    ids: DocumentIds
    effective_time: datetime  # timezone-aware: CI-SIS times carry their offset
    #: OID of the establishment's patient id domain (IPP) when PID-3 gives none.
    patient_id_root: str
    #: OID under which order numbers (placer/filler) are issued.
    order_id_root: str
    #: OID of the lab's local test code system (keep_local policy, battery codes).
    local_code_system_oid: str
    #: OID for practitioner ids that are not RPPS/ADELI (local ids).
    practitioner_local_root: str = ""
    confidentiality_code: str = "N"
    #: Profession/speciality of the validating biologist (TRE_G15 / R38).
    biologist_role: tuple[str, str] = ("G15_10/SM03", "Médecin - Biologie médicale (SM)")
    #: Profession/speciality of the radiologist who signs a CR-IMG (TRE_G15 / R38).
    radiologist_role: tuple[str, str] = ("G15_10/SM44", "Médecin - Radio-diagnostic (SM)")
    #: OID of the RIS that issues accession numbers (CR-IMG inFulfillmentOf); defaults to
    #: `order_id_root`.
    accession_id_root: str = ""

    def __post_init__(self) -> None:
        if self.effective_time.tzinfo is None:
            raise ValueError("effective_time must be timezone-aware")
        if self.confidentiality_code not in ("N", "R", "V"):
            raise ValueError("confidentiality_code must be N, R or V")

    def uuid(self, purpose: str) -> str:
        """A stable UUID for an element of this document version (same inputs, same bytes)."""
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.ids.document_id}/{purpose}")).upper()
