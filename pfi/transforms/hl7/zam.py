"""Business acknowledgements (ZAM^Z01/Z02/Z03, HL7 v2.6 structure ZAM_Z01) to the system
that sent a document per the CI-SIS volet "Transmission de document(s) CDA en HL7 v2".

The technical ACK only says PFI stored the message; the sender (SGL, RIS, DPI) also wants
to know what the destinations did with the document, which PFI learns later:
- Z01 "Accusé de réception DMP": the DMP's Provide and Register response;
- Z02 "Accusé de réception MSSanté": the recipient's mail server DSN, per recipient;
- Z03 "Accusé de lecture MSSanté": the MDN, per reader.

Structure (volet § "Description des messages HL7 d'accusés métier", and the official
example `Message metier reception DMP` of ansforge/hl7V2-exemples):

    MSH|^~\\&|PFI|CHU|SIL-Y|labo|202106060933||ZAM^Z01^ZAM_Z01|017|P|2.6|||||FRA|
        UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2                           (one line)
    EVN||20211005152908
    OBX|1|CWE|ACK_RECEPTION_DMP^Accusé de réception DMP^AckMetierZAM|015|
        N^^expandedYes-NoIndicator||||||F                              (one line)
    ERR|||207^Application error^HL70357|E|DMPClosed^DMP fermé^DMP_ERROR_CODE

OBX-4 is the MSH-10 of the message that carried the document; OBX-5 is Y (success) or N
(error, then ERR is required, with the destination's own error code in ERR-5). The
first OBX's coding system follows the volet's tables (expandedYes-NoIndicator), and
ERR-5's coding system its ZAM_Z01 tables (DMP_ERROR_CODE, SMTPERRORCODE,
applicationErrorCondition).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pfi.transforms.hl7.charset import CODECS
from pfi.transforms.hl7.outgoing import ReplyHeader, msh
from pfi.transforms.hl7.outgoing import esc as _e

VERSION = "2.6"
PROFILE = "2.1^CISIS_CDA_HL7_V2"
ACK_SYSTEM = "AckMetierZAM"
YES_NO_SYSTEM = "expandedYes-NoIndicator"
#: ERR-3 of every ZAM: an application-level error, detailed in ERR-5.
APPLICATION_ERROR = "207^Application error^HL70357"
#: ERR-5 coding systems of the volet's ZAM tables.
DMP_ERROR_SYSTEM = "DMP_ERROR_CODE"
SMTP_ERROR_SYSTEM = "SMTPERRORCODE"
READ_ERROR_SYSTEM = "applicationErrorCondition"
CHARSETS = ("UNICODE UTF-8", "8859/15")  # MSH-18 values the volet allows


class ZamEvent(StrEnum):
    DMP_RECEPTION = "Z01"
    MSS_RECEPTION = "Z02"
    MSS_READ = "Z03"


_FIRST_OBX = {
    ZamEvent.DMP_RECEPTION: "ACK_RECEPTION_DMP^Accusé de réception DMP",
    ZamEvent.MSS_RECEPTION: "ACK_RECEPTION_MSS^Accusé de réception MSSanté",
    ZamEvent.MSS_READ: "ACK_LECTURE_MSS^Accusé de lecture",
}
_PARTY_OBX = {
    ZamEvent.MSS_RECEPTION: "DESTINATAIRE_MSS^Destinataire MSSanté",
    ZamEvent.MSS_READ: "LECTEUR_MSS^Lecteur du courriel MSSanté",
}
_SEVERITIES = ("E", "F", "I", "W")


@dataclass(frozen=True, slots=True)
class ZamError:
    """ERR-4/ERR-5: the destination's error, in its own code table."""

    code: str
    text: str
    coding_system: str
    severity: str = "E"


def build_zam_z01(
    header: ReplyHeader,
    *,
    original_control_id: str,
    accepted: bool,
    now: datetime,
    error: ZamError | None = None,
) -> bytes:
    """ZAM^Z01: the DMP accepted (Y) or refused (N, with the DMP's error) the document."""
    return _build(
        ZamEvent.DMP_RECEPTION, header, original_control_id, accepted, now, error, None, ""
    )


def build_zam_z02(
    header: ReplyHeader,
    *,
    original_control_id: str,
    delivered: bool,
    recipient: str,
    now: datetime,
    recipient_id: str = "",
    error: ZamError | None = None,
) -> bytes:
    """ZAM^Z02: the recipient's mail server took the mail (Y) or not (N, SMTP code)."""
    return _build(
        ZamEvent.MSS_RECEPTION,
        header,
        original_control_id,
        delivered,
        now,
        error,
        recipient,
        recipient_id,
    )


def build_zam_z03(
    header: ReplyHeader,
    *,
    original_control_id: str,
    processed: bool,
    reader: str,
    now: datetime,
    reader_id: str = "",
    error: ZamError | None = None,
) -> bytes:
    """ZAM^Z03: the mail was read / processed (Y) or its processing failed (N)."""
    return _build(
        ZamEvent.MSS_READ, header, original_control_id, processed, now, error, reader, reader_id
    )


def _build(
    event: ZamEvent,
    header: ReplyHeader,
    original_control_id: str,
    success: bool,
    now: datetime,
    error: ZamError | None,
    party: str | None,
    party_id: str,
) -> bytes:
    if not original_control_id.strip():
        raise ValueError("ZAM OBX-4: the MSH-10 of the message that carried the document")
    if not header.control_id.strip():
        raise ValueError("ZAM MSH-10: a control id is required")
    if header.charset not in CHARSETS:
        raise ValueError(f"ZAM MSH-18: {' or '.join(CHARSETS)}, got {header.charset!r}")
    if not success and error is None:
        raise ValueError(f"ZAM^{event.value} with status N needs the error (ERR is required)")
    if error is not None:
        if error.severity not in _SEVERITIES:
            raise ValueError(f"ERR-4: one of {', '.join(_SEVERITIES)}, got {error.severity!r}")
        if success and error.severity in ("E", "F"):
            raise ValueError(
                f"ZAM^{event.value} with status Y cannot carry an error of severity "
                f"{error.severity}"
            )
    if party is not None and not party.strip():
        raise ValueError(f"ZAM^{event.value} OBX 2: the MSSanté address is required")
    e = _e
    stamp = now.strftime("%Y%m%d%H%M%S")
    header_segment = msh(
        header,
        stamp=stamp,
        message_type=f"ZAM^{event.value}^ZAM_Z01",
        version=VERSION,
        profile=PROFILE,
    )
    segments = [
        header_segment,
        f"EVN||{stamp}",
        "|".join(
            [
                "OBX",
                "1",
                "CWE",
                f"{_FIRST_OBX[event]}^{ACK_SYSTEM}",
                e(original_control_id),
                f"{'Y' if success else 'N'}^^{YES_NO_SYSTEM}",
                "",
                "",
                "",
                "",
                "",
                "F",
            ]
        ),
    ]
    if party is not None:
        segments.append(
            "|".join(
                [
                    "OBX",
                    "2",
                    "XTN",
                    f"{_PARTY_OBX[event]}^{ACK_SYSTEM}",
                    e(party_id),
                    f"^^X.400^{e(party)}",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "F",
                ]
            )
        )
    if error is not None:
        segments.append(
            "|".join(
                [
                    "ERR",
                    "",
                    "",
                    APPLICATION_ERROR,
                    error.severity,
                    f"{e(error.code)}^{e(error.text)}^{e(error.coding_system)}",
                ]
            )
        )
    body = "\r".join(segments) + "\r"
    return body.encode(CODECS[header.charset], errors="replace")
