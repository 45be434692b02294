"""The templateId -> volet schematron table."""

from __future__ import annotations

from pfi.transforms.cda.volets import VoletStatus, choose_volet

HEADER = [("2.16.840.1.113883.2.8.2.1", None), ("1.2.250.1.213.1.1.1.1", None)]
CR_BIO = "1.2.250.1.213.1.1.1.55"
CR_IMG = "1.2.250.1.213.1.1.1.45"


def test_cr_bio_2024_gets_its_schematron() -> None:
    choice = choose_volet([*HEADER, ("1.3.6.1.4.1.19376.1.3.3", None), (CR_BIO, "2024.01")])
    assert choice.status is VoletStatus.APPLIED
    assert choice.schematron == "schematrons/CI-SIS_BIO-CR-BIO_2024.01.sch"


def test_cr_bio_2021_gets_its_schematron() -> None:
    assert (
        choose_volet([(CR_BIO, "2021.01")]).schematron
        == "schematrons/CI-SIS_BIO-CR-BIO_2021.01.sch"
    )


def test_cr_img_2024_gets_its_schematron() -> None:
    assert choose_volet([*HEADER, (CR_IMG, "2024.01")]).schematron == (
        "schematrons/CI-SIS_IMG-CR-IMG_2024.01.sch"
    )


def test_volet_template_id_without_version_assumes_the_current_one_and_says_so() -> None:
    choice = choose_volet([*HEADER, (CR_BIO, None)])
    assert choice.schematron == "schematrons/CI-SIS_BIO-CR-BIO_2024.01.sch"
    assert "no extension: version assumed" in choice.explanation


def test_cr_bio_2023_is_known_but_its_rules_are_not_in_the_kit() -> None:
    choice = choose_volet([(CR_BIO, "2023.01")])
    assert choice.status is VoletStatus.UNAVAILABLE
    assert choice.schematron is None
    assert "empty in the kit" in choice.explanation


def test_unknown_version_of_a_known_volet_runs_no_volet_rules() -> None:
    choice = choose_volet([(CR_BIO, "2030.01")])
    assert choice.status is VoletStatus.UNKNOWN
    assert choice.schematron is None
    assert "2024.01" in choice.explanation


def test_level_1_document_runs_no_volet_rules() -> None:
    choice = choose_volet([*HEADER, ("1.3.6.1.4.1.19376.1.2.20", None)])
    assert choice.status is VoletStatus.LEVEL_1
    assert choice.schematron is None


def test_document_of_another_volet_is_unknown_and_lists_its_template_ids() -> None:
    choice = choose_volet([*HEADER, ("1.2.250.1.213.1.1.1.13", None)])
    assert choice.status is VoletStatus.UNKNOWN
    assert "1.2.250.1.213.1.1.1.13" in choice.explanation
