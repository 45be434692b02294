"""HL7 v2 escape sequences (chapter 2.7): reading them in values, writing them out."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pfi.transforms.hl7.header import Separators

_FORMATTING = {".br": "\n", ".sp": "\n", "H": "", "N": "", ".fi": "", ".nf": "", ".in": ""}


def unescape(value: str, seps: Separators, codec: str = "latin-1") -> str:
    """Replace \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ and formatting sequences in one value."""
    esc = seps.escape
    if not esc or esc not in value:
        return value
    pattern = re.compile(re.escape(esc) + r"([^" + re.escape(esc) + r"]*)" + re.escape(esc))

    def repl(m: re.Match[str]) -> str:
        seq = m.group(1)
        simple = {
            "F": seps.field,
            "S": seps.component,
            "T": seps.subcomponent,
            "R": seps.repetition,
            "E": esc,
        }
        if seq in simple:
            return simple[seq]
        if seq.startswith("X") and len(seq) > 1:
            try:
                return bytes.fromhex(seq[1:]).decode(codec)
            except (ValueError, UnicodeDecodeError):
                return m.group(0)
        if seq in _FORMATTING:
            return _FORMATTING[seq]
        if seq[:1] in ("C", "M", "Z") or seq.startswith((".sk", ".ti", ".ce")):
            return ""  # charset switches and local escapes carry no text
        return m.group(0)

    return pattern.sub(repl, value)


def escape(value: str, seps: Separators) -> str:
    """Escape the delimiters of `value` so it can sit inside one HL7 field or component."""
    esc = seps.escape or "\\"
    if not any(
        c in value
        for c in (esc, seps.field, seps.component, seps.subcomponent, seps.repetition, "\r", "\n")
    ):
        return value  # the common case: nothing to escape
    out = value.replace(esc, f"{esc}E{esc}")
    for char, code in (
        (seps.field, "F"),
        (seps.component, "S"),
        (seps.subcomponent, "T"),
        (seps.repetition, "R"),
    ):
        out = out.replace(char, f"{esc}{code}{esc}")
    return (
        out.replace("\r\n", f"{esc}.br{esc}")
        .replace("\n", f"{esc}.br{esc}")
        .replace("\r", f"{esc}.br{esc}")
    )
