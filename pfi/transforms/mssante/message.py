"""The MSSanté e-mail carrying one report to professionals or to the patient.

Rules (CI-SIS volet "Transmission de document(s) CDA en HL7 v2", mapping-mss and
regles-gestion-mssante; volet "LPS doc CDA courriel MSS" for the subject):

- From: the establishment's application mailbox (BAL applicative); no Sender.
- To: the PRT RCT addresses; Reply-To: the PRT REPLY address(es) when given.
- Subject: ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance JJ/MM/AAAA>``.
- Attachments: IHE_XDM.zip, then the PDF rendering when there is one.
- Body: CORPSMAIL_PS (professionals) or CORPSMAIL_PATIENT (patient) when the sender gave
  one, else the configured template; a replacement or deletion always starts with the
  matching notice (the GESTIONNAIRE must say so in the body).
- ``X-MSS-MES: FIN`` on a patient message when the professional wants no reply (NTE-4).
- ``Disposition-Notification-To`` (RFC 8098) when ACK_LECTURE_MSS = Y, pointing back to
  the application mailbox, which PFI polls for the MDNs.

The professional and the patient versions are two messages, because their body and
X-MSS-MES differ; a patient address (``<matricule INS>@patient.mssante.fr``) is checked
against this patient's INS so that a report never leaves for another patient's mailbox.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from enum import StrEnum
from string import Template

from pfi.config.mssante import MssTemplates
from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.xdm import XdmSender, build_xdm_zip
from pfi.transforms.xds.metadata import SubmissionContext

SUBJECT_PREFIX = "XDM/1.0/DDM+"
XDM_FILENAME = "IHE_XDM.zip"


class Audience(StrEnum):
    PROFESSIONAL = "professional"
    PATIENT = "patient"


@dataclass(frozen=True, slots=True)
class MssPatient:
    family_name: str  # nom de naissance, as on the document
    given_name: str
    birth_date: date
    ins: str = ""  # matricule INS, required to write to the patient


@dataclass(frozen=True, slots=True)
class MssDocument:
    """The report: the CDA (with how to map it to XDS metadata) or a ready IHE_XDM.zip."""

    title: str
    cda: bytes
    submission: SubmissionContext | None = None
    xdm_zip: bytes | None = None
    pdf: bytes | None = None
    pdf_filename: str = ""
    action: DocumentAction = DocumentAction.NEW
    document_date: date | None = None  # for the default PDF file name


@dataclass(frozen=True, slots=True)
class MssSender:
    address: str  # the application mailbox
    display_name: str = ""
    organisation: str = ""


@dataclass(frozen=True, slots=True)
class MssOptions:
    body: str | None = None  # CORPSMAIL_PS or CORPSMAIL_PATIENT for this audience
    reply_to: tuple[str, ...] = ()  # PRT REPLY
    read_receipt: bool = False  # ACK_LECTURE_MSS = Y
    patient_no_reply: bool = False  # NTE-4 = FIN under DESTMSSANTEPAT


def mss_subject(title: str, patient: MssPatient) -> str:
    """``XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>``, on one line."""
    text = (
        f"{SUBJECT_PREFIX}{title} {patient.family_name.upper()} {patient.given_name} "
        f"{patient.birth_date:%d/%m/%Y}"
    )
    return " ".join(text.split())


def build_mss_message(
    document: MssDocument,
    patient: MssPatient,
    recipients: Sequence[str],
    audience: Audience,
    sender: MssSender,
    templates: MssTemplates,
    *,
    message_id: str,
    date: datetime,
    options: MssOptions = MssOptions(),
    patient_domain: str = "patient.mssante.fr",
) -> EmailMessage:
    """One MSSanté message for one audience; raises ValueError naming what is wrong."""
    to = _checked_recipients(recipients, audience, patient, patient_domain)
    if date.tzinfo is None:
        raise ValueError("date must be timezone-aware (the Date header carries the offset)")
    if not re.fullmatch(r"<[^<>\s@]+@[^<>\s@]+>", message_id):
        raise ValueError(f"message_id must look like '<id@domain>', got {message_id!r}")
    xdm = document.xdm_zip
    if xdm is None:
        if document.submission is None:
            raise ValueError("MssDocument needs either xdm_zip or submission (to build it)")
        xdm = build_xdm_zip(
            document.cda,
            document.submission,
            XdmSender(sender.organisation or sender.address, sender.address),
            action=document.action,
        )

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=sender.display_name, addr_spec=sender.address)
    msg["To"] = ", ".join(to)
    if options.reply_to:
        msg["Reply-To"] = ", ".join(options.reply_to)
    msg["Subject"] = mss_subject(document.title, patient)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if options.read_receipt:
        msg["Disposition-Notification-To"] = sender.address
    if audience is Audience.PATIENT and options.patient_no_reply:
        msg["X-MSS-MES"] = "FIN"
    msg.set_content(
        _body(document, patient, audience, sender, templates, options.body),
        subtype="plain",
        charset="utf-8",
        cte="quoted-printable",
    )
    msg.add_attachment(xdm, maintype="application", subtype="zip", filename=XDM_FILENAME)
    if document.pdf is not None:
        msg.add_attachment(
            document.pdf,
            maintype="application",
            subtype="pdf",
            filename=document.pdf_filename or _pdf_filename(document, patient),
        )
    return msg


def _checked_recipients(
    recipients: Sequence[str], audience: Audience, patient: MssPatient, patient_domain: str
) -> list[str]:
    if not recipients:
        raise ValueError("no recipient: a message needs at least one MSSanté address")
    out = []
    domain = patient_domain.lower()
    for raw in recipients:
        pairs = getaddresses([raw])
        address = pairs[0][1] if len(pairs) == 1 else ""
        if not address or address.count("@") != 1 or address != raw.strip():
            raise ValueError(f"recipient {raw!r} is not a single plain e-mail address")
        local, _, host = address.partition("@")
        is_patient = host.lower() == domain
        if audience is Audience.PROFESSIONAL and is_patient:
            raise ValueError(
                f"recipient {address} is a patient address: send the patient version separately"
            )
        if audience is Audience.PATIENT:
            if not is_patient:
                raise ValueError(f"recipient {address} is not in the patient domain {domain}")
            if not patient.ins:
                raise ValueError("writing to the patient needs the patient's INS matricule")
            if local != patient.ins:
                raise ValueError(
                    f"patient address {address} is not this patient's INS ({patient.ins})"
                )
        out.append(address)
    return out


def _body(
    document: MssDocument,
    patient: MssPatient,
    audience: Audience,
    sender: MssSender,
    templates: MssTemplates,
    given: str | None,
) -> str:
    values = {
        "title": document.title,
        "patient_name": f"{patient.given_name} {patient.family_name.upper()}".strip(),
        "birth_date": f"{patient.birth_date:%d/%m/%Y}",
        "organisation": sender.organisation or sender.display_name or sender.address,
    }
    default = templates.patient if audience is Audience.PATIENT else templates.professional
    text = (
        given.strip() + "\n"
        if given and given.strip()
        else Template(default).safe_substitute(values)
    )
    notice = {
        DocumentAction.NEW: "",
        DocumentAction.REPLACE: templates.replacement_notice,
        DocumentAction.DELETE: templates.deletion_notice,
    }[document.action]
    if notice:
        text = Template(notice).safe_substitute(values).strip() + "\n\n" + text
    return text.replace("\r\n", "\n")


def _pdf_filename(document: MssDocument, patient: MssPatient) -> str:
    parts = [
        f"{document.document_date:%Y%m%d}" if document.document_date else "",
        document.title,
        patient.family_name.upper(),
        patient.given_name.upper(),
    ]
    name = "_".join(_ascii_token(p) for p in parts if p)
    return f"{name[:120] or 'document'}.pdf"


def _ascii_token(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9-]+", "_", ascii_text).strip("_")
