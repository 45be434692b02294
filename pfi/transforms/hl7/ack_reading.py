"""Reading the ACK a peer answered to a message PFI sent (ZAM, masking ORU).

The sender needs three things from it: did the peer take the message (MSA-1 AA/CA),
is it the answer to this message (MSA-2 = our MSH-10), and, when it refused, the
peer's own words (MSA-3, else ERR-8, else ERR-3/ERR-1 text) for the operator. An
answer that is not an HL7 ACK at all is a refusal whose text says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfi.transforms.hl7.errors import Hl7Error
from pfi.transforms.hl7.message import parse_message

#: MSA-1 codes that mean the message was accepted (original and enhanced mode).
ACCEPTED = frozenset({"AA", "CA"})


@dataclass(frozen=True, slots=True)
class PeerAck:
    code: str  # MSA-1 as answered (upper case), "" when unreadable
    control_id: str  # MSA-2
    text: str  # the peer's reason when it refused; "" otherwise
    for_this_message: bool = True  # MSA-2 names the message we sent

    @property
    def accepted(self) -> bool:
        return self.for_this_message and self.code in ACCEPTED


def read_peer_ack(raw: bytes, expected_control_id: str) -> PeerAck:
    """The peer's answer to our message `expected_control_id`; a mismatch is a refusal."""
    try:
        message = parse_message(raw, strict=False)
    except Hl7Error as exc:
        return PeerAck("", "", f"unreadable answer: {exc}"[:2000], False)
    msa = message.first("MSA")
    if msa is None:
        return PeerAck("", "", f"answer without MSA: {raw[:120]!r}", False)
    code = msa.get(1).strip().upper()
    control_id = msa.get(2).strip()
    if control_id != expected_control_id:
        return PeerAck(
            code,
            control_id,
            f"ACK for message {control_id!r}, not {expected_control_id!r}",
            for_this_message=False,
        )
    if code in ACCEPTED:
        return PeerAck(code, control_id, "")
    text = msa.text(3).strip()
    if not text:
        err = message.first("ERR")
        if err is not None:
            text = (err.text(8) or err.get(3, 2) or err.get(1, 4, 2)).strip()
    return PeerAck(code, control_id, text or f"refused with {code or 'no code'}")
