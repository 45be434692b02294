"""RIS ORU / MDM → ImagingReport → CR-IMG: what is read, which level is built, and why.

The full XSD + schematron verdict on every fixture is in tests/integration/test_cr_img.py;
here the CDA is checked against the XSD only (fast) and inspected element by element.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from pfi.transforms.cda.cr_img import CrImgError, CrImgLevel, build_cr_img, cr_img_plan
from pfi.transforms.cda.pdf import render_imaging_report_pdf
from pfi.transforms.hl7 import ErrorCode, Hl7Error, parse_message
from pfi.transforms.imaging import ImagingStatus, SectionKind, build_imaging_report
from pfi.transforms.lab import ReportAction
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.metadata import Author, SubmissionContext, document_entry_from_cda
from tests.support.cda import make_imaging_context
from tests.support.png import dark_pixel_ratio, render_first_page
from tests.support.ris import DOCUMENTS, NOT_DOCUMENTS, REJECTIONS, RIS, ris_cda, ris_report

NS = {"h": "urn:hl7-org:v3", "ps3-20": "urn:dicom-org:ps3-20"}
TRANSMISSION_MDM = Path(__file__).parents[1] / (
    "fixtures/ci-sis/hl7V2-exemples/Vague 2/Trans_Doc-CDA-HL7V2/"
    "TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/MDM/Transmission initiale MDM/"
    "message_MDM_CR_Radio_INIT_N1.er7"
)


def doc_of(name: str) -> etree._Element:
    return etree.fromstring(ris_cda(name))


def test_every_ris_fixture_is_a_document_or_a_documented_case():
    names = {p.stem for p in RIS.glob("*.hl7")}
    assert names == set(DOCUMENTS) | set(NOT_DOCUMENTS) | set(REJECTIONS)
    assert len(DOCUMENTS) >= 8


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_ris_message_gives_the_expected_action_level_and_an_xsd_valid_cr_img(name, validate):
    action, level = DOCUMENTS[name]
    report = ris_report(name)
    assert report.action is action
    assert cr_img_plan(report).level is level
    cda = ris_cda(name)
    assert validate(cda) == []
    doc = etree.fromstring(cda)
    assert doc.find("h:code", NS).get("code") == "18748-4"
    roots = doc.xpath("h:templateId/@root", namespaces=NS)
    if level is CrImgLevel.STRUCTURED:
        assert "1.2.250.1.213.1.1.1.45" in roots
        assert doc.find("h:component/h:structuredBody", NS) is not None
    else:
        assert roots[-1] == "1.3.6.1.4.1.19376.1.2.20"
        assert "1.2.250.1.213.1.1.1.45" not in roots
        text = doc.find("h:component/h:nonXMLBody/h:text", NS)
        assert text.get("mediaType") == "application/pdf"
        assert base64.b64decode(text.text).startswith(b"%PDF-")


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_unbuildable_ris_message_is_rejected_with_code_and_location(name):
    code, where = REJECTIONS[name]
    with pytest.raises(Hl7Error) as err:
        ris_report(name)
    assert err.value.code is code
    assert str(err.value.location) == where


@pytest.mark.parametrize("name", sorted(NOT_DOCUMENTS))
def test_cancellation_or_unvalidated_report_is_no_document(name):
    report = ris_report(name)
    assert report.action is NOT_DOCUMENTS[name]
    with pytest.raises(CrImgError):
        build_cr_img(report, make_imaging_context(name))


def test_cisis_transmission_message_is_not_rebuilt_as_a_ris_report():
    """The official MDM carrying a finished CR d'imagerie is way (a), not a RIS report."""
    with pytest.raises(Hl7Error) as err:
        build_imaging_report(parse_message(TRANSMISSION_MDM.read_bytes()))
    assert err.value.code is ErrorCode.UNSUPPORTED_MESSAGE_TYPE
    assert str(err.value.location) == "MSH-21"
    assert "read_cda_transmission" in err.value.text


