"""Configuration of the DMP destination (`dmp:` section of pfi.yaml).

Endpoints, mutual TLS, the establishment's seal certificate that signs the VIHF and the
submission sets, timeouts, and who the PFI says it is in the VIHF and the submission set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Seconds = Annotated[float, Field(gt=0, le=600)]
OID = Annotated[str, Field(pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DmpCodeSettings(_Section):
    code: str = Field(min_length=1)
    code_system: str = Field(min_length=1)
    display: str = ""


class DmpIdentitySettings(_Section):
    """What the VIHF and the submission set say about the sender (mapping.md « VIHF »)."""

    structure_id: str = Field(
        min_length=1, description="Identifiant_Structure: Struct_IdNat of the establishment"
    )
    structure_name: str = Field(min_length=1, description="authorInstitution name (XON)")
    structure_finess: str = Field(default="", description="authorInstitution id (IDNST)")
    secteur_activite: str = Field(
        default="SA01", pattern=r"^SA[0-9]{2}$", description="JDV_J61 code, e.g. SA01"
    )
    subject_name_id: str = Field(
        min_length=1, description="Subject/NameID: person responsible for the automated flow"
    )
    subject_name: str = Field(
        default="PFI, moteur d'intégration", description="subject-id: software and model name"
    )
    roles: list[DmpCodeSettings] = Field(
        default_factory=lambda: [
            DmpCodeSettings(
                code="AUTOMATE", code_system="1.2.250.1.213.1.1.4.6", display="AUTOMATE"
            )
        ],
        min_length=1,
    )
    authn_context: str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
    vihf_version: str = "4.0"
    lps_name: str = "PFI"
    lps_version: str = Field(default="0.1.0", min_length=1)
    lps_id: str = ""
    lps_homologation_dmp: str = ""
    source_id: OID = Field(description="XDSSubmissionSet.sourceId: OID of this PFI instance")
    content_type: DmpCodeSettings = Field(
        default_factory=lambda: DmpCodeSettings(
            code="07", code_system="1.2.250.1.213.2.2", display="Consultation Soins Externes"
        ),
        description="default contentTypeCode when the message gives no PV1-2 (TRE_R209)",
    )


class DmpSettings(_Section):
    """The DMP destination: where, how to authenticate, how long to wait."""

    url: str = Field(
        default="http://127.0.0.1:8090",
        description="base URL of the DMP web services; the simulator's by default",
    )
    repository_path: str = "repository"
    registry_path: str = "registry"
    tls_certfile: Path | None = Field(default=None, description="client certificate (PEM)")
    tls_keyfile: Path | None = None
    tls_cafile: Path | None = Field(default=None, description="CA bundle to trust the DMP")
    signing_certfile: Path = Field(description="seal certificate signing VIHF and XAdES (PEM)")
    signing_keyfile: Path
    signing_key_password: str | None = None
    sign_submission_sets: bool = True
    connect_timeout_s: Seconds = 5.0
    read_timeout_s: Seconds = 30.0
    write_timeout_s: Seconds = 30.0
    pool_timeout_s: Seconds = 5.0
    max_connections: Annotated[int, Field(ge=1, le=100)] = 4
    identity: DmpIdentitySettings

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _tls_pair(self) -> DmpSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        if self.url.startswith("https://") and self.tls_certfile is None:
            raise ValueError("an https DMP needs the client certificate (tls_certfile/tls_keyfile)")
        return self

    @property
    def repository_url(self) -> str:
        return f"{self.url}/{self.repository_path.strip('/')}"

    @property
    def registry_url(self) -> str:
        return f"{self.url}/{self.registry_path.strip('/')}"
