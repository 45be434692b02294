"""Way (b): raw lab ORU variants → LabReport → LOINC → CR-BIO 2024.01 (or a documented AE)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from pfi.transforms.cda.cr_bio import CrBioError, build_cr_bio
from pfi.transforms.cda.pdf import render_lab_report_pdf
from pfi.transforms.hl7 import ErrorCode, Hl7Error, parse_message
from pfi.transforms.lab import (
    LoincMapping,
    ReportAction,
    TranscodePolicy,
    build_lab_report,
    transcode,
)
from pfi.transforms.lab.loinc import MappingError
from tests.support.cda import make_context
from tests.support.png import dark_pixel_ratio, render_first_page

ORU = Path(__file__).parents[1] / "fixtures/hl7/oru"
MAPPING = LoincMapping.from_csv(
    (Path(__file__).parents[2] / "config/loinc/SGL.csv").read_text("utf-8")
)
NS = {"h": "urn:hl7-org:v3"}

#: fixture → (expected action, unmapped local codes)
DOCUMENTS = {
    "01_numeric_biochemistry": (ReportAction.PUBLISH, []),
    "02_hematology_blood_count": (ReportAction.PUBLISH, []),
    "03_text_results": (ReportAction.PUBLISH, ["FROT", "ASPECT", "CONCL"]),
    "04_coded_results": (ReportAction.PUBLISH, ["AGHBS"]),
    "05_structured_numeric": (ReportAction.PUBLISH, ["TPHA"]),
    "06_microbiology_two_specimens": (ReportAction.PUBLISH, ["HCULT"]),
    "07_embedded_lab_pdf": (ReportAction.PUBLISH, []),
    "08_correction": (ReportAction.REPLACE, []),
    "10_unmapped_code_hold": (ReportAction.PUBLISH, ["VITD25", "CA"]),
    "11_unmapped_code_keep_local": (ReportAction.PUBLISH, ["VITD25", "CA"]),
    "12_latin1_names": (ReportAction.PUBLISH, []),
    "13_utf8_names": (ReportAction.PUBLISH, []),
    "14_minimal": (ReportAction.PUBLISH, []),
    "15_loinc_sent_directly": (ReportAction.PUBLISH, []),
    "16_comments": (ReportAction.PUBLISH, []),
    "17_copy_recipients": (ReportAction.PUBLISH, []),
    "18_validator_in_obx16": (ReportAction.PUBLISH, []),
    "20_final_and_preliminary": (ReportAction.PUBLISH, ["HCULT"]),
    "21_deleted_and_not_done": (ReportAction.PUBLISH, []),
    "22_multi_chapter": (ReportAction.PUBLISH, ["AGHBS"]),
    "23_decimal_comma": (ReportAction.PUBLISH, []),
    "24_unqualified_identity": (ReportAction.PUBLISH, []),
}
#: fixture → (HL7 error code, location)
REJECTIONS = {
    "r01_missing_validator": (ErrorCode.REQUIRED_FIELD_MISSING, "OBR-32"),
    "r02_bad_numeric": (ErrorCode.DATA_TYPE_ERROR, "OBX-5"),
    "r03_obx_without_obr": (ErrorCode.SEGMENT_SEQUENCE_ERROR, "OBX"),
    "r04_empty_final_value": (ErrorCode.REQUIRED_FIELD_MISSING, "OBX-5"),
    "r05_pdf_not_pdf": (ErrorCode.DATA_TYPE_ERROR, "OBX-5.5"),
    "r06_unsupported_value_type": (ErrorCode.TABLE_VALUE_NOT_FOUND, "OBX-2"),
    "r07_missing_status": (ErrorCode.REQUIRED_FIELD_MISSING, "OBR-25"),
    "r08_missing_birth_date": (ErrorCode.REQUIRED_FIELD_MISSING, "PID-7"),
}


def report_of(name: str):
    return build_lab_report(parse_message((ORU / f"{name}.hl7").read_bytes()))


def cda_of(name: str, policy: str = "keep_local") -> tuple[bytes, etree._Element]:
    result = transcode(report_of(name), MAPPING, policy)
    replace = result.report.action is ReportAction.REPLACE
    ctx = make_context(name, 2 if replace else 1, f"{name}.v1" if replace else None)
    cda = build_cr_bio(result.report, ctx)
    return cda, etree.fromstring(cda)


def test_every_fixture_is_either_a_document_or_a_documented_case():
    names = {p.stem for p in ORU.glob("*.hl7")}
    assert names == set(DOCUMENTS) | set(REJECTIONS) | {"09_cancellation", "19_preliminary_only"}
    assert len(DOCUMENTS) >= 20


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_oru_variant_becomes_a_valid_cr_bio(name, validate):
    action, unmapped = DOCUMENTS[name]
    report = report_of(name)
    assert report.action is action
    result = transcode(report, MAPPING, TranscodePolicy.KEEP_LOCAL)
    assert [u.code for u in result.unmapped] == unmapped
    cda, doc = cda_of(name)
    assert validate(cda) == []
    assert doc.find("h:code", NS).get("code") == "11502-2"
    assert doc.find("h:title", NS).text == "Compte rendu d'examens biologiques"
    assert (
        doc.xpath("count(//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.243'])", namespaces=NS)
        == 1
    )
    assert doc.xpath("//h:observationMedia/h:value/@mediaType", namespaces=NS) == [
        "application/pdf"
    ]
    assert (
        doc.xpath(
            "count(//h:observation[h:templateId/@root='1.3.6.1.4.1.19376.1.3.1.6'])", namespaces=NS
        )
        >= 1
    )


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_unbuildable_oru_is_rejected_with_code_and_location(name):
    code, where = REJECTIONS[name]
    with pytest.raises(Hl7Error) as err:
        report_of(name)
    assert err.value.code is code
    assert str(err.value.location) == where


def test_patient_ins_and_ipp_are_in_the_document():
    _cda, doc = cda_of("01_numeric_biochemistry")
    ids = [
        (i.get("root"), i.get("extension"))
        for i in doc.xpath("h:recordTarget/h:patientRole/h:id", namespaces=NS)
    ]
    assert ids == [("1.2.250.1.213.1.4.10", "279035121518989"), ("1.2.250.1.213.4.5.2.4", "IPP101")]


def test_unknown_sex_is_coded_un():
    _cda, doc = cda_of("14_minimal")
    assert doc.xpath("//h:patient/h:administrativeGenderCode/@code", namespaces=NS) == ["UN"]


def test_unqualified_identity_keeps_the_ins_out_of_the_document():
    _cda, doc = cda_of("24_unqualified_identity")
    roots = doc.xpath("h:recordTarget/h:patientRole/h:id/@root", namespaces=NS)
    assert roots == ["1.2.250.1.213.4.5.2.4"]


def test_mapped_results_carry_loinc_and_ucum():
    _cda, doc = cda_of("01_numeric_biochemistry")
    glucose = doc.xpath("//h:observation[h:code/@code='14749-6']", namespaces=NS)[0]
    value = glucose.find("h:value", NS)
    assert (value.get("value"), value.get("unit")) == ("4.89", "mmol/L")
    assert glucose.xpath("h:referenceRange//h:low/@value", namespaces=NS) == ["3.89"]
    creat = doc.xpath("//h:observation[h:code/@code='14682-9']", namespaces=NS)[0]
    assert creat.find("h:interpretationCode", NS).get("code") == "H"


def test_keep_local_sends_the_local_code_as_translation_without_loinc_code():
    _cda, doc = cda_of("11_unmapped_code_keep_local")
    code = doc.xpath("//h:observation[h:code/h:translation/@code='VITD25']/h:code", namespaces=NS)[
        0
    ]
    assert code.get("code") is None
    assert code.find("h:translation", NS).get("codeSystem") == "1.2.250.1.213.4.5.7"


def test_hold_policy_gives_the_hold_reason_naming_the_codes():
    result = transcode(report_of("10_unmapped_code_hold"), MAPPING, "hold")
    assert result.must_hold
    assert result.hold_reason == "unmapped codes VITD25 (25-OH vitamine D), CA (Calcium)"
    assert not transcode(report_of("01_numeric_biochemistry"), MAPPING, "hold").must_hold


def test_correction_is_version_two_replacing_version_one():
    report = report_of("08_correction")
    assert report.action is ReportAction.REPLACE
    ctx = make_context("08_correction", 2, "08_correction.v1")
    doc = etree.fromstring(build_cr_bio(transcode(report, MAPPING, "hold").report, ctx))
    assert doc.find("h:versionNumber", NS).get("value") == "2"
    assert doc.find("h:setId", NS).get("extension") == "08_correction"
    assert doc.xpath(
        "h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id/@extension", namespaces=NS
    ) == ["08_correction.v1"]


def test_cancellation_is_a_withdrawal_not_a_document():
    report = report_of("09_cancellation")
    assert report.action is ReportAction.WITHDRAW
    with pytest.raises(CrBioError):
        build_cr_bio(report, make_context("09"))


def test_preliminary_results_wait_for_validation():
    report = report_of("19_preliminary_only")
    assert report.action is ReportAction.WAIT
    with pytest.raises(CrBioError):
        build_cr_bio(report, make_context("19"))


def test_preliminary_battery_is_left_out_of_a_final_report():
    _cda, doc = cda_of("20_final_and_preliminary")
    assert not doc.xpath("//h:section[h:title='Hémoculture']", namespaces=NS)


def test_deleted_result_is_dropped_and_not_done_result_is_aborted():
    report = report_of("21_deleted_and_not_done")
    assert [o.local_code.code for o in report.observations] == ["GLY", "K"]
    _cda, doc = cda_of("21_deleted_and_not_done")
    status = doc.xpath("//h:observation[h:code/@code='2823-3']/h:statusCode/@code", namespaces=NS)
    assert status == ["aborted"]


def test_microbiology_isolate_and_specimens():
    _cda, doc = cda_of("06_microbiology_two_specimens")
    organism = doc.xpath("//h:specimenPlayingEntity[@classCode='MIC']/h:code/@code", namespaces=NS)
    assert organism == ["112283007"]
    specimen_types = doc.xpath(
        "//h:procedure/h:participant/h:participantRole/h:playingEntity/h:code/@code", namespaces=NS
    )
    assert specimen_types == ["UR", "BLD"]
    amp = doc.xpath("//h:observation[h:code/@code='28-1']/h:value", namespaces=NS)[0]
    assert amp.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "IVL_PQ"
    assert amp.find("h:high", NS).get("inclusive") == "false"


def test_non_ascii_names_survive_both_charsets():
    _cda, latin = cda_of("12_latin1_names")
    _cda, utf8 = cda_of("13_utf8_names")
    assert latin.xpath("//h:patient/h:name/h:family/text()", namespaces=NS) == ["LÉVÊQUE"]
    assert utf8.xpath("//h:patient/h:name/h:family/text()", namespaces=NS) == ["NOËL-MÜLLER"]


def test_lab_pdf_is_embedded_as_sent():
    report = report_of("07_embedded_lab_pdf")
    assert report.lab_pdf and report.lab_pdf.startswith(b"%PDF-")
    _cda, doc = cda_of("07_embedded_lab_pdf")
    import base64

    embedded = base64.b64decode(doc.xpath("//h:observationMedia/h:value/text()", namespaces=NS)[0])
    assert embedded == report.lab_pdf


def test_same_inputs_give_the_same_bytes():
    assert cda_of("06_microbiology_two_specimens")[0] == cda_of("06_microbiology_two_specimens")[0]


def test_mapping_rejects_a_wrong_loinc_check_digit():
    with pytest.raises(MappingError, match="line 2"):
        LoincMapping.from_csv(
            "local_code,loinc_code,display_name,ucum_unit\nGLY,14749-7,Glucose,mmol/L\n"
        )


def test_mapping_rejects_a_code_mapped_twice():
    with pytest.raises(MappingError, match="mapped twice"):
        LoincMapping.from_csv(
            "local_code,loinc_code,display_name,ucum_unit\nGLY,14749-6,G,mmol/L\nGLY,2345-7,G,g/L\n"
        )


def test_rendered_pdf_page_is_not_blank(tmp_path):
    report = transcode(report_of("22_multi_chapter"), MAPPING, "keep_local").report
    pdf = render_lab_report_pdf(report, make_context("22"))
    dark = dark_pixel_ratio(render_first_page(pdf, tmp_path))
    assert 0.01 < dark < 0.5, f"page looks blank or black: {dark:.3f} dark pixels"