def test_exam_identity_codes_and_dicom_study_are_read_from_obr_and_zds():
    report = ris_report("03_oru_dicom_study_uid")
    (exam,) = report.exams
    assert (exam.code.code, exam.code.system) == ("24627-2", "LN")
    assert exam.ccam is not None and exam.ccam.code == "ZBQK002"
    assert (exam.placer_order, exam.filler_order, exam.accession_number) == (
        "CMD1003",
        "EX1003",
        "ACC1003",
    )
    assert (exam.started_at, exam.ended_at) == ("202401151030", "202401151045")
    assert exam.modality is not None and exam.modality.code == "CT"
    assert exam.body_site is not None and (exam.body_site.code, exam.body_site.system) == (
        "302551006",
        "SCT",
    )
    assert exam.study_uid == "1.2.250.1.999.1.20240115.1"
    assert report.radiologist is not None and report.radiologist.family == "BIDEAULT"
    assert report.prescriber is not None and report.prescriber.id_type == "RPPS"
    assert report.validated_at == "202401151120"
    assert report.document_key == "ACC1003"


def test_level_3_header_carries_study_uid_modality_accession_and_the_radiologist():
    doc = doc_of("03_oru_dicom_study_uid")
    event = doc.find("h:documentationOf/h:serviceEvent", NS)
    assert event.find("h:id", NS).get("root") == "1.2.250.1.999.1.20240115.1"
    translations = event.xpath("h:code/h:translation/@code", namespaces=NS)
    assert translations == ["ZBQK002", "CT"]
    order = doc.find("h:inFulfillmentOf/h:order", NS)
    assert order.find("h:id", NS).get("extension") == "CMD1003"
    accession = order.find("ps3-20:accessionNumber", NS)
    assert (accession.get("root"), accession.get("extension")) == ("1.2.250.1.213.4.5.6", "ACC1003")
    author = doc.find("h:author/h:assignedAuthor", NS)
    assert author.find("h:id", NS).get("extension") == "810101234567"
    assert author.find("h:code", NS).get("code") == "G15_10/SM44"
    assert doc.xpath("h:legalAuthenticator/h:assignedEntity/h:id/@extension", namespaces=NS) == [
        "810101234567"
    ]
    procedure = doc.xpath(
        "//h:procedure[h:templateId/@root='1.2.250.1.213.1.1.3.153']", namespaces=NS
    )[0]
    assert procedure.find("h:methodCode", NS).get("code") == "CT"
    assert procedure.find("h:targetSiteCode", NS).get("code") == "302551006"


def test_report_sections_land_in_their_cr_img_sections():
    doc = doc_of("17_addendum_comparison_comments")

    def text_of(template: str) -> str:
        return " ".join(
            doc.xpath(f"//h:section[h:templateId/@root='{template}']/h:text//text()", namespaces=NS)
        )

    assert "Scanner thoracique normal." in text_of("1.2.250.1.213.1.1.2.209")
    assert "Pas de nodule pulmonaire." in text_of("1.2.250.1.213.1.1.2.208")
    assert "stable" in text_of("1.2.250.1.213.1.1.2.207")
    assert "Relecture" in text_of("1.2.250.1.213.1.1.2.210")
    notes = text_of("1.2.250.1.213.1.1.2.73")
    assert "Bilan d'une toux persistante." in notes and "Examen réalisé en urgence." in notes
    assert "sans injection" in text_of("1.2.250.1.213.1.1.2.206")


def test_rad28_obx_give_the_study_its_series_and_one_referenced_instance():
    report = ris_report("04_oru_rad28_series_and_headings")
    (exam,) = report.exams
    assert exam.study_uid == "1.2.250.1.999.1.20240115.1"
    assert [s.uid for s in exam.series] == [
        "1.2.250.1.999.1.20240115.1.1",
        "1.2.250.1.999.1.20240115.1.2",
    ]
    assert [len(s.instances) for s in exam.series] == [1, 0]
    assert exam.modality is not None and exam.modality.code == "CT"
    doc = doc_of("04_oru_rad28_series_and_headings")
    study = doc.xpath("//h:act[h:templateId/@root='1.2.250.1.213.1.1.3.155']", namespaces=NS)
    assert len(study) == 1
    assert study[0].xpath(".//h:act/h:id/@root", namespaces=NS) == ["1.2.250.1.999.1.20240115.1.1"]
    assert study[0].xpath(".//h:observation/h:code/@code", namespaces=NS) == [
        "1.2.840.10008.5.1.4.1.1.2"
    ]
    catalog = " ".join(
        doc.xpath(
            "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.217']/h:text//text()",
            namespaces=NS,
        )
    )
    assert "1.2.250.1.999.1.20240115.1.2" in catalog


