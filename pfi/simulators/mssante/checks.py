"""The simulator's acceptance rules: what a real MSSanté receiver would choke on.

A document message must have the RFC 5322 headers, the CI-SIS subject, one IHE_XDM.zip
whose layout, METADATA.XML and CDA are sound (`check_xdm_zip`), a well-formed X-MSS-MES
sent to patients only, and patient addresses equal to the document's INS matricule.
Reports and auto-replies (multipart/report, Auto-Submitted) only need the headers.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from pfi.transforms.mssante.cda_header import CdaError, read_cda_header
from pfi.transforms.mssante.message import SUBJECT_PREFIX, XDM_FILENAME
from pfi.transforms.mssante.xdm_read import XdmError, check_xdm_zip, read_xdm_zip

_MSGID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")


def check_submission(msg: Message, recipients: list[str], patient_domain: str) -> list[str]:
    """Every reason to refuse this message ([] when it is acceptable)."""
    problems = _headers(msg)
    if _is_report(msg):
        return problems
    subject = decoded_header(str(msg.get("Subject", "")))
    if not subject.startswith(SUBJECT_PREFIX):
        problems.append(f"Subject must start with {SUBJECT_PREFIX!r} (got {subject[:60]!r})")
    patient_rcpts = [r for r in recipients if r.rpartition("@")[2].lower() == patient_domain]
    mes = msg.get_all("X-MSS-MES", [])
    if mes:
        if len(mes) > 1 or str(mes[0]).strip() != "FIN":
            problems.append(f"X-MSS-MES must be the single value 'FIN' (got {mes!r})")
        if len(patient_rcpts) != len(recipients):
            problems.append("X-MSS-MES is only for messages to patients (Mon espace santé)")
    dnt = msg.get("Disposition-Notification-To")
    if dnt is not None and not _addresses(str(dnt)):
        problems.append(f"Disposition-Notification-To {str(dnt)!r} is not an address")
    zips = (
        [
            p
            for p in msg.iter_attachments()
            if (p.get_filename() or "").lower() == XDM_FILENAME.lower()
        ]
        if msg.is_multipart()
        else []
    )
    if len(zips) != 1:
        problems.append(f"expected exactly one {XDM_FILENAME} attachment, found {len(zips)}")
        return problems
    part = zips[0]
    if part.get_content_type() not in ("application/zip", "application/octet-stream"):
        problems.append(f"{XDM_FILENAME} has Content-Type {part.get_content_type()}")
    data = part.get_payload(decode=True) or b""
    xdm_problems = check_xdm_zip(data)
    problems.extend(f"{XDM_FILENAME}: {p}" for p in xdm_problems)
    if patient_rcpts and not xdm_problems:
        problems.extend(_patient_addresses(data, patient_rcpts))
    return problems


def _headers(msg: Message) -> list[str]:
    problems = []
    for name in ("From", "To", "Date", "Message-ID", "Subject", "MIME-Version"):
        values = msg.get_all(name, [])
        if not values:
            problems.append(f"header {name} is missing")
        elif len(values) > 1:
            problems.append(f"header {name} appears {len(values)} times")
    if msg.get("From") is not None and len(_addresses(str(msg["From"]))) != 1:
        problems.append(f"From must hold exactly one address (got {str(msg['From'])!r})")
    if msg.get("Message-ID") is not None and not _MSGID.match(str(msg["Message-ID"]).strip()):
        problems.append(f"Message-ID {str(msg['Message-ID'])!r} is not <id@domain>")
    if msg.get("Date") is not None:
        try:
            parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError):
            problems.append(f"Date {str(msg['Date'])!r} is not an RFC 5322 date")
    return problems


def _patient_addresses(data: bytes, patient_rcpts: list[str]) -> list[str]:
    try:
        package = read_xdm_zip(data)
        ins = read_cda_header(package.documents[0].content).patient.ins
    except (XdmError, CdaError, IndexError) as exc:
        return [f"cannot read the patient of the document: {exc}"]
    if ins is None:
        return ["message to a patient address but the document has no INS"]
    return [
        f"patient address {r} does not match the document's INS {ins.extension}"
        for r in patient_rcpts
        if r.partition("@")[0] != ins.extension
    ]


def _is_report(msg: Message) -> bool:
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    return msg.get_content_type() == "multipart/report" or auto not in ("", "no")


def decoded_header(value: str) -> str:
    """RFC 2047 encoded words decoded, without the folding white space that may open the
    value: messages are parsed with the compat32 policy, which keeps a folded value as
    written, and the email package folds a long Subject right after its colon when its
    first words do not fit on that line ("Subject:\\r\\n XDM/1.0/DDM+...", RFC 5322
    valid: the field body starts after the unfolded white space)."""
    value = value.lstrip(" \t\r\n")
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, UnicodeDecodeError, LookupError):
        return value


def _addresses(value: str) -> list[str]:
    return [a for _, a in getaddresses([value]) if a and "@" in a]
