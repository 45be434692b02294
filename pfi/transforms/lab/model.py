"""A laboratory report as PFI understands it, independent of HL7 v2 and of CDA.

Way (b): a lab (SGL) sends plain IHE LAB-3 style ORU^R01; PFI reads it into this model,
transcodes local codes to LOINC, then builds the CR-BIO (CDA R2 level 3 + PDF copy).
Keeping the model separate lets the PDF renderer, the CDA builder and routing share one
reading of the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from pfi.transforms.cda.oids import INS_OIDS
from pfi.transforms.hl7.header import Identifier  # a CX: value, authority, OID, type


class ResultStatus(StrEnum):
    """HL7 table 0123 (OBR-25) / 0085 (OBX-11), the values a lab report uses."""

    FINAL = "F"
    CORRECTED = "C"
    CANCELLED = "X"  # OBR-25: order cancelled; OBX-11: result cannot be obtained
    PRELIMINARY = "P"
    DELETED = "D"  # OBX-11 only: delete this result

    @property
    def is_validated(self) -> bool:
        return self in (ResultStatus.FINAL, ResultStatus.CORRECTED)


class ReportAction(StrEnum):
    """What the documents stage must do with this report.

    A correction produces version n+1 of the same document (same setId, RPLC); a
    cancellation produces no document at all but a withdrawal of the last version sent,
    which routing turns into deletions at every destination that received it.
    """

    PUBLISH = "publish"
    REPLACE = "replace"
    WITHDRAW = "withdraw"
    WAIT = "wait"  # only preliminary results: nothing validated to publish yet


@dataclass(frozen=True, slots=True)
class Coded:
    """A coded value: code, display text, coding system (HL7 v2 name or OID)."""

    code: str
    display: str = ""
    system: str = ""

    @property
    def is_loinc(self) -> bool:
        return self.system.upper() in ("LN", "LOINC", "2.16.840.1.113883.6.1")


@dataclass(frozen=True, slots=True)
class Address:
    street: str = ""
    other: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.street or self.city or self.postal_code)


@dataclass(frozen=True, slots=True)
class Patient:
    ids: tuple[Identifier, ...]
    birth_family: str
    given: str
    used_family: str = ""
    given_names: str = ""  # all birth given names (INS "liste des prénoms")
    birth_date: str = ""  # YYYYMMDD
    sex: str = "U"  # F, M, U (HL7 0001 reduced to what CDA carries)
    identity_status: str = ""  # PID-32: VALI = qualified INS
    address: Address = field(default_factory=Address)
    birth_place_code: str = ""  # INSEE code of the birth place (PID-23 / PID-11 type BDL)

    @property
    def ins(self) -> Identifier | None:
        return next(
            (i for i in self.ids if i.type_code == "INS" or i.authority_oid in INS_OIDS), None
        )

    @property
    def local_ids(self) -> tuple[Identifier, ...]:
        ins = self.ins
        return tuple(i for i in self.ids if i is not ins)


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A professional named in an XCN: RPPS (or ADELI) id, name."""

    id: str
    family: str = ""
    given: str = ""
    prefix: str = ""
    id_authority_oid: str = ""
    id_type: str = ""  # RPPS, ADELI, EI (local)...

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.prefix, self.given, self.family) if p)


@dataclass(frozen=True, slots=True)
class Specimen:
    id: str
    type: Coded | None  # HL7 table 0487 (SPM-4) / OBR-15 source
    collected_at: str = ""  # SPM-17 / OBR-7
    received_at: str = ""  # SPM-18 / OBR-14
    site: Coded | None = None


@dataclass(frozen=True, slots=True)
class Numeric:
    value: Decimal
    text: str  # as sent, to render exactly what the lab wrote


@dataclass(frozen=True, slots=True)
class StructuredNumeric:
    """SN: comparator (<, >, <=, >=, =, <>), num1, separator (-, /, :, +), num2."""

    comparator: str
    num1: Decimal | None
    separator: str = ""
    num2: Decimal | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    formatted: bool = False  # FT: line breaks are meaningful


@dataclass(frozen=True, slots=True)
class EmbeddedDocument:
    media_type: str  # application/pdf
    data: bytes = field(repr=False)


ObservationValue = Numeric | StructuredNumeric | Text | Coded | EmbeddedDocument | None


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    low: Decimal | None = None
    high: Decimal | None = None
    text: str = ""  # as sent in OBX-7


@dataclass(frozen=True, slots=True)
class Observation:
    set_id: int
    value_type: str  # NM, SN, ST, TX, FT, CE, CWE, ED
    local_code: Coded  # OBX-3 as sent (first triplet, or the local alternate)
    value: ObservationValue
    status: ResultStatus
    loinc: Coded | None = None  # after transcoding (or sent as LOINC)
    unit: str = ""  # UCUM when known
    unit_as_sent: str = ""
    reference_range: ReferenceRange | None = None
    abnormal_flags: tuple[str, ...] = ()
    observed_at: str = ""
    method: Coded | None = None
    comments: tuple[str, ...] = ()
    sub_id: str = ""  # OBX-4 (groups results of one isolate)
    validator: Practitioner | None = None  # OBX-16

    def transcoded(self, loinc: Coded, unit: str) -> Observation:
        return replace(self, loinc=loinc, unit=unit or self.unit)


@dataclass(frozen=True, slots=True)
class Battery:
    """One OBR: an ordered test (battery) and its results."""

    code: Coded
    status: ResultStatus
    observations: tuple[Observation, ...]
    placer_order: str = ""
    filler_order: str = ""
    observed_at: str = ""  # OBR-7
    reported_at: str = ""  # OBR-22
    section: str = ""  # OBR-24 (HL7 0074: CH, HM, MB, SR...)
    specimens: tuple[Specimen, ...] = ()
    validator: Practitioner | None = None  # OBR-32
    comments: tuple[str, ...] = ()
    parent_result: str = ""  # OBR-26 (isolate of a susceptibility battery)


@dataclass(frozen=True, slots=True)
class LabReport:
    """Everything one ORU^R01 says about one patient's lab report."""

    control_id: str
    sending_application: str
    sending_facility: str
    message_time: str
    patient: Patient
    batteries: tuple[Battery, ...]
    action: ReportAction
    ordering_provider: Practitioner | None = None
    copy_to: tuple[Practitioner, ...] = ()
    validator: Practitioner | None = None
    validated_at: str = ""
    placer_group: str = ""  # ORC-4 or the first OBR-2: the order as the prescriber knows it
    filler_group: str = ""  # the lab's request number (first OBR-3)
    comments: tuple[str, ...] = ()
    lab_pdf: bytes | None = field(default=None, repr=False)
    visit_number: str = ""
    patient_class: str = ""  # PV1-2
    ordered_at: str = ""  # ORC-9 / OBR-6: when the prescription was made

    @property
    def observations(self) -> tuple[Observation, ...]:
        return tuple(o for b in self.batteries for o in b.observations)

    @property
    def specimens(self) -> tuple[Specimen, ...]:
        seen: dict[str, Specimen] = {}
        for b in self.batteries:
            for s in b.specimens:
                seen.setdefault(s.id or str(len(seen)), s)
        return tuple(seen.values())

    @property
    def result_batteries(self) -> tuple[Battery, ...]:
        """The batteries that go into the document: validated, with results to show."""
        return tuple(b for b in self.batteries if b.status.is_validated and b.observations)
