"""The `documents:` section: defaults that run out of the box, errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfi.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pfi.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_configuration_builds_cr_bio_for_sgl_with_its_mapping() -> None:
    settings = load_settings(REPO / "config/pfi.yaml", environ={})
    docs = settings.documents
    assert docs.sources["SGL"].document_type == "CR-BIO"
    assert docs.sources["SGL"].unmapped_policy == "hold"
    assert docs.mapping_path("SGL") == Path("config/loinc/SGL.csv")
    assert docs.schematron == "required"
    assert docs.establishment.finess


def test_default_document_sources_follow_the_configured_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n  LABO:\n    port: 3001\n    allowed_message_types: [ORU^R01]\n",
    )
    assert load_settings(path, environ={}).documents.sources == {}


def test_documents_naming_an_unknown_source_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "documents:\n  sources:\n    LIMS:\n      document_type: CR-BIO\n")
    with pytest.raises(ConfigError, match=r"documents names source\(s\) LIMS"):
        load_settings(path, environ={})


def test_schematron_mode_and_policy_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "documents:\n  schematron: sometimes\n  sources:\n    SGL:\n"
        "      document_type: CR-BIO\n      unmapped_policy: drop\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    text = str(err.value)
    assert "documents.schematron" in text and "documents.sources.SGL.unmapped_policy" in text


def test_loinc_mapping_on_an_imaging_source_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "documents:\n  sources:\n    RIS:\n      document_type: CR-IMG\n"
        "      loinc_mapping: config/loinc/RIS.csv\n",
    )
    with pytest.raises(ConfigError, match="loinc_mapping only applies to CR-BIO"):
        load_settings(path, environ={})


def test_oids_must_be_oids(tmp_path: Path) -> None:
    path = write(tmp_path, "documents:\n  oids:\n    set_id_root: my-hospital\n")
    with pytest.raises(ConfigError, match=r"documents\.oids\.set_id_root"):
        load_settings(path, environ={})
