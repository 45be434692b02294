"""Copy the part of the ANS CDA validation kit that PFI's CDA validator needs.

Developer-time tool, never run by the engine: it reads the shared copy of the kit
(`../shared/ci-sis/TestContenuCDA-3.0`) and copies, keeping paths, into
`pfi/resources/ci-sis/TestContenuCDA-3.0/`:

- the CDA XSD and every schema it includes/imports;
- the schematrons PFI applies and the transitive closure of their `<include>`s;
- every value-set / vocabulary file those schematrons name in a string literal
  (`document()`/`doc()` arguments and `let` values), when the kit has it;
- the UCUM terminology file and the terminology index the terminology schematron reads.

It also copies the official examples to `tests/fixtures/ci-sis/...`.

Run: `.venv/bin/python scripts/vendor_cda_validation_kit.py [SHARED_CI_SIS_DIR]`.
It prints what it copied and what the schematrons name but the kit lacks.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parent.parent
KIT = "TestContenuCDA-3.0"
SCH_NS = "http://purl.oclc.org/dsdl/schematron"
XS_NS = "http://www.w3.org/2001/XMLSchema"

# The schematrons PFI applies (see pfi/transforms/cda/volets.py). CI-SIS_BIO-CR-BIO_2023.01
# is left out: its includes are empty files in the kit (see SOURCES.md).
MAIN_SCHEMATRONS = [
    "schematrons/profils/IHE.sch",
    "schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch",
    "schematrons/profils/CI-SIS_ModelesDeContenusCDA.sch",
    "schematrons/profils/CI-SIS_Modeles_ANS.sch",
    "schematrons/profils/terminologies/schematron/terminologie.sch",
    "schematrons/CI-SIS_BIO-CR-BIO_2024.01.sch",
    "schematrons/CI-SIS_BIO-CR-BIO_2021.01.sch",
    "schematrons/CI-SIS_IMG-CR-IMG_2024.01.sch",
]
EXTRA_FILES = [
    "infrastructure/cda/CDA_extended.xsd",
    "schematrons/profils/terminologies/terminologie/Terminologies.txt",
    "schematrons/profils/terminologies/terminologie/2.16.840.1.113883.6.8.xml",
]
# Includes whose case differs from the file on disk (the kit is maintained on a
# case-insensitive file system): (name the schematron uses, name in the kit).
CASE_FIXES = {
    "schematrons/include/entrees/E_directiveAnticipee_int.sch": (
        "schematrons/include/entrees/E_directiveanticipee_int.sch"
    ),
}
LITERAL_FILE = re.compile(r"'([^'\s]+\.(?:xml|rdf))'")


def xsd_closure(kit: Path, start: str) -> set[str]:
    """Every schema file reachable from `start` through xs:include/xs:import."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        path = kit / rel
        tree = etree.parse(str(path))
        for el in tree.iter(f"{{{XS_NS}}}include", f"{{{XS_NS}}}import"):
            loc = el.get("schemaLocation")
            if loc:
                todo.append(_rel(kit, path.parent / loc))
    return seen


def schematron_closure(kit: Path, start: str) -> tuple[set[str], set[str], set[str]]:
    """(schematron files, referenced data files present, referenced files absent)."""
    files: set[str] = set()
    data: set[str] = set()
    absent: set[str] = set()
    todo = [start]
    while todo:
        rel = todo.pop()
        if rel in files:
            continue
        path = kit / CASE_FIXES.get(rel, rel)
        if not path.is_file():
            raise SystemExit(f"{start}: include {rel} not found in the kit")
        files.add(rel)
        tree = etree.parse(str(path))
        for el in tree.iter(f"{{{SCH_NS}}}include"):
            todo.append(_rel(kit, (kit / rel).parent / el.get("href", "")))
    # Literal file names are resolved against the main schematron: that is the base
    # URI of the compiled XSLT, against which document()/doc() resolve.
    base = (kit / start).parent
    for rel in files:
        text = (kit / CASE_FIXES.get(rel, rel)).read_text(encoding="utf-8")
        text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
        for literal in LITERAL_FILE.findall(text):
            target = _rel(kit, base / literal)
            (data if (kit / target).is_file() else absent).add(target)
    return files, data, absent


def _rel(kit: Path, path: Path) -> str:
    return Path(*_normalise(path.relative_to(kit).parts)).as_posix()


def _normalise(parts: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part != ".":
            out.append(part)
    return out


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent.parent / "shared" / "ci-sis"
    kit = shared / KIT
    dest = REPO / "pfi" / "resources" / "ci-sis" / KIT
    copied: set[str] = set(EXTRA_FILES)
    copied |= xsd_closure(kit, "infrastructure/cda/CDA_extended.xsd")
    absent_all: set[str] = set()
    for main_sch in MAIN_SCHEMATRONS:
        files, data, absent = schematron_closure(kit, main_sch)
        copied |= files | data
        absent_all |= absent
    for rel in sorted(copied):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kit / CASE_FIXES.get(rel, rel), target)
    examples = REPO / "tests" / "fixtures" / "ci-sis" / KIT / "ExemplesCDA"
    examples.mkdir(parents=True, exist_ok=True)
    for example in sorted((kit / "ExemplesCDA").glob("*.xml")):
        shutil.copyfile(example, examples / example.name)
    print(f"copied {len(copied)} files to {dest}")
    for rel in sorted(absent_all):
        print(f"named by a schematron but absent from the kit: {rel}")


if __name__ == "__main__":
    main()
