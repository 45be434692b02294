"""What every HL7 v2 message PFI writes shares: the MSH layout, field escaping with the
default encoding characters, and PAM-FR's names for the INS assigning authorities.

PFI writes several messages back to the hospital (ZAM business acknowledgements, the
ORU with masking data, MDM^T02 for documents received by MSSanté); they differ in their
body, not in how an MSH is laid out or a value escaped, so that lives once here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfi.transforms.cda.oids import INS_NIA, INS_NIA_TEST, INS_NIR, INS_NIR_TEST
from pfi.transforms.hl7.escape import escape
from pfi.transforms.hl7.header import Separators

SEPS = Separators()

#: HL7 namespace names PAM-FR uses for the INS assigning authorities (PID-3.4.1); the
#: test OIDs carry the names of their production counterparts, as the official examples.
INS_AUTHORITY_NAMES = {
    INS_NIR: "ASIP-SANTE-INS-NIR",
    INS_NIA: "ASIP-SANTE-INS-NIA",
    INS_NIR_TEST: "ASIP-SANTE-INS-NIR",
    INS_NIA_TEST: "ASIP-SANTE-INS-NIA",
}


def esc(value: str) -> str:
    """`value` escaped for a field or component written with the default separators."""
    return escape(value, SEPS)


def segment(*fields: str) -> str:
    """A segment from its name and fields, without trailing empty fields."""
    return "|".join(fields).rstrip("|")


@dataclass(frozen=True, slots=True)
class ReplyHeader:
    """Who writes to whom: PFI's MSH-3/4 as sender, the hospital system's as receiver."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    processing_id: str = "P"
    charset: str = "UNICODE UTF-8"


def msh(header: ReplyHeader, *, stamp: str, message_type: str, version: str, profile: str) -> str:
    """The MSH of a message PFI sends, country FRA (MSH-17) and a profile in MSH-21."""
    return segment(
        "MSH",
        "^~\\&",
        esc(header.sending_application),
        esc(header.sending_facility),
        esc(header.receiving_application),
        esc(header.receiving_facility),
        stamp,
        "",
        message_type,
        esc(header.control_id),
        header.processing_id,
        version,
        "",
        "",
        "",
        "",
        "FRA",
        header.charset,
        "",
        "",
        profile,
    )
