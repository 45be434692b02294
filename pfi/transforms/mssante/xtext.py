"""RFC 3461 xtext, the encoding of the DSN parameters ENVID and ORCPT.

PFI sets ENVID to its Message-ID so that a bounce that does not return the original
headers can still be tied to the message; xtext keeps '+', '=' and controls out of the
SMTP command line.
"""

from __future__ import annotations

import re

_HEX = re.compile(r"\+([0-9A-Fa-f]{2})")


def xtext_encode(value: str) -> str:
    out = []
    for char in value:
        code = ord(char)
        if 33 <= code <= 126 and char not in "+=":
            out.append(char)
        else:
            out.extend(f"+{b:02X}" for b in char.encode("utf-8"))
    return "".join(out)


def xtext_decode(value: str) -> str:
    raw = _HEX.sub(lambda m: "\x00" + m.group(1), value.strip())
    if "\x00" not in raw:
        return raw
    data = bytearray()
    parts = raw.split("\x00")
    data += parts[0].encode("utf-8")
    for part in parts[1:]:
        data.append(int(part[:2], 16))
        data += part[2:].encode("utf-8")
    return data.decode("utf-8", "replace")
