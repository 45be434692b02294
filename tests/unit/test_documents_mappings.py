"""Each lab's LOINC mapping: loaded once, reloaded when fixed, never lost to a bad edit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pfi.documents.mappings import LoincMappings, MappingFileError
from tests.support.documents import SGL_MAPPING


def test_missing_file_means_every_code_unmapped(tmp_path: Path) -> None:
    mappings = LoincMappings({"SGL": tmp_path / "absent.csv"})
    mappings.check_all()
    assert len(mappings.get("SGL")) == 0
    assert len(mappings.get("OTHER")) == 0


def test_broken_file_at_start_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "SGL.csv"
    path.write_text("local_code,loinc_code,display_name,ucum_unit\nGLY,1234-5,Glucose,g/L\n")
    with pytest.raises(MappingFileError, match=r"SGL\.csv: line 2: '1234-5' is not a LOINC"):
        LoincMappings({"SGL": path}).check_all()


def test_fixed_file_is_reloaded_and_a_broken_edit_keeps_the_previous_mapping(
    tmp_path: Path,
) -> None:
    path = tmp_path / "SGL.csv"
    shutil.copy(SGL_MAPPING, path)
    mappings = LoincMappings({"SGL": path})
    mappings.check_all()
    assert mappings.get("SGL").get("VITD25") is None
    with path.open("a", encoding="utf-8") as f:
        f.write("VITD25,62292-8,25-Hydroxyvitamine D2+D3 [Masse/Volume] Sérum/Plasma,ng/mL\n")
    entry = mappings.get("SGL").get("VITD25")
    assert entry is not None and entry.loinc_code == "62292-8"
    before = len(mappings.get("SGL"))
    with path.open("a", encoding="utf-8") as f:
        f.write("BAD,not-loinc,x,y\n")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 1))
    assert len(mappings.get("SGL")) == before
