"""Shared material for the MSSanté tests: official CI-SIS examples and message builders."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

from pfi.config.mssante import MssTemplates
from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.message import (
    Audience,
    MssDocument,
    MssOptions,
    MssPatient,
    MssSender,
    build_mss_message,
)
from pfi.transforms.xds.codes import Code
from pfi.transforms.xds.metadata import Author, SubmissionContext

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ci-sis"
MSS_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mssante"
CR_BIO = FIXTURES / "TestContenuCDA-3.0" / "ExemplesCDA" / "BIO-CR-BIO_2024.01_TSH_1.xml"
LPS = (
    FIXTURES
    / "hl7V2-exemples"
    / "Vague 2"
    / "Trans_LPS_CDA_MSSanté"
    / "TRANSMISSION_LPS_DOC_CDA_COURRIEL_FROM_MSSANTE_V1.1"
)
LPS_CDA_V1 = LPS / "Transmission initiale MDM" / "CR_Radio_CDAN1_v1.XML"
LPS_CDA_V2 = LPS / "Remplacement MDM" / "CR_Radio_CDAN1_v2.XML"
LPS_MDM_INIT = (
    LPS / "Transmission initiale MDM" / "message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7"
)

APP = "pfi@hopital.mssante.fr"
APP_PASSWORD = "s3cret"
INS = "279035121518989"  # the INS of the official examples (test NIR root .10)
PATIENT_ADDRESS = f"{INS}@patient.mssante.fr"
PATIENT = MssPatient("PAT-TROIS", "DOMINIQUE", date(1979, 3, 28), INS)
SENDER = MssSender(APP, "PFI Hôpital", "Hôpital de test")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def submission(when: datetime = NOW) -> SubmissionContext:
    return SubmissionContext(
        submission_time=when,
        source_id="1.2.250.1.999.1",
        content_type_code=Code("26", "1.2.250.1.213.2.2", "Analyses médicales biologiques"),
        submitter=Author(person="^PFI^^^^^^^&1.2.250.1.999&ISO"),
    )


def cr_bio() -> bytes:
    return CR_BIO.read_bytes()


def document(
    cda: bytes | None = None,
    *,
    action: DocumentAction = DocumentAction.NEW,
    pdf: bytes | None = None,
    xdm_zip: bytes | None = None,
) -> MssDocument:
    return MssDocument(
        title="CR de biologie",
        cda=cda if cda is not None else cr_bio(),
        submission=submission(),
        xdm_zip=xdm_zip,
        pdf=pdf,
        action=action,
        document_date=date(2024, 1, 15),
    )


def pro_message(
    recipients: list[str], *, message_id: str = "<pro-1@hopital.mssante.fr>", **options: object
) -> EmailMessage:
    return build_mss_message(
        document(),
        PATIENT,
        recipients,
        Audience.PROFESSIONAL,
        SENDER,
        MssTemplates(),
        message_id=message_id,
        date=NOW,
        options=MssOptions(**options),  # type: ignore[arg-type]
    )


def patient_message(
    *, message_id: str = "<pat-1@hopital.mssante.fr>", **options: object
) -> EmailMessage:
    return build_mss_message(
        document(),
        PATIENT,
        [PATIENT_ADDRESS],
        Audience.PATIENT,
        SENDER,
        MssTemplates(),
        message_id=message_id,
        date=NOW,
        options=MssOptions(**options),  # type: ignore[arg-type]
    )
