"""The RIS fixtures (tests/fixtures/hl7/ris) and what each one must give."""

from __future__ import annotations

from pathlib import Path

from pfi.transforms.cda.cr_img import CrImgLevel, build_cr_img
from pfi.transforms.hl7 import ErrorCode, parse_message
from pfi.transforms.imaging import ImagingReport, build_imaging_report
from pfi.transforms.lab import ReportAction
from tests.support.cda import make_imaging_context

RIS = Path(__file__).resolve().parents[1] / "fixtures/hl7/ris"
L1, L3 = CrImgLevel.NON_STRUCTURED, CrImgLevel.STRUCTURED

#: fixture → (action, level of the CR-IMG built)
DOCUMENTS: dict[str, tuple[ReportAction, CrImgLevel]] = {
    "01_oru_text_only": (ReportAction.PUBLISH, L1),
    "02_oru_sections_conclusion": (ReportAction.PUBLISH, L1),
    "03_oru_dicom_study_uid": (ReportAction.PUBLISH, L3),
    "04_oru_rad28_series_and_headings": (ReportAction.PUBLISH, L3),
    "05_mdm_t02": (ReportAction.PUBLISH, L1),
    "06_oru_correction": (ReportAction.REPLACE, L3),
    "08_latin1_accents": (ReportAction.PUBLISH, L3),
    "09_utf8_accents": (ReportAction.PUBLISH, L1),
    "10_oru_with_pdf": (ReportAction.PUBLISH, L1),
    "11_oru_level3_with_pdf": (ReportAction.PUBLISH, L3),
    "12_mdm_t10_replacement": (ReportAction.REPLACE, L1),
    "15_two_exams": (ReportAction.PUBLISH, L3),
    "16_local_code_and_hl7_modality": (ReportAction.PUBLISH, L3),
    "17_addendum_comparison_comments": (ReportAction.PUBLISH, L3),
    "18_modality_not_dicom": (ReportAction.PUBLISH, L1),
    "19_site_not_in_value_set": (ReportAction.PUBLISH, L1),
}
#: fixture → action of a message that is no document (withdrawal, not yet validated)
NOT_DOCUMENTS: dict[str, ReportAction] = {
    "07_oru_cancellation": ReportAction.WITHDRAW,
    "13_mdm_t11_cancellation": ReportAction.WITHDRAW,
    "14_preliminary": ReportAction.WAIT,
}
#: fixture → (HL7 error code, location)
REJECTIONS: dict[str, tuple[ErrorCode, str]] = {
    "r01_missing_radiologist": (ErrorCode.REQUIRED_FIELD_MISSING, "OBR-32"),
    "r02_bad_study_uid": (ErrorCode.DATA_TYPE_ERROR, "ZDS-1"),
    "r03_obx_without_obr": (ErrorCode.SEGMENT_SEQUENCE_ERROR, "OBX"),
    "r04_no_report_text": (ErrorCode.REQUIRED_FIELD_MISSING, "OBX"),
    "r05_mdm_without_completion_status": (ErrorCode.REQUIRED_FIELD_MISSING, "TXA-17"),
    "r06_unsupported_mdm_event": (ErrorCode.UNSUPPORTED_EVENT_CODE, "MSH-9.2"),
    "r07_embedded_jpeg": (ErrorCode.DATA_TYPE_ERROR, "OBX-5"),
    "r08_missing_exam_code": (ErrorCode.REQUIRED_FIELD_MISSING, "OBR-4"),
    "r09_unknown_result_status": (ErrorCode.TABLE_VALUE_NOT_FOUND, "OBR-25"),
}


def ris_report(name: str) -> ImagingReport:
    return build_imaging_report(parse_message((RIS / f"{name}.hl7").read_bytes()))


def ris_cda(name: str) -> bytes:
    """The CR-IMG of a fixture; a correction is version 2 replacing version 1."""
    report = ris_report(name)
    if report.action is ReportAction.REPLACE:
        return build_cr_img(report, make_imaging_context(name, 2, f"{name}.v1"))
    return build_cr_img(report, make_imaging_context(name))