def test_headings_written_inside_report_text_become_sections():
    report = ris_report("04_oru_rad28_series_and_headings")
    assert [(s.kind, s.text) for s in report.sections] == [
        (SectionKind.INDICATION, "douleur thoracique."),
        (SectionKind.TECHNIQUE, "acquisition sans injection."),
        (SectionKind.FINDINGS, "Parenchyme pulmonaire normal."),
        (SectionKind.CONCLUSION, "examen normal."),
    ]
    standalone = ris_report("16_local_code_and_hl7_modality")
    assert [(s.kind, s.text) for s in standalone.sections] == [
        (SectionKind.REPORT, "Pas de lésion."),
        (SectionKind.CONCLUSION, "IRM normale."),
    ]


def test_local_exam_code_goes_under_the_ris_code_system_and_hl7_nmr_means_mr():
    report = ris_report("16_local_code_and_hl7_modality")
    (exam,) = report.exams
    assert (exam.modality_as_sent, exam.modality.code if exam.modality else None) == ("NMR", "MR")
    doc = doc_of("16_local_code_and_hl7_modality")
    code = doc.find("h:documentationOf/h:serviceEvent/h:code", NS)
    assert (code.get("code"), code.get("codeSystem")) == ("IRMCER", "1.2.250.1.213.4.5.8")
    assert code.xpath("h:translation/@code", namespaces=NS) == ["ACQN001", "MR"]


def test_mdm_reads_document_numbers_signer_and_signature_time_from_txa():
    report = ris_report("05_mdm_t02")
    assert report.action is ReportAction.PUBLISH
    assert report.document_number == "DOC1005"
    assert report.radiologist is not None and report.radiologist.id_type == "RPPS"
    assert report.validated_at == "202401151120"
    assert [s.kind for s in report.sections] == [
        SectionKind.INDICATION,
        SectionKind.FINDINGS,
        SectionKind.CONCLUSION,
    ]
    replacement = ris_report("12_mdm_t10_replacement")
    assert replacement.action is ReportAction.REPLACE
    assert replacement.status is ImagingStatus.CORRECTED
    assert (replacement.document_number, replacement.parent_document_number) == (
        "DOC1005-2",
        "DOC1005",
    )
    assert replacement.document_key == report.document_key == "ACC1005"


def test_plan_names_everything_the_message_lacks_for_level_3():
    assert cr_img_plan(ris_report("01_oru_text_only")).gaps == (
        "exam 24627-2: no anatomical location (OBX 39111-0^^LN or 123014^^DCM, or OBR-15.4)",
        "exam 24627-2: no DICOM Study Instance UID (ZDS-1, or OBX 110180^^DCM)",
        "no conclusion (OBX 19005-8^^LN or 121076/121077^^DCM, or a 'Conclusion :' heading)",
    )
    assert cr_img_plan(ris_report("18_modality_not_dicom")).gaps == (
        "exam 24627-2: modality 'RAD' is not a DICOM modality of JDV_ModaliteAcquisition_CISIS",
    )
    assert cr_img_plan(ris_report("19_site_not_in_value_set")).gaps == (
        "exam 24627-2: anatomical location '51185008' (SCT) is not a SNOMED CT code of "
        "JDV_LocalisationAnatomique_CISIS",
    )
    assert cr_img_plan(ris_report("03_oru_dicom_study_uid")).explanation == (
        "CR-IMG level 3 (IMG-CR-IMG 2024.01)"
    )


def test_level_1_carries_the_ris_pdf_byte_for_byte():
    report = ris_report("10_oru_with_pdf")
    assert report.pdf is not None and report.pdf.startswith(b"%PDF-")
    body = doc_of("10_oru_with_pdf").find("h:component/h:nonXMLBody/h:text", NS)
    assert base64.b64decode(body.text) == report.pdf


def test_level_3_attaches_the_ris_pdf_as_an_added_document():
    report = ris_report("11_oru_level3_with_pdf")
    doc = doc_of("11_oru_level3_with_pdf")
    media = doc.xpath(
        "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.37']//h:observationMedia/h:value",
        namespaces=NS,
    )
    assert len(media) == 1 and media[0].get("mediaType") == "application/pdf"
    assert base64.b64decode(media[0].text) == report.pdf


