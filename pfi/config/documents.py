"""Configuration of the documents stage (`documents:` section of pfi.yaml).

What a CDA header needs that no HL7 message says (the establishment: FINESS, name,
address; the OIDs under which PFI issues document, set and order ids), which sources send
plain results PFI must turn into documents (way b) and how their local codes map to
LOINC, and how strictly documents are validated before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pfi.config.base import Section

OID = Annotated[str, Field(pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$", max_length=64)]

#: The example OID arc the defaults use (the one of the CI-SIS examples' test establishment).
#: A hospital replaces it with its own arc (registered with the ANS / HL7 France).
EXAMPLE_ARC = "1.2.250.1.213.4.5"


class CodedSetting(Section):
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)


class AddressSettings(Section):
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""


class EstablishmentSettings(Section):
    """The custodian of the documents PFI builds: the establishment, by its FINESS."""

    finess: Annotated[str, Field(pattern=r"^[0-9A-Z]{9,10}$")] = "920008059"
    name: str = Field(default="Laboratoire des charmes", min_length=1)
    telecom: str = Field(default="tel:0174589607", description="tel:..., shown in the header")
    address: AddressSettings = AddressSettings(
        street="8 Rue Frédéric Bastia", postal_code="92100", city="BOULOGNE-BILLANCOURT"
    )
    practice_setting: CodedSetting = Field(
        default_factory=lambda: CodedSetting(
            code="ETABLISSEMENT", display="Etablissement de santé"
        ),
        description="cadre d'exercice (JDV_J04, 1.2.250.1.213.1.1.4.9)",
    )


class DocumentOids(Section):
    """Where the ids PFI writes into the CDA come from (the establishment's OID arc)."""

    document_id_root: OID = Field(
        default=f"{EXAMPLE_ARC}.9.1",
        description="root of ClinicalDocument/id of the documents PFI builds",
    )
    set_id_root: OID = Field(
        default=f"{EXAMPLE_ARC}.9.2", description="root of ClinicalDocument/setId"
    )
    patient_id_root: OID = Field(
        default=f"{EXAMPLE_ARC}.2.4",
        description="the IPP domain, for PID-3 identifiers sent without an authority OID",
    )
    order_id_root: OID = Field(
        default=f"{EXAMPLE_ARC}.3", description="root of order (placer/filler) numbers"
    )
    accession_id_root: OID | None = Field(
        default=None,
        description="root of the RIS's accession numbers (CR-IMG inFulfillmentOf); empty "
        "means order_id_root",
    )
    local_codes_root: OID = Field(
        default=f"{EXAMPLE_ARC}.7",
        description="code system of a lab's local test codes when its source names none",
    )
    practitioner_local_root: OID = Field(
        default=f"{EXAMPLE_ARC}.6",
        description="root of practitioner ids that are neither RPPS nor ADELI",
    )


class DocumentSourceSettings(Section):
    """A source whose plain ORU/MDM (no CDA carried) PFI turns into a document itself."""

    document_type: Literal["CR-BIO", "CR-IMG"]
    loinc_mapping: Path | None = Field(
        default=None,
        description="local code → LOINC CSV; empty means <loinc_dir>/<SOURCE>.csv",
    )
    unmapped_policy: Literal["hold", "keep_local"] = Field(
        default="hold",
        description="a result whose local code has no LOINC mapping: hold the document "
        "(reason 'unmapped code X', released after the mapping is fixed) or send it with "
        "the local code only",
    )
    local_code_system_oid: OID | None = Field(
        default=None,
        description="OID of this lab's local code system (default oids.local_codes_root)",
    )
    facility_type: CodedSetting = Field(
        default_factory=lambda: CodedSetting(
            code="SA25", display="Laboratoire de biologie médicale"
        ),
        description="healthcare facility type (JDV_J02, 1.2.250.1.71.4.2.4)",
    )


def _default_sources() -> dict[str, DocumentSourceSettings]:
    return {
        "SGL": DocumentSourceSettings(document_type="CR-BIO"),
        "RIS": DocumentSourceSettings(
            document_type="CR-IMG",
            facility_type=CodedSetting(code="SA07", display="Cabinet de radiologie"),
        ),
    }


class DocumentsSettings(Section):
    """The documents stage: building, validating and versioning CDA documents."""

    establishment: EstablishmentSettings = EstablishmentSettings()
    oids: DocumentOids = DocumentOids()
    sources: dict[str, DocumentSourceSettings] = Field(default_factory=_default_sources)
    loinc_dir: Path = Field(
        default=Path("config/loinc"), description="where <SOURCE>.csv mappings are found"
    )
    schematron: Literal["required", "off"] = Field(
        default="required",
        description="required: XSD + CI-SIS schematrons must pass before a document is "
        "sent; off: the XSD only (the schematron rules are not checked at all)",
    )
    validation_processes: Annotated[int, Field(ge=0, le=16)] = Field(
        default=1,
        description="processes that build and validate documents off the workers' "
        "interpreter (each holds ~1.2 GB with the schematrons); 0 = in the stage's thread",
    )
    validation_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=120.0, description="one document's build + validation, once the pool is up"
    )
    validation_cache_dir: Path | None = Field(
        default=None,
        description="generated XSLT of the schematrons; empty: <data_dir>/cache/cda-validation",
    )

    @model_validator(mode="after")
    def _mappings_only_for_labs(self) -> DocumentsSettings:
        for name, source in self.sources.items():
            if source.document_type != "CR-BIO" and "loinc_mapping" in source.model_fields_set:
                raise ValueError(f"sources.{name}: loinc_mapping only applies to CR-BIO sources")
        return self

    def mapping_path(self, source: str) -> Path:
        configured = self.sources[source].loinc_mapping
        return configured if configured is not None else self.loinc_dir / f"{source}.csv"

    def for_sources(self, configured: set[str]) -> DocumentsSettings:
        """Fitted to the configured sources: built-in defaults for absent sources are
        dropped, sources the file names explicitly must exist (ValueError otherwise)."""
        fitted = self
        if "sources" not in self.model_fields_set:
            kept = {k: v for k, v in self.sources.items() if k in configured}
            if kept.keys() != self.sources.keys():
                fitted = self.model_copy(update={"sources": kept})
        unknown = sorted(set(fitted.sources) - configured)
        if unknown:
            raise ValueError(
                f"documents names source(s) {', '.join(unknown)} that are not under sources: "
                f"(configured: {', '.join(sorted(configured)) or 'none'})"
            )
        return fitted
