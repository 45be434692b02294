"""What intake answers to one message, decided from its header and the source's rules.

Two steps: `assess` reads the header when the frame arrives (cheap, on the event loop);
`check_transmission` runs in the writer's thread, before the batch's transaction, for the
messages of the CI-SIS transmission volet only: their CDA is decoded and checked against
the message (ORC-1 / OBX-11 / MDM event agreement, Base64 and XML, the document's patient
against PID-3, MetaDMPMSS and PRT), so that a sender learns in its ACK (AE with the ERR)
that PFI will not send its document, instead of finding a dead letter later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pfi.config.model import SourceSettings
from pfi.transforms.cda.transmission import PROFILE_ID, read_cda_transmission
from pfi.transforms.hl7 import (
    ErrorCode,
    ErrorLocation,
    Hl7Error,
    MessageHeader,
    parse_message,
    read_header,
)
from pfi.transforms.hl7.ack import AckDecision
from pfi.transforms.hl7.header import scan_msh_only

log = logging.getLogger(__name__)

#: Identifier type codes of the INS in PID-3 (PAM-FR).
INS_TYPE = "INS"


@dataclass(frozen=True, slots=True)
class Assessment:
    """A received frame, read and judged; `header` is None when MSH was unreadable."""

    header: MessageHeader | None
    decision: AckDecision
    status: str  # accepted | rejected (duplicates are found later, against the store)

    @property
    def reason(self) -> str | None:
        return str(self.decision.error) if self.decision.error else None


def assess(raw: bytes, source: SourceSettings, *, truncated: bool, size: int) -> Assessment:
    """Read the header and apply the source's rules; never raises on bad input."""
    try:
        header = read_header(raw, source.default_charset)
    except Hl7Error as err:
        header = _best_effort_header(raw)
        return Assessment(header, AckDecision("AR" if err.reject else "AE", err), "rejected")
    if truncated:
        err = Hl7Error(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            f"message of {size} bytes exceeds this source's limit of "
            f"{source.max_message_bytes} bytes",
        )
        return Assessment(header, AckDecision("AE", err), "rejected")
    refusal = _type_refusal(header, source)
    if refusal is not None:
        return Assessment(header, AckDecision("AR", refusal), "rejected")
    return Assessment(header, AckDecision("AA"), "accepted")


def declares_transmission(header: MessageHeader) -> bool:
    """MSH-21 names the CI-SIS transmission volet (2.1^CISIS_CDA_HL7_V2)."""
    return any(PROFILE_ID in p.replace(" ", "") for p in header.profiles)


def check_transmission(assessment: Assessment, raw: bytes) -> Assessment:
    """AE (with the ERR naming the field) for a transmission-volet message whose CDA PFI
    will not send; any other message is returned unchanged. ~5-15 ms for a 300 KB ORU:
    run it off the event loop and outside the database transaction."""
    header = assessment.header
    if (
        assessment.status != "accepted"
        or header is None
        or header.message_code not in ("ORU", "MDM")
        or not declares_transmission(header)
    ):
        return assessment
    try:
        read_cda_transmission(parse_message(raw, header.charset))
    except Hl7Error as err:
        return Assessment(header, AckDecision("AR" if err.reject else "AE", err), "rejected")
    except Exception:  # a defect of ours: accept, the documents stage will dead-letter it
        log.exception("transmission check failed on %s %s", header.sender, header.control_id)
    return assessment


def _type_refusal(header: MessageHeader, source: SourceSettings) -> Hl7Error | None:
    allowed = source.allowed_message_types
    if header.message_code in allowed or header.message_type in allowed:
        return None
    family_allowed = any(t.split("^")[0] == header.message_code for t in allowed)
    code = (
        ErrorCode.UNSUPPORTED_EVENT_CODE if family_allowed else ErrorCode.UNSUPPORTED_MESSAGE_TYPE
    )
    return Hl7Error(
        code,
        f"message type {header.message_type} is not accepted from this source "
        f"(accepted: {', '.join(allowed)})",
        ErrorLocation("MSH", field=9),
        reject=True,
    )


def _best_effort_header(raw: bytes) -> MessageHeader | None:
    """For a message we refuse, still read what we can of MSH to address the NACK."""
    try:
        return scan_msh_only(raw)
    except Exception:  # no readable MSH at all: the NACK goes out with our defaults
        return None


def patient_identifiers(header: MessageHeader | None) -> tuple[str | None, str | None]:
    """(IPP, INS) from PID-3, for searching messages by patient."""
    if header is None:
        return None, None
    ipp = next((i.value for i in header.patient_ids if i.type_code == "PI"), None)
    if ipp is None:
        ipp = next((i.value for i in header.patient_ids if i.type_code != INS_TYPE), None)
    ins = next((i.value for i in header.patient_ids if i.type_code == INS_TYPE), None)
    return ipp, ins
