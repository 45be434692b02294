"""Every RIS fixture that is a document gives a CR-IMG the real validator accepts.

The real kit: CDA_extended.xsd, the five CI-SIS profiles, and for level 3 the
CI-SIS_IMG-CR-IMG_2024.01 schematron (Saxon, compiled once for the module). Mutations of a
valid level-3 document prove those rules do run on PFI's documents.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from pfi.transforms.cda.cr_img import CrImgLevel
from pfi.transforms.cda.validation import CdaValidator
from tests.support.ris import DOCUMENTS, ris_cda

NS = {"h": "urn:hl7-org:v3"}
VOLET = "CI-SIS_IMG-CR-IMG_2024.01.sch"
SHARED = Path(__file__).parents[1] / "fixtures/ci-sis"
OFFICIAL_RIS_CR = SHARED / "hl7V2-exemples/Vague 2/RIS/transmission_initiale_cr_imagerie.xml"
KIT_LEVEL_1 = SHARED / "TestContenuCDA-3.0/ExemplesCDA/IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> CdaValidator:
    return CdaValidator(cache_dir=tmp_path_factory.mktemp("cda-xslt-cache"))


@pytest.fixture(scope="module")
def structured() -> bytes:
    return ris_cda("04_oru_rad28_series_and_headings")


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_ris_message_becomes_a_cr_img_without_validation_error(validator, name):
    _action, level = DOCUMENTS[name]
    report = validator.validate(ris_cda(name))
    assert report.errors == (), "\n".join(str(f) for f in report.errors)
    if level is CrImgLevel.STRUCTURED:
        assert report.schematrons[5:] == (VOLET,)
    else:
        assert report.volet == "level-1 (non-structured) document"
        assert len(report.schematrons) == 5


@pytest.mark.parametrize(
    ("mutation", "before", "after", "message"),
    [
        (
            "object catalog removed",
            b'root="1.2.250.1.213.1.1.2.217"',
            b'root="1.2.250.1.213.1.1.2.999"',
            "FR-DICOM-Object-Catalog (1.2.250.1.213.1.1.2.217) doit etre obligatoirement",
        ),
        (
            "conclusion removed",
            b'root="1.2.250.1.213.1.1.2.209"',
            b'root="1.2.250.1.213.1.1.2.998"',
            'La section "FR-DICOM-Conclusion" (1.2.250.1.213.1.1.2.209) doit être présente',
        ),
        (
            "anatomical location outside the value set",
            b'targetSiteCode code="302551006"',
            b'targetSiteCode code="51185008"',
            "JDV_LocalisationAnatomique",
        ),
        (
            "series modality outside the value set",
            b'<value code="CT"',
            b'<value code="ZZ"',
            "JDV_ModaliteAcquisition",
        ),
    ],
)
def test_level_3_rules_do_apply_to_the_built_document(
    validator, structured, mutation, before, after, message
):
    assert before in structured, mutation
    report = validator.validate(structured.replace(before, after, 1))
    messages = [f.message for f in report.errors if f.source in (VOLET, "IHE.sch")]
    assert any(message in m for m in messages), "\n".join(messages)


def test_level_1_declares_what_the_official_ris_and_kit_examples_declare():
    """Same conformance as the CI-SIS RIS example (Vague 2) and the kit's N1 CR-IMG."""
    ours = etree.fromstring(ris_cda("01_oru_text_only"))

    def conformance(doc: etree._Element) -> tuple[list[str], str | None, str | None]:
        body = doc.find("h:component/h:nonXMLBody/h:text", NS)
        return (
            doc.xpath("h:templateId/@root", namespaces=NS),
            doc.find("h:code", NS).get("code"),
            body.get("mediaType") if body is not None else None,
        )

    expected = conformance(etree.parse(str(KIT_LEVEL_1)).getroot())
    assert conformance(ours) == expected
    official = conformance(etree.parse(str(OFFICIAL_RIS_CR)).getroot())
    assert official[0] == expected[0] and official[1] == expected[1]
