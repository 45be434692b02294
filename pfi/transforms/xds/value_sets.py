"""The value sets XDS metadata is checked against, loaded once from package resources.

Official SVS files of the CI-SIS kit (JDV_J01/J02/J04/J07/J08, vendored under
`pfi/resources/ci-sis/`) plus the DERIVED NOS excerpts that the kit does not carry
(`pfi/resources/xds/`): formatCode (ASS_A11/A12), classCode (ASS_X04, TRE_A03) and the
submission set contentTypeCode (TRE_R209).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from lxml import etree

from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.errors import XdsValueSetError

_SVS = "urn:ihe:iti:svs:2008"
_JDV_DIR = ("ci-sis", "TestContenuCDA-3.0", "jeuxDeValeurs")


def _resource(*parts: str) -> bytes:
    node = resources.files("pfi.resources")
    for part in parts:
        node = node.joinpath(part)
    return node.read_bytes()


@dataclass(frozen=True)
class ValueSet:
    """A named set of (code, codeSystem) pairs with their display names."""

    name: str
    oid: str
    concepts: dict[tuple[str, str], str]

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self.concepts

    def require(self, attribute: str, code: str, code_system: str) -> Code:
        """The code with its official display name, or an error naming the value set."""
        display = self.concepts.get((code, code_system))
        if display is None:
            label = f"{self.name} ({self.oid})" if self.oid else self.name
            raise XdsValueSetError(attribute, code, code_system, label)
        return Code(code, code_system, display)

    @property
    def systems(self) -> frozenset[str]:
        return frozenset(system for _, system in self.concepts)


def _load_svs(filename: str) -> ValueSet:
    root = etree.fromstring(_resource(*_JDV_DIR, filename))
    vs = root.find(f"{{{_SVS}}}ValueSet")
    if vs is None:
        raise RuntimeError(f"{filename}: no svs:ValueSet element")
    concepts = {
        (c.get("code", ""), c.get("codeSystem", "")): c.get("displayName", "")
        for c in vs.iter(f"{{{_SVS}}}Concept")
    }
    name = filename.removesuffix(".xml")
    return ValueSet(name=name, oid=vs.get("id", ""), concepts=concepts)


@cache
def author_specialty() -> ValueSet:
    return _load_svs("JDV_J01_XdsAuthorSpecialty_CISIS.xml")


@cache
def healthcare_facility_type() -> ValueSet:
    return _load_svs("JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml")


@cache
def practice_setting() -> ValueSet:
    return _load_svs("JDV_J04_XdsPracticeSettingCode_CISIS.xml")


@cache
def type_code() -> ValueSet:
    return _load_svs("JDV_J07_XdsTypeCode_CISIS.xml")


@cache
def confidentiality() -> ValueSet:
    return _load_svs("JDV_J08_XdsConfidentialityCode_CISIS.xml")


@cache
def _derived() -> dict[str, object]:
    return json.loads(_resource("xds", "DERIVED-nos-excerpts.json"))


def _derived_table(key: str, name: str) -> ValueSet:
    table = _derived()[key]
    assert isinstance(table, dict)
    oid = str(table["oid"])
    concepts = {(code, oid): str(display) for code, display in dict(table["concepts"]).items()}
    return ValueSet(name=name, oid=oid, concepts=concepts)


@cache
def class_code() -> ValueSet:
    """TRE_A03 classes plus the DSG signature class (JDV_J57 draws on both)."""
    a03 = _derived_table("TRE_A03_ClasseDocument", "TRE_A03_ClasseDocument")
    urn = _derived_table("TRE_A10_NomenclatureURN", "TRE_A10_NomenclatureURN")
    return ValueSet(
        name="JDV_J57_ClassCode_DMP (DERIVED: TRE_A03 + TRE_A10 excerpt)",
        oid="",
        concepts={**a03.concepts, **urn.concepts},
    )


@cache
def class_code_by_type() -> dict[tuple[str, str], Code]:
    """ASS_X04 excerpt: (typeCode, typeCodeSystem) -> classCode."""
    classes = class_code()
    out: dict[tuple[str, str], Code] = {}
    rows = _derived()["ASS_X04_CorrespondanceType_Classe_excerpt"]
    assert isinstance(rows, list)
    for row in rows:
        out[(row["typeCode"], row["typeCodeSystem"])] = classes.require(
            "classCode", row["classCode"], row["classCodeSystem"]
        )
    return out


@cache
def content_type_code() -> ValueSet:
    """TRE_R209 activity types, TRE_R02 sectors and TRE_A00 producers (JDV_J59 draws on them)."""
    r209 = _derived_table("TRE_R209_TypeActivite", "TRE_R209_TypeActivite")
    return ValueSet(
        name="JDV_J59_ContentTypeCode_DMP (DERIVED: TRE_R209 + JDV_J02)",
        oid="",
        concepts={**r209.concepts, **healthcare_facility_type().concepts},
    )


@dataclass(frozen=True)
class FormatCodeTable:
    """ASS_A11 (templateId -> formatCode) and ASS_12 (nonXMLBody mediaType -> formatCode)."""

    by_template: dict[str, Code]
    by_media_type: dict[str, Code]

    @property
    def codes(self) -> frozenset[Code]:
        return frozenset(self.by_template.values()) | frozenset(self.by_media_type.values())


@cache
def format_codes() -> FormatCodeTable:
    text = _resource("ci-sis", "NOS-extracts", "ASS_A11-and-ASS_12-formatCode-excerpt.csv")
    lines = [ln for ln in text.decode("utf-8").splitlines() if ln and not ln.startswith("#")]
    by_template: dict[str, Code] = {}
    by_media: dict[str, Code] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        code = Code(row["formatCode"], row["formatCode_codeSystem"], row["label"])
        if row["source_kind"] == "templateId":
            by_template[row["source_value"]] = code
        else:
            by_media[row["source_value"]] = code
    return FormatCodeTable(by_template, by_media)
