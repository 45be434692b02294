"""CI-SIS value sets the builders need, loaded once at import from the vendored kit."""

from __future__ import annotations

from importlib import resources

from lxml import etree

_SVS = "{urn:ihe:iti:svs:2008}"
_KIT = resources.files("pfi") / "resources" / "ci-sis" / "TestContenuCDA-3.0"


def _value_set(name: str) -> dict[str, str]:
    data = (_KIT / "jeuxDeValeurs" / name).read_bytes()
    root = etree.fromstring(data)
    return {c.get("code", ""): c.get("displayName", "") for c in root.iter(f"{_SVS}Concept")}


SPECIMEN_TYPES = _value_set("JDV_HL7_SpecimenType_CISIS.xml")
INTERPRETATIONS = _value_set("JDV_HL7_ObservationInterpretation_CISIS.xml")
#: CR-IMG: DICOM acquisition modalities (DCM codes) and SNOMED CT anatomical locations the
#: 2024.01 schematron accepts in the technique entry and the series (no nullFlavor).
ACQUISITION_MODALITIES = _value_set("JDV_ModaliteAcquisition_CISIS.xml")
ANATOMICAL_LOCATIONS = _value_set("JDV_LocalisationAnatomique_CISIS.xml")


def specimen_type_display(code: str) -> str | None:
    """French display of an HL7 table 0487 specimen type, None when not in the value set."""
    return SPECIMEN_TYPES.get(code)


def interpretation_display(flag: str) -> str | None:
    """French display of an abnormal flag (HL7 0078 = v3 ObservationInterpretation)."""
    return INTERPRETATIONS.get(flag)


def modality_display(code: str) -> str | None:
    """French display of a DICOM modality (CT, MR...), None when not in the value set."""
    return ACQUISITION_MODALITIES.get(code)


def anatomical_location_display(code: str) -> str | None:
    """French display of a SNOMED CT anatomical location, None when not in the value set."""
    return ANATOMICAL_LOCATIONS.get(code)


def cda_xsd_path() -> str:
    """Filesystem path of CDA_extended.xsd (lxml resolves its includes next to it)."""
    return str(_KIT / "infrastructure" / "cda" / "CDA_extended.xsd")
