"""An imaging report (compte rendu d'imagerie) as PFI understands it, apart from HL7 and CDA.

A RIS sends its report as ORU^R01 (report text in OBX, one OBR per exam) or as MDM^T02
(TXA + OBX). Both are read into this model, so that the CR-IMG builder, the PDF renderer
and routing share one reading of the message, whichever way it came. What the model holds
is what the message said: codes as sent, UIDs as sent, text split into the sections the
radiologist wrote; whether that is enough for a level-3 CR-IMG is the builder's decision
(`pfi.transforms.cda.cr_img.cr_img_plan`).

Patient, professionals, coded values and embedded documents are the lab model's types:
the CDA header writes them the same way for CR-BIO and CR-IMG.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pfi.transforms.cda.oids import DCM, LOINC_NAMES, SNOMED_CT
from pfi.transforms.lab.model import (
    Coded,
    EmbeddedDocument,
    Patient,
    Practitioner,
    ReportAction,
)

__all__ = [
    "Coded",
    "DicomInstance",
    "EmbeddedDocument",
    "ImagingExam",
    "ImagingReport",
    "ImagingSeries",
    "ImagingStatus",
    "Patient",
    "Practitioner",
    "ReportAction",
    "ReportSection",
    "SectionKind",
]

#: HL7 v2 coding-system names that mean CCAM (French procedure classification).
CCAM_NAMES = frozenset({"CCAM", "1.2.250.1.215.300.1"})
CCAM = "1.2.250.1.215.300.1"
#: ... SNOMED CT and DICOM (DCM) in HL7 table 0396 spellings or as OIDs.
SNOMED_NAMES = frozenset({"SCT", "SNM", "SNOMED", "SNOMED CT", "SNOMED-CT", SNOMED_CT})
DCM_NAMES = frozenset({"DCM", "DICOM", DCM})


class ImagingStatus(StrEnum):
    """The report status (OBR-25, or TXA-17 / the MDM event), reduced to what PFI acts on."""

    FINAL = "F"
    CORRECTED = "C"
    CANCELLED = "X"
    PRELIMINARY = "P"  # P, R, I, S, A: not validated by the radiologist yet

    @property
    def is_validated(self) -> bool:
        return self in (ImagingStatus.FINAL, ImagingStatus.CORRECTED)


class SectionKind(StrEnum):
    """The parts of a radiology report (DICOM CID 7001 headings, LOINC report sections)."""

    INDICATION = "indication"  # reason for exam, clinical information, history
    TECHNIQUE = "technique"  # procedure description, protocol, contrast
    FINDINGS = "findings"  # résultats
    COMPARISON = "comparison"  # prior studies compared
    CONCLUSION = "conclusion"  # impression
    ADDENDUM = "addendum"
    REPORT = "report"  # report text the sender did not divide into sections
    COMMENT = "comment"  # NTE


@dataclass(frozen=True, slots=True)
class ReportSection:
    """One piece of report text, in the order sent."""

    kind: SectionKind
    text: str
    title: str = ""  # OBX-3 text or the heading as written, for the reader
    exam: int = 0  # index in `ImagingReport.exams` of the OBR it followed


@dataclass(frozen=True, slots=True)
class DicomInstance:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True, slots=True)
class ImagingSeries:
    """A DICOM series the report refers to (IHE RAD-28 style OBX, grouped by OBX-4)."""

    uid: str
    modality: Coded | None = None
    instances: tuple[DicomInstance, ...] = ()


@dataclass(frozen=True, slots=True)
class ImagingExam:
    """One imaging procedure (one OBR): what was done, when, where in the body, with what."""

    code: Coded  # OBR-4 first triplet as sent (LOINC, CCAM or the RIS's local code)
    status: ImagingStatus
    alternate_code: Coded | None = None  # OBR-4 second triplet
    placer_order: str = ""  # OBR-2 (or ORC-2): the order number the prescriber knows
    filler_order: str = ""  # OBR-3 (or ORC-3): the RIS's number
    accession_number: str = ""  # OBR-18 (IHE RAD), DICOM Accession Number
    started_at: str = ""  # OBR-7
    ended_at: str = ""  # OBR-8
    reported_at: str = ""  # OBR-22
    modality: Coded | None = None  # DCM code (OBX 121139, or OBR-24)
    modality_as_sent: str = ""  # OBR-24 as sent, to explain a modality PFI could not use
    body_site: Coded | None = None  # SNOMED CT (OBX 39111-0 / DCM 123014, or OBR-15.4)
    study_uid: str = ""  # DICOM Study Instance UID (ZDS-1, OBX 110180 / "Study Instance UID")
    series: tuple[ImagingSeries, ...] = ()
    radiologist: Practitioner | None = None  # OBR-32

    @property
    def loinc(self) -> Coded | None:
        return next((c for c in self._codes if c.system.upper() in LOINC_NAMES), None)

    @property
    def ccam(self) -> Coded | None:
        return next((c for c in self._codes if c.system.upper() in CCAM_NAMES), None)

    @property
    def display(self) -> str:
        """The exam name for a reader: the first display text sent, else the code."""
        return next((c.display for c in self._codes if c.display), self.code.code)

    @property
    def _codes(self) -> tuple[Coded, ...]:
        return (self.code,) + ((self.alternate_code,) if self.alternate_code else ())


@dataclass(frozen=True, slots=True)
class ImagingReport:
    """Everything one RIS message says about one patient's imaging report."""

    control_id: str
    message_type: str  # ORU^R01, MDM^T02, MDM^T10, MDM^T11
    sending_application: str
    sending_facility: str
    message_time: str
    patient: Patient
    exams: tuple[ImagingExam, ...]
    sections: tuple[ReportSection, ...]
    status: ImagingStatus
    action: ReportAction
    radiologist: Practitioner | None = None  # who validated (OBR-32, TXA-22, TXA-10)
    validated_at: str = ""
    prescriber: Practitioner | None = None  # OBR-16 / ORC-12
    copy_to: tuple[Practitioner, ...] = ()  # OBR-28
    attachments: tuple[EmbeddedDocument, ...] = ()  # OBX ED (PDF)
    visit_number: str = ""  # PV1-19
    patient_class: str = ""  # PV1-2
    ordered_at: str = ""  # ORC-9 / OBR-6
    document_number: str = ""  # TXA-12 (MDM): the RIS's id of this report
    parent_document_number: str = ""  # TXA-13 (MDM): the report this one replaces

    @property
    def validated_exams(self) -> tuple[ImagingExam, ...]:
        return tuple(e for e in self.exams if e.status.is_validated)

    @property
    def document_sections(self) -> tuple[ReportSection, ...]:
        """The text that goes into the document: that of validated exams, in order."""
        validated = {i for i, e in enumerate(self.exams) if e.status.is_validated}
        return tuple(s for s in self.sections if s.exam in validated)

    def texts(self, *kinds: SectionKind) -> tuple[ReportSection, ...]:
        return tuple(s for s in self.document_sections if s.kind in kinds)

    @property
    def pdf(self) -> bytes | None:
        """The RIS's own rendering of the report, when it sent one."""
        return next((a.data for a in self.attachments if a.media_type == "application/pdf"), None)

    @property
    def document_key(self) -> str:
        """What identifies "the report of this exam" across versions, for the documents stage:
        the accession number, else the RIS's filler number, else the order number, else
        the MDM document number (a correction must land on the same setId)."""
        for exam in self.exams:
            for value in (exam.accession_number, exam.filler_order, exam.placer_order):
                if value:
                    return value
        return self.parent_document_number or self.document_number
