"""MSSanté settings: the establishment's application mailbox, its SMTP relay and IMAP store.

PFI sends as one application mailbox (BAL applicative) of the establishment: every report
leaves From that address, and every DSN, MDN, opposition auto-reply or inbound document
comes back into it, which PFI polls over IMAP. Operators require TLS and usually a client
certificate issued by the IGC-Santé; authentication (login/password) comes on top.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from pfi.config.base import Port, Section
from pfi.config.outbound import HdText, MllpEndpoint

#: Permissive address check: one @, no spaces, a dotted domain. RFC 5322 parsing is done
#: by the email package where it matters; this catches typos in a YAML file.
_ADDRESS = re.compile(r"^[^@\s<>]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

TlsMode = Literal["starttls", "implicit", "none"]


def _check_address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"an e-mail address like 'pfi@hopital.mssante.fr', got {value!r}")
    return value


class MssClientTls(Section):
    """The TLS side of one connection: CA to trust, and the client certificate to show."""

    cafile: Path | None = Field(
        default=None,
        description="CA bundle that signs the server (IGC-Santé); system store if empty",
    )
    certfile: Path | None = Field(default=None, description="client certificate (PEM)")
    keyfile: Path | None = Field(default=None, description="client private key (PEM)")
    check_hostname: bool = True

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> MssClientTls:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together (client certificate and its key)")
        return self


class MssSmtpSettings(Section):
    host: str = "127.0.0.1"
    port: Port = 587
    tls_mode: TlsMode = Field(
        default="starttls",
        description="starttls (submission, 587), implicit (SMTPS, 465) or none (tests only)",
    )
    tls: MssClientTls = MssClientTls()
    username: str | None = None
    password: SecretStr | None = None
    helo_name: str | None = Field(default=None, description="EHLO name; local FQDN if empty")
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    max_messages_per_connection: Annotated[int, Field(ge=1, le=10_000)] = 100
    request_dsn: bool = Field(
        default=True,
        description="ask the relay for delivery status notifications (RFC 3461) when it offers DSN",
    )

    @model_validator(mode="after")
    def _auth_pair(self) -> MssSmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class MssImapSettings(Section):
    host: str = "127.0.0.1"
    port: Port = 993
    tls_mode: TlsMode = Field(default="implicit", description="implicit (IMAPS), starttls or none")
    tls: MssClientTls = MssClientTls()
    username: str | None = None
    password: SecretStr | None = None
    mailbox: str = "INBOX"
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50

    @model_validator(mode="after")
    def _auth_pair(self) -> MssImapSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class MssTemplates(Section):
    """Default mail bodies, used when the sender gave no CORPSMAIL_PS / CORPSMAIL_PATIENT.

    `string.Template` placeholders: $title, $patient_name, $birth_date, $organisation.
    For a replacement or a deletion the matching notice always heads the body (the spec
    asks the GESTIONNAIRE to say so), followed by the sender's text when there is one.
    """

    professional: str = (
        "Bonjour,\n\nVeuillez trouver ci-joint le document « $title » concernant "
        "$patient_name, né(e) le $birth_date.\n\nCordialement,\n$organisation\n"
    )
    patient: str = (
        "Bonjour,\n\nVotre document « $title » est disponible en pièce jointe.\n\n"
        "Cordialement,\n$organisation\n"
    )
    replacement_notice: str = (
        "Ce document « $title » remplace la version précédemment transmise, "
        "qui ne doit plus être utilisée."
    )
    deletion_notice: str = (
        "Le document « $title » précédemment transmis a été retiré par son auteur : "
        "il doit être supprimé et ne doit plus être utilisé."
    )


class InboundDpiEndpoint(MllpEndpoint):
    """The DPI's MLLP listener for the MDM^T02/T10/T04 carrying a received document."""

    receiving_application: HdText = "DPI"


class MssInboundSettings(Section):
    """`mssante.inbound:` documents correspondents send to the application mailbox.

    PFI polls the mailbox (`mssante.imap`, every `imap.poll_interval_s`), keeps each mail,
    finds the patient of each CDA (qualified INS, else identity traits when exactly one
    patient matches) and hands the document to the DPI as an MDM over MLLP. What cannot
    be integrated goes to the KO worklist (`pfi inbound ko list`).
    """

    enabled: bool = True
    dpi: InboundDpiEndpoint = Field(description="the DPI's MLLP listener for the MDM messages")
    mailbox: str | None = Field(
        default=None,
        description="IMAP folder the documents are filed in; empty: imap.mailbox",
    )
    resend_after_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=300.0,
        description="a document left 'sending' this long (a crash mid-send) is sent again",
    )


class MssRecipientSettings(Section):
    """How a report's prescriber and copy recipients named by RPPS (a CR-BIO PFI built
    from a plain ORU) get their MSSanté address from the imported annuaire."""

    resolve_from_annuaire: bool = Field(
        default=True,
        description="look the prescriber's and copies' RPPS up in the imported annuaire",
    )
    several_mailboxes: Literal["personal", "all"] = Field(
        default="personal",
        description="a professional with several mailboxes: 'personal' sends to their first "
        "personal (PER) mailbox, else their first one; 'all' sends to every one",
    )
    attending: bool = Field(
        default=False,
        description="also mail the reports PFI builds to the patient's attending physician "
        "(médecin traitant, ADT ROL ODRP) as a copy recipient",
    )


class MssXdmSettings(Section):
    """The XDS metadata of IHE_XDM.zip (METADATA.XML): who submits, and the default
    contentTypeCode (TRE_R209) when the document says none."""

    source_id: str | None = Field(
        default=None,
        pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$",
        description="XDSSubmissionSet.sourceId, the OID of this PFI; dmp.identity.source_id "
        "when empty",
    )
    content_type_code: str = "07"
    content_type_system: str = "1.2.250.1.213.2.2"
    content_type_display: str = "Consultation Soins Externes"


class MssanteSettings(Section):
    """The `mssante:` section of pfi.yaml."""

    enabled: bool = False
    application_mailbox: str = Field(
        default="pfi@hopital.mssante.fr", description="the establishment's BAL applicative"
    )
    application_display_name: str | None = None
    organisation_name: str = Field(default="", description="signs the default mail bodies")
    patient_domain: str = "patient.mssante.fr"
    smtp: MssSmtpSettings = MssSmtpSettings()
    imap: MssImapSettings = MssImapSettings()
    templates: MssTemplates = MssTemplates()
    inbound: MssInboundSettings | None = Field(
        default=None, description="empty: documents received by MSSanté are not integrated"
    )
    recipients: MssRecipientSettings = MssRecipientSettings()
    xdm: MssXdmSettings = MssXdmSettings()

    _address = field_validator("application_mailbox")(_check_address)

    @field_validator("patient_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not _DOMAIN.match(value):
            raise ValueError(f"a mail domain like 'patient.mssante.fr', got {value!r}")
        return value.lower()
