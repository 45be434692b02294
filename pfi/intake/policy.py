"""What intake answers to one message, decided from its header and the source's rules."""

from __future__ import annotations

from dataclasses import dataclass

from pfi.config.model import SourceSettings
from pfi.transforms.hl7 import ErrorCode, ErrorLocation, Hl7Error, MessageHeader, read_header
from pfi.transforms.hl7.ack import AckDecision
from pfi.transforms.hl7.header import scan_msh_only

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
