"""HL7 character sets (MSH-18, table 0211) and decoding of the message bytes."""

from __future__ import annotations

from pfi.transforms.hl7.errors import ErrorCode, ErrorLocation, Hl7Error

#: MSH-18 values we accept and the Python codec for each.
CODECS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",  # frequent in the field although not in table 0211
}


def codec_for(charset: str) -> str:
    try:
        return CODECS[charset.strip().upper()]
    except KeyError:
        raise Hl7Error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"unsupported character set {charset!r} (MSH-18 accepts: {', '.join(CODECS)})",
            ErrorLocation("MSH", field=18),
        ) from None


def decode(raw: bytes, charset: str) -> str:
    """Decode the whole message in `charset`; a byte that does not fit is an AE, not a guess."""
    codec = codec_for(charset)
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"byte 0x{raw[exc.start]:02X} at offset {exc.start} is not valid {charset}",
            ErrorLocation("MSH", field=18),
        ) from None
