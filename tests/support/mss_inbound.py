"""Mails a correspondent sends to PFI's application mailbox, and patients to find."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage

from sqlalchemy.orm import Session

from pfi.config.model import Settings
from pfi.config.mssante import MssTemplates
from pfi.store.models import Patient, PatientIdentifier
from pfi.transforms.mssante.message import Audience, MssPatient, MssSender, build_mss_message
from tests.support.mss import APP, APP_PASSWORD, INS, NOW, cr_bio, document

CORRESPONDENT = MssSender("dr.martin@cabinet.mssante.fr", "Dr Martin", "Cabinet Martin")
INS_ID = b'<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>'


def cda(ins: str | None = INS) -> bytes:
    """The official CR-BIO with this INS, or with no INS at all (None)."""
    original = cr_bio()
    assert INS_ID in original
    if ins is None:
        return original.replace(INS_ID, b"")
    return original.replace(INS_ID, INS_ID.replace(INS.encode(), ins.encode()))


def document_mail(message_id: str, *, cda_bytes: bytes | None = None) -> bytes:
    """A real MSSanté mail with an IHE_XDM.zip carrying the CDA, to PFI's mailbox."""
    msg = build_mss_message(
        document(cda_bytes if cda_bytes is not None else cda()),
        MssPatient("PAT-TROIS", "DOMINIQUE", date(1979, 3, 28), INS),
        [APP],
        Audience.PROFESSIONAL,
        CORRESPONDENT,
        MssTemplates(),
        message_id=message_id,
        date=NOW,
    )
    return msg.as_bytes()


def add_patient(
    session: Session,
    ipp: str,
    *,
    ins: str | None = INS,
    qualified: bool = True,
    birth_name: str = "PAT-TROIS",
    first_name: str = "DOMINIQUE",
    birth_date: date = date(1979, 3, 28),
    sex: str = "F",
) -> int:
    patient = Patient(
        ins=ins,
        ins_oid="1.2.250.1.213.1.4.10" if ins else None,
        identity_status="VALI" if qualified else "PROV",
        qualified=qualified,
        birth_name=birth_name,
        first_name=first_name,
        first_names=first_name,
        birth_date=birth_date,
        sex=sex,
    )
    patient.identifiers.append(
        PatientIdentifier(authority="CHU-X", value=ipp, authority_oid="1.2.250.1.999.1.1")
    )
    session.add(patient)
    session.flush()
    return patient.id


def bare_cda_mail(message_id: str, cda_bytes: bytes) -> bytes:
    """A mail carrying the CDA file itself, no XDM (what some correspondents send; the
    XDM builder refuses a CDA without INS, which is the case this serves)."""
    msg = EmailMessage()
    msg["From"] = CORRESPONDENT.address
    msg["To"] = APP
    msg["Subject"] = "Compte rendu"
    msg["Message-ID"] = message_id
    msg.set_content("Bonjour, veuillez trouver le compte rendu ci-joint.")
    msg.add_attachment(cda_bytes, maintype="text", subtype="xml", filename="CR.xml")
    return msg.as_bytes()


def inbound_settings(imap_port: int, dpi_port: int) -> Settings:
    return Settings.model_validate(
        {
            "outbound": {"application": "PFI", "facility": "CHU-X"},
            "mssante": {
                "enabled": True,
                "application_mailbox": APP,
                "xdm": {"source_id": "1.2.250.1.999.1.1"},
                "imap": {
                    "host": "127.0.0.1",
                    "port": imap_port,
                    "tls_mode": "none",
                    "username": APP,
                    "password": APP_PASSWORD,
                    "timeout_s": 5,
                },
                "inbound": {"dpi": {"host": "127.0.0.1", "port": dpi_port, "timeout_s": 3}},
            },
        }
    )
