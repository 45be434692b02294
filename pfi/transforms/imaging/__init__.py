"""Imaging reports: RIS ORU^R01 / MDM^T02 → `ImagingReport` (then CR-IMG, `cda.cr_img`)."""

from pfi.transforms.imaging.from_message import build_imaging_report
from pfi.transforms.imaging.model import (
    ImagingExam,
    ImagingReport,
    ImagingSeries,
    ImagingStatus,
    ReportSection,
    SectionKind,
)

__all__ = [
    "ImagingExam",
    "ImagingReport",
    "ImagingSeries",
    "ImagingStatus",
    "ReportSection",
    "SectionKind",
    "build_imaging_report",
]
