"""Laboratory reports: ORU^R01 (IHE LAB-3 style) → `LabReport` → LOINC transcoding."""

from pfi.transforms.lab.from_oru import build_lab_report
from pfi.transforms.lab.loinc import LoincMapping, TranscodePolicy, TranscodeResult, transcode
from pfi.transforms.lab.model import LabReport, ReportAction, ResultStatus

__all__ = [
    "LabReport",
    "LoincMapping",
    "ReportAction",
    "ResultStatus",
    "TranscodePolicy",
    "TranscodeResult",
    "build_lab_report",
    "transcode",
]
