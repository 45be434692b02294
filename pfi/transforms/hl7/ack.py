"""Acknowledgements: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR).

The ACK's MSH is built from the message's: sender and receiver swapped, same version
field (so "2.5^FRA^2.11" comes back as sent), same processing id and charset. The ERR
segment follows the message's version: ERR-1 (ELD) up to 2.4, ERR-2/3/4/8 from 2.5.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import datetime

from pfi.transforms.hl7.charset import CODECS
from pfi.transforms.hl7.errors import Hl7Error
from pfi.transforms.hl7.escape import escape
from pfi.transforms.hl7.header import MessageHeader, Separators

_counter = itertools.count()

#: Accept-acknowledgement conditions (MSH-15, table 0155) and the codes they allow.
_ENHANCED_SENDS = {
    "AL": {"CA", "CE", "CR"},
    "NE": set(),
    "ER": {"CE", "CR"},
    "SU": {"CA"},
}


@dataclass(frozen=True)
class AckDecision:
    """What intake answers: the code, and the error when there is one."""

    code: str  # AA, AE, AR (original) — mapped to CA, CE, CR in enhanced mode
    error: Hl7Error | None = None


def ack_control_id() -> str:
    """A new MSH-10 for our own messages: unique per process, 20 characters at most."""
    return f"P{time.time_ns() // 1_000_000:d}{next(_counter) % 1000:03d}"


def enhanced_code(code: str) -> str:
    return {"AA": "CA", "AE": "CE", "AR": "CR"}[code]


def should_send_accept_ack(header: MessageHeader | None, code: str) -> bool:
    """Enhanced mode (MSH-15): NE never, ER only on error, SU only on success, AL always."""
    if header is None or not header.accept_ack_type:
        return True
    allowed = _ENHANCED_SENDS.get(header.accept_ack_type)
    if allowed is None:  # unknown value: answer, as original mode would
        return True
    return enhanced_code(code) in allowed


def build_ack(
    header: MessageHeader | None,
    decision: AckDecision,
    *,
    now: datetime,
    control_id: str | None = None,
    receiving_application: str = "PFI",
    receiving_facility: str = "",
) -> bytes:
    """The ACK for `header` (None when the message had no readable MSH), encoded."""
    seps = header.separators if header is not None else Separators()
    fs, cs = seps.field, seps.component
    enc = cs + seps.repetition + seps.escape + seps.subcomponent
    code = decision.code
    if header is not None and header.accept_ack_type:
        code = enhanced_code(code)
    version_field = header.version_field if header is not None else "2.5"
    version = header.version if header is not None else "2.5"
    trigger = header.trigger_event if header is not None else ""
    msg_type = f"ACK{cs}{trigger}{cs}ACK" if version >= "2.4" else f"ACK{cs}{trigger}"
    # Answer in the message's charset; one we cannot encode in is left out (ASCII-safe).
    charset = header.declared_charset if header is not None else ""
    if charset.strip().upper() not in CODECS:
        charset = ""
    msh = [
        "MSH",
        enc,
        _e(header.receiving_application if header else receiving_application, seps)
        or receiving_application,
        _e(header.receiving_facility if header else receiving_facility, seps) or receiving_facility,
        _e(header.sending_application, seps) if header else "",
        _e(header.sending_facility, seps) if header else "",
        now.strftime("%Y%m%d%H%M%S"),
        "",
        msg_type,
        control_id or ack_control_id(),
        (header.processing_id if header else "") or "P",
        version_field,
        "",
        "",
        "",
        "",
        "",
        charset,
    ]
    msa = ["MSA", code, _e(header.control_id, seps) if header else ""]
    segments = [fs.join(msh).rstrip(fs), None, None]
    err = decision.error
    if err is not None:
        text = _e(err.text, seps)
        msa.append(text[:80])
        segments[2] = _err_segment(err, seps, version, text)
    segments[1] = fs.join(msa)
    body = "\r".join(s for s in segments if s) + "\r"
    codec = CODECS.get(charset.strip().upper(), "latin-1")
    return body.encode(codec, errors="replace")


def _err_segment(err: Hl7Error, seps: Separators, version: str, text: str) -> str:
    fs, cs, ss = seps.field, seps.component, seps.subcomponent
    loc = err.location
    code = f"{err.code.value}{cs}{_e(err.code.text, seps)}{cs}HL70357"
    if version < "2.5":
        eld = ""
        if loc is not None:
            eld = f"{loc.segment}{cs}{loc.sequence}{cs}{loc.field or ''}"
        code_v23 = f"{err.code.value}{ss}{_e(err.code.text, seps)}{ss}HL70357"
        return fs.join(["ERR", f"{eld}{cs}{code_v23}" if eld else f"{cs}{cs}{cs}{code_v23}"])
    erl = ""
    if loc is not None:
        parts = [loc.segment, str(loc.sequence), str(loc.field or "")]
        if loc.repetition is not None or loc.component is not None:
            parts += [str(loc.repetition or 1), str(loc.component or "")]
        erl = cs.join(parts).rstrip(cs)
    severity = "E"
    return fs.join(["ERR", "", erl, code, severity, "", "", "", text])


def _e(value: str, seps: Separators) -> str:
    return escape(value, seps)