def test_correction_is_version_two_replacing_version_one():
    doc = doc_of("06_oru_correction")
    assert doc.find("h:versionNumber", NS).get("value") == "2"
    assert doc.find("h:setId", NS).get("extension") == "06_oru_correction"
    assert doc.xpath(
        "h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id/@extension", namespaces=NS
    ) == ["06_oru_correction.v1"]
    conclusion = doc.xpath(
        "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.209']/h:text//text()", namespaces=NS
    )
    assert "Micronodule lobaire supérieur droit de 4 mm." in conclusion


def test_two_exams_give_two_procedure_sections_and_one_conclusion():
    doc = doc_of("15_two_exams")
    assert len(doc.findall("h:documentationOf", NS)) == 2
    procedures = doc.xpath(
        "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.206']", namespaces=NS
    )
    assert len(procedures) == 2
    conclusion = doc.xpath(
        "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.209']", namespaces=NS
    )
    assert len(conclusion) == 1
    text = conclusion[0].xpath("h:text//text()", namespaces=NS)
    assert "CT Thorax" in text and "CT Abdomen" in text


def test_non_ascii_text_survives_both_charsets():
    latin = doc_of("08_latin1_accents")
    assert latin.xpath("//h:patient/h:name/h:family[@qualifier='BR']/text()", namespaces=NS) == [
        "LÉVÊQUE"
    ]
    findings = latin.xpath(
        "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.208']/h:text//text()", namespaces=NS
    )
    assert "Épanchement pleural gauche de faible abondance." in findings
    report = ris_report("09_utf8_accents")
    assert report.patient.birth_family == "NOËL-MÜLLER"
    assert report.sections[0].text == "Kyste hépatique ≤ 1 cm, aspect bénin."


def test_same_inputs_give_the_same_bytes():
    assert ris_cda("04_oru_rad28_series_and_headings") == ris_cda(
        "04_oru_rad28_series_and_headings"
    )
    assert ris_cda("01_oru_text_only") == ris_cda("01_oru_text_only")


def test_rendered_imaging_report_pdf_is_not_blank(tmp_path):
    report = ris_report("17_addendum_comparison_comments")
    pdf = render_imaging_report_pdf(report, make_imaging_context("17"))
    dark = dark_pixel_ratio(render_first_page(pdf, tmp_path))
    assert 0.01 < dark < 0.5, f"page looks blank or black: {dark:.3f} dark pixels"


@pytest.mark.parametrize(
    ("name", "format_code"),
    [
        ("03_oru_dicom_study_uid", "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013"),
        ("01_oru_text_only", "urn:ihe:iti:xds-sd:pdf:2008"),
    ],
)
def test_built_cr_img_gives_the_dmp_metadata_of_its_level(name, format_code):
    entry = document_entry_from_cda(
        ris_cda(name),
        SubmissionContext(
            submission_time=datetime(2024, 1, 15, 12, 0, tzinfo=UTC),
            source_id="1.2.250.1.999.1.1",
            content_type_code=Code("07", "1.2.250.1.213.2.2"),
            submitter=Author(person="PFI^PFI", institutions=("CHU X",)),
        ),
    )
    assert entry.format_code.code == format_code
    assert entry.type_code.code == "18748-4"
    assert entry.healthcare_facility_type_code.code == "SA01"
    assert entry.legal_authenticator.startswith("810101234567^BIDEAULT^Jacques")
    assert entry.service_start_time == "202401150930"  # 10:30 Paris = 09:30 UTC


def _as_t04(txa19: str = "") -> bytes:
    raw = (RIS / "05_mdm_t02.hl7").read_bytes().replace(b"|MDM^T02^MDM_T02|", b"|MDM^T04^MDM_T02|")
    if txa19:
        segments = raw.split(b"\r")
        for i, seg in enumerate(segments):
            if seg.startswith(b"TXA|"):
                fields = seg.split(b"|")
                fields[19] = txa19.encode()
                segments[i] = b"|".join(fields)
        raw = b"\r".join(segments)
    return raw


def test_mdm_t04_with_an_authenticated_report_is_published_like_t02():
    report = build_imaging_report(parse_message(_as_t04()))
    assert (report.action, report.status) == (ReportAction.PUBLISH, ImagingStatus.FINAL)
    assert report.document_key == "ACC1005"


def test_mdm_t04_whose_document_is_cancelled_in_txa19_is_a_withdrawal():
    report = build_imaging_report(parse_message(_as_t04("CA")))
    assert (report.action, report.status) == (ReportAction.WITHDRAW, ImagingStatus.CANCELLED)
