"""The error a malformed or unacceptable HL7 message produces, ready for an ERR segment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes)."""

    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION_ID = 203
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class ErrorLocation:
    """ERR-2 (ERL): segment id, sequence, field position, repetition, component."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None

    def __str__(self) -> str:
        out = self.segment
        if self.field is not None:
            out += f"-{self.field}"
            if self.component is not None:
                out += f".{self.component}"
        return out


class Hl7Error(Exception):
    """A message PFI will not accept as such; `reject=True` means AR rather than AE.

    `application_code` is the ERR-5 code when the condition is an application error (207)
    with a code of its own, e.g. the CI-SIS transmission volet's applicationErrorCondition
    table (903 "INS absent from the document", 904 "INS does not match").
    """

    def __init__(
        self,
        code: ErrorCode,
        text: str,
        location: ErrorLocation | None = None,
        *,
        reject: bool = False,
        application_code: str = "",
    ) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.location = location
        self.reject = reject
        self.application_code = application_code

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.code.value} {self.code.text}{where}: {self.text}"
