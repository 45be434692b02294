"""A fast read of what intake needs: MSH and the patient identifiers, without a full parse.

Intake must answer thousands of messages a second; a full HL7 tree (hl7apy measured
~60 msgs/s here, python-hl7 ~1,200/s) is downstream work. This scan splits only the
MSH and PID segments and decodes the message once in its declared charset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pfi.transforms.hl7.charset import decode
from pfi.transforms.hl7.errors import ErrorCode, ErrorLocation, Hl7Error
from pfi.transforms.hl7.escape import unescape

#: MSH-12 versions PFI reads (first component; PAM-FR sends "2.5^FRA^2.11").
SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6"})
#: Message types whose PID-3 is required to route them to a patient.
PID_REQUIRED = frozenset({"ADT", "ORU"})


@dataclass(frozen=True, slots=True)
class Identifier:
    """A CX identifier: value, assigning authority (namespace and OID), identifier type."""

    value: str
    authority: str = ""
    authority_oid: str = ""
    type_code: str = ""


@dataclass(frozen=True, slots=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """MSH, plus PID-3 / PID-32, as read from one message."""

    separators: Separators
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_datetime: str
    message_code: str
    trigger_event: str
    message_structure: str
    control_id: str
    processing_id: str
    version: str
    version_field: str
    accept_ack_type: str
    application_ack_type: str
    charset: str
    declared_charset: str
    profiles: tuple[str, ...]
    patient_ids: tuple[Identifier, ...] = field(default=())
    identity_status: str = ""
    segment_ids: tuple[str, ...] = field(default=())
    msh_fields: tuple[str, ...] = field(default=(), repr=False)

    @property
    def message_type(self) -> str:
        return (
            f"{self.message_code}^{self.trigger_event}" if self.trigger_event else self.message_code
        )

    @property
    def sender(self) -> str:
        """The business identity of the sender: MSH-3 and MSH-4."""
        return f"{self.sending_application}|{self.sending_facility}"

    @property
    def enhanced_ack(self) -> bool:
        return bool(self.accept_ack_type or self.application_ack_type)

    def patient_key(self) -> str:
        """The first identifier of PID-3 qualified by its authority, for partitioning."""
        if not self.patient_ids:
            return ""
        first = self.patient_ids[0]
        return f"{first.value}^{first.authority or first.authority_oid}"


def split_segments(raw: bytes) -> list[bytes]:
    """Segments separated by CR, LF or CRLF; empty lines dropped."""
    return [s for s in raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r") if s.strip()]


def read_separators(raw: bytes) -> Separators:
    if len(raw) < 8 or not raw.startswith(b"MSH"):
        raise Hl7Error(
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "message does not start with an MSH segment",
            ErrorLocation("MSH"),
        )
    fs = chr(raw[3])
    end = raw.find(raw[3:4], 4)
    enc = raw[4:end].decode("latin-1") if end > 0 else ""
    if fs.isalnum() or len(enc) < 3 or len(set(enc[:4] + fs)) != len(enc[:4]) + 1:
        raise Hl7Error(
            ErrorCode.DATA_TYPE_ERROR,
            f"invalid MSH-1/MSH-2 separators {fs + enc!r}",
            ErrorLocation("MSH", field=2),
        )
    return Separators(
        field=fs,
        component=enc[0],
        repetition=enc[1],
        escape=enc[2] if len(enc) > 2 else "",
        subcomponent=enc[3] if len(enc) > 3 else "&",
    )


def read_header(raw: bytes, default_charset: str) -> MessageHeader:
    """Read MSH and PID-3/PID-32 or raise `Hl7Error` saying exactly what is wrong."""
    return scan(raw, default_charset)[0]


def scan_msh_only(raw: bytes) -> MessageHeader:
    """A lenient read of MSH (and PID) for addressing a NACK to a message we refuse:
    no version or required-field checks, undecodable bytes replaced."""
    return scan(raw, "8859/1", strict=False)[0]


def scan(
    raw: bytes, default_charset: str, *, strict: bool = True
) -> tuple[MessageHeader, list[str]]:
    """The header and the decoded segments (text), for callers that go on parsing."""
    raw = raw.lstrip(b"\r\n\t \xef\xbb\xbf")
    seps = read_separators(raw)
    msh_end = _segment_end(raw)
    msh_raw = raw[:msh_end].decode("latin-1").split(seps.field)
    # MSH-1 is the separator itself: msh[n] is MSH-n for n >= 2 after this shift.
    msh = ["MSH", seps.field, *msh_raw[1:]]
    charset_field = _get(msh, 18).split(seps.repetition)[0].strip()
    charset = charset_field or default_charset
    if strict:
        text = decode(raw, charset)
    else:
        try:
            text = decode(raw, charset)
        except Hl7Error:
            text = raw.decode("latin-1")
    segments_text = split_segments_text(text)
    msh = ["MSH", seps.field, *segments_text[0].split(seps.field)[1:]]

    def comp(value: str, i: int) -> str:
        if i == 0:
            return unescape(value.partition(seps.component)[0], seps)
        parts = value.split(seps.component)
        return unescape(parts[i], seps) if i < len(parts) else ""

    msg_type = _get(msh, 9)
    if strict and not msg_type.strip(seps.component):
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "MSH-9 (message type) is empty",
            ErrorLocation("MSH", field=9),
        )
    control_id = unescape(_get(msh, 10), seps).strip()
    if strict and not control_id:
        raise Hl7Error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "MSH-10 (message control id) is empty",
            ErrorLocation("MSH", field=10),
        )
    version_field = _get(msh, 12)
    version = comp(version_field, 0).strip()
    segment_ids = tuple(s[:3] for s in segments_text)
    type_parts = [unescape(p, seps).strip().upper() for p in msg_type.split(seps.component)]
    type_parts += ["", "", ""]
    code = type_parts[0]
    header = MessageHeader(
        separators=seps,
        sending_application=comp(_get(msh, 3), 0),
        sending_facility=comp(_get(msh, 4), 0),
        receiving_application=comp(_get(msh, 5), 0),
        receiving_facility=comp(_get(msh, 6), 0),
        message_datetime=comp(_get(msh, 7), 0),
        message_code=code,
        trigger_event=type_parts[1],
        message_structure=type_parts[2],
        control_id=control_id,
        processing_id=comp(_get(msh, 11), 0),
        version=version,
        version_field=version_field,
        accept_ack_type=_get(msh, 15).strip().upper(),
        application_ack_type=_get(msh, 16).strip().upper(),
        charset=charset,
        declared_charset=charset_field,
        profiles=tuple(
            unescape(rep, seps) for rep in _get(msh, 21).split(seps.repetition) if rep.strip()
        ),
        segment_ids=segment_ids,
        msh_fields=tuple(msh),
        **_patient(segments_text, seps),
    )
    if not strict:
        return header, segments_text
    if version not in SUPPORTED_VERSIONS:
        raise Hl7Error(
            ErrorCode.UNSUPPORTED_VERSION_ID,
            f"HL7 version {version or '(empty)'!r} is not supported "
            f"(accepted: {', '.join(sorted(SUPPORTED_VERSIONS))})",
            ErrorLocation("MSH", field=12),
            reject=True,
        )
    if code in PID_REQUIRED:
        if "PID" not in segment_ids:
            raise Hl7Error(
                ErrorCode.SEGMENT_SEQUENCE_ERROR,
                f"{header.message_type} requires a PID segment",
                ErrorLocation("PID"),
            )
        if not header.patient_ids:
            raise Hl7Error(
                ErrorCode.REQUIRED_FIELD_MISSING,
                "PID-3 (patient identifier list) is empty",
                ErrorLocation("PID", field=3),
            )
    return header, segments_text


def _segment_end(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0]
    return min(ends) if ends else len(raw)


def split_segments_text(text: str) -> list[str]:
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]


def _get(fields: list[str], n: int) -> str:
    return fields[n] if n < len(fields) else ""


def _patient(segments: list[str], seps: Separators) -> dict[str, object]:
    prefix = "PID" + seps.field
    pid = next((s for s in segments if s.startswith(prefix)), None)
    if pid is None:
        return {}
    fields = pid.split(seps.field)
    ids: list[Identifier] = []
    for rep in _get(fields, 3).split(seps.repetition):
        comps = rep.split(seps.component)
        value = unescape(comps[0], seps).strip()
        if not value:
            continue
        hd = _get(comps, 3).split(seps.subcomponent)
        ids.append(
            Identifier(
                value=value,
                authority=unescape(hd[0], seps),
                authority_oid=unescape(_get(hd, 1), seps),
                type_code=unescape(_get(comps, 4), seps),
            )
        )
    return {
        "patient_ids": tuple(ids),
        "identity_status": unescape(_get(fields, 32).split(seps.component)[0], seps).strip(),
    }
