"""Where the vendored ANS validation kit lives, and the data files its schematrons read.

The kit (TestContenuCDA-3.0) is copied under `pfi/resources/ci-sis/` keeping its paths
(see `pfi/resources/ci-sis/SOURCES.md`). Its schematrons read value sets with
`document()`/`doc()` at run time, relative to where the schematron sits. PFI instead
loads every such data file once, at construction, and gives them to the compiled
schematrons under a stable virtual URI (`ci-sis:/TestContenuCDA-3.0/<path in kit>`), so
that validating a document does no file I/O and the compiled XSLT does not depend on
where the package is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pfi

RESOURCES_DIR = Path(pfi.__file__).resolve().parent / "resources"
CI_SIS_DIR = RESOURCES_DIR / "ci-sis"
KIT_NAME = "TestContenuCDA-3.0"
KIT_DIR = CI_SIS_DIR / KIT_NAME
SCHEMATRONS_DIR = KIT_DIR / "schematrons"
CDA_XSD = KIT_DIR / "infrastructure" / "cda" / "CDA_extended.xsd"
TERMINOLOGY_DIR = SCHEMATRONS_DIR / "profils" / "terminologies" / "terminologie"
TERMINOLOGY_INDEX = TERMINOLOGY_DIR / "Terminologies.txt"
SCHXSLT_DIR = RESOURCES_DIR / "schxslt"

VIRTUAL_ROOT = f"ci-sis:/{KIT_NAME}/"
"""Base of the URIs under which the kit's data files are handed to the schematrons."""

# Data files the schematrons read: SVS value sets, ART-DECOR vocabularies, terminologies.
_DATA_GLOBS = (
    "jeuxDeValeurs/*.xml",
    "schematrons/**/include/voc-*.xml",
    "schematrons/profils/terminologies/terminologie/*.xml",
    "schematrons/profils/terminologies/terminologie/*.rdf",
)


def virtual_uri(path_in_kit: str) -> str:
    """The URI under which the schematrons see the kit file `path_in_kit`."""
    return VIRTUAL_ROOT + path_in_kit


def path_in_kit(uri: str) -> str:
    """Inverse of `virtual_uri`: `ci-sis:/TestContenuCDA-3.0/a/b.xml` -> `a/b.xml`."""
    return uri[len(VIRTUAL_ROOT) :] if uri.startswith(VIRTUAL_ROOT) else uri


@dataclass(frozen=True, slots=True)
class KitDataFile:
    """One data file of the kit, read into memory."""

    path_in_kit: str
    content: bytes

    @property
    def uri(self) -> str:
        return virtual_uri(self.path_in_kit)


def read_kit_data_files(kit_dir: Path = KIT_DIR) -> list[KitDataFile]:
    """Read every value set / vocabulary / terminology file of the vendored kit."""
    found: dict[str, KitDataFile] = {}
    for pattern in _DATA_GLOBS:
        for path in sorted(kit_dir.glob(pattern)):
            rel = path.relative_to(kit_dir).as_posix()
            found[rel] = KitDataFile(rel, path.read_bytes())
    return list(found.values())
