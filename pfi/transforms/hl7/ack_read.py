"""Reading the acknowledgement a system PFI sent to answered (MSA, ERR).

The DPI says AA (filed), AE (refused: a rule of its own, e.g. an unknown patient) or AR
(rejected: it cannot process the message at all); enhanced mode CA/CE/CR the same. The
text of a refusal is what the operator needs in the KO worklist: ERR-8 (user message,
v2.5+), else MSA-3, else the ERR-3 code's label.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfi.transforms.hl7.message import parse_message

ACCEPTED = frozenset({"AA", "CA"})


@dataclass(frozen=True, slots=True)
class AckReading:
    code: str  # MSA-1, upper-case; "" when the answer is not an ACK
    control_id: str  # MSA-2: the control id acknowledged
    text: str  # why, for a refusal ('' when accepted without comment)

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED


def read_ack(raw: bytes, default_charset: str = "UNICODE UTF-8") -> AckReading:
    """MSA-1, MSA-2 and the refusal's text; an unreadable answer is code '' with why.

    An ACK without MSH-18 is read in `default_charset`: the charset of the message it
    answers, which is what a DPI that does not declare one writes back.
    """
    try:
        try:
            msg = parse_message(raw, default_charset)
        except Exception:  # an ACK our intake would refuse may still say AA or AE
            msg = parse_message(raw, default_charset, strict=False)
    except Exception as exc:  # whatever the peer sent, the caller gets a reason
        return AckReading("", "", f"unreadable acknowledgement ({exc}): {raw[:200]!r}")
    msa = msg.first("MSA")
    if msa is None:
        return AckReading("", "", f"answer has no MSA segment: {raw[:200]!r}")
    code = msa.get(1).strip().upper()
    texts: list[str] = []
    for err in msg.all("ERR"):
        text = err.get(8) or err.get(3, 2) or err.get(1, 4, 2)
        if text and text not in texts:
            texts.append(text)
    if not texts and msa.get(3):
        texts.append(msa.get(3))
    return AckReading(code, msa.get(2), "; ".join(texts))
