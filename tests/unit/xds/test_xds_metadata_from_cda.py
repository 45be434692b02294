"""CDA → XDS metadata on the official CI-SIS examples, as mapping.md says."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from lxml import etree

from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.errors import XdsMetadataError, XdsValueSetError
from pfi.transforms.xds.metadata import (
    Author,
    MaskingFlags,
    SubmissionContext,
    document_entry_from_cda,
    parse_submit_objects,
    render_submit_objects,
    submission_set_for,
    submit_objects_xml,
)
from tests.support.dmp_fixtures import CR_BIO, CR_BIO_N1, CR_IMG, CR_IMG_N1, DOC_N1

LOINC = "2.16.840.1.113883.6.1"
CLASS = "1.2.250.1.213.1.1.4.1"


def context(**kw: object) -> SubmissionContext:
    values: dict[str, object] = {
        "submission_time": datetime(2026, 11, 25, 8, 30, tzinfo=UTC),
        "source_id": "1.2.250.1.999.1.1",
        "content_type_code": Code("07", "1.2.250.1.213.2.2"),
        "submitter": Author(person="PFI^PFI", institutions=("CH de test",)),
    }
    values.update(kw)
    return SubmissionContext(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("example", "type_code", "format_code", "facility", "practice"),
    [
        (CR_BIO, "11502-2", "urn:ihe:lab:xd-lab:2008", "SA25", "AMBULATOIRE"),
        (
            CR_IMG,
            "18748-4",
            "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
            "SA08",
            "AMBULATOIRE",
        ),
        (CR_IMG_N1, "18748-4", "urn:ihe:iti:xds-sd:pdf:2008", "SA08", "AMBULATOIRE"),
        (CR_BIO_N1, "11502-2", "urn:ihe:iti:xds-sd:pdf:2008", "SA25", "AMBULATOIRE"),
        (DOC_N1, "11502-2", "urn:ihe:iti:xds-sd:pdf:2008", "SA07", "AMBULATOIRE"),
    ],
    ids=lambda p: getattr(p, "stem", None),
)
def test_official_examples_map_to_the_expected_codes(
    example, type_code, format_code, facility, practice
) -> None:
    entry = document_entry_from_cda(example.read_bytes(), context())

    assert entry.class_code == Code("10", CLASS, "Compte rendu")
    assert (entry.type_code.code, entry.type_code.scheme) == (type_code, LOINC)
    assert entry.format_code.code == format_code
    assert entry.format_code.scheme == "1.3.6.1.4.1.19376.1.2.3"
    assert (
        entry.healthcare_facility_type_code.code,
        entry.healthcare_facility_type_code.scheme,
    ) == (
        facility,
        "1.2.250.1.71.4.2.4",
    )
    assert (entry.practice_setting_code.code, entry.practice_setting_code.scheme) == (
        practice,
        "1.2.250.1.213.1.1.4.9",
    )
    assert [c.code for c in entry.confidentiality_codes] == ["N"]
    assert entry.patient_id == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert entry.mime_type == "text/xml" and entry.language_code == "fr-FR"


def test_cr_bio_header_fields_follow_mapping_md() -> None:
    cda = CR_BIO.read_bytes()
    entry = document_entry_from_cda(cda, context())

    assert entry.unique_id == "1.2.250.1.213.1.1.1.55.2024.9.1"
    assert entry.hash == hashlib.sha1(cda).hexdigest() and entry.size == len(cda)
    assert entry.source_patient_id == "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI"
    # 20210401171000+0100 → UTC
    assert entry.creation_time == "20210401161000"
    assert entry.service_start_time == "20210104082200"
    assert entry.service_stop_time == "20210104150500"
    assert entry.title == "Compte rendu d'examens biologiques"
    assert entry.legal_authenticator == (
        "801234534765^CAMPARINI^Marcel^^^M^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    )
    (author,) = entry.authors
    assert author.institutions == (
        "Laboratoire des charmes^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1120459876",
    )
    assert author.specialties == (
        "G15_10/SM03^Médecin - Biologie médicale (SM)^1.2.250.1.213.1.1.4.5",
    )
    assert entry.source_patient_info == (
        "PID-5|PAT-TROIS^DOMINIQUE^^^^^L",
        "PID-7|19790328",
        "PID-8|F",
    )
    assert entry.reference_ids == (
        "2014123456789^^^&1.2.250.1.213.1.1.9&ISO^urn:ihe:iti:xds:2013:order",
    )


def test_masking_flags_become_extra_confidentiality_codes() -> None:
    masking = MaskingFlags.from_hl7(
        {
            "MASQUE_PS": "Y",
            "INVISIBLE_PATIENT": "N",
            "INVISIBLE_REP_LEGAUX": "Y",
            "CONNEXION_SECRETE": "Y",
        }
    )
    entry = document_entry_from_cda(CR_IMG.read_bytes(), context(masking=masking))

    assert [(c.code, c.scheme) for c in entry.confidentiality_codes] == [
        ("N", "2.16.840.1.113883.5.25"),
        ("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
        ("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13"),
    ]
    assert entry.masking == MaskingFlags(masque_ps=True, invisible_representants_legaux=True)
    assert (
        entry.with_masking(MaskingFlags()).confidentiality_codes == entry.confidentiality_codes[:1]
    )


def test_hl7_masking_value_other_than_y_or_n_is_an_error() -> None:
    with pytest.raises(ValueError, match="MASQUE_PS: expected Y or N"):
        MaskingFlags.from_hl7({"MASQUE_PS": "oui"})


def test_type_code_outside_jdv_j07_names_field_code_and_value_set() -> None:
    cda = CR_BIO.read_bytes().replace(b'code="11502-2"', b'code="99999-9"', 1)

    with pytest.raises(XdsValueSetError) as err:
        document_entry_from_cda(cda, context())

    assert err.value.attribute == "typeCode"
    assert "'99999-9'" in str(err.value) and "JDV_J07_XdsTypeCode_CISIS" in str(err.value)


def test_facility_code_outside_jdv_j02_is_refused() -> None:
    cda = CR_BIO.read_bytes().replace(b'code="SA25"', b'code="SA99"', 1)

    with pytest.raises(XdsValueSetError, match=r"healthcareFacilityTypeCode: code 'SA99'.*JDV_J02"):
        document_entry_from_cda(cda, context())


def test_cda_without_ins_is_refused_naming_patient_id() -> None:
    cda = CR_BIO.read_bytes().replace(b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4.5"', 1)

    with pytest.raises(XdsMetadataError, match=r"^patientId: no INS"):
        document_entry_from_cda(cda, context())


def test_not_a_cda_is_refused() -> None:
    with pytest.raises(XdsMetadataError, match="not a CDA R2 document"):
        document_entry_from_cda(b"<html/>", context())
    with pytest.raises(XdsMetadataError, match="not well-formed"):
        document_entry_from_cda(b"<ClinicalDocument", context())


def test_ebrim_rendering_round_trips_and_uses_the_ihe_schemes() -> None:
    ctx = context(masking=MaskingFlags(invisible_patient=True))
    entry = document_entry_from_cda(CR_BIO.read_bytes(), ctx)
    ss = submission_set_for(entry, ctx)

    xml = submit_objects_xml(ss, [entry])
    parsed = parse_submit_objects(etree.fromstring(xml))

    assert parsed.entries == (entry,)
    assert parsed.submission_sets == (ss,)
    (assoc,) = parsed.associations
    assert assoc.association_type == "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    assert assoc.slot("SubmissionSetStatus") == ("Original",)
    root = render_submit_objects(ss, [entry])
    schemes = {c.get("classificationScheme") for c in root.iter("{*}Classification")}
    assert "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a" in schemes  # classCode
    assert "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f" in schemes  # confidentialityCode
    assert ss.content_type_code.display == "Consultation Soins Externes"


def test_document_entry_json_round_trip_for_the_ledger() -> None:
    entry = document_entry_from_cda(CR_IMG.read_bytes(), context())
    assert type(entry).from_json(entry.to_json()) == entry
