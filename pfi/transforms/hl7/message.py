"""A parsed HL7 v2 message: segments, fields, repetitions, components, unescaped on read.

Values are split lazily and unescaped when read, so a 10 MB ORU with a base64 PDF costs
one split per segment until someone asks for the OBX-5 that holds the PDF.
Positions follow HL7 notation: `PID-5.1` is field 5, component 1, 1-based throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pfi.transforms.hl7.charset import codec_for
from pfi.transforms.hl7.escape import unescape
from pfi.transforms.hl7.header import MessageHeader, Separators, scan


@dataclass(slots=True)
class Segment:
    """One segment; `fields[n]` is field n (for MSH, fields[1] is the field separator)."""

    name: str
    fields: list[str]
    seps: Separators = field(repr=False)
    codec: str = field(default="latin-1", repr=False)

    @classmethod
    def from_text(cls, text: str, seps: Separators, codec: str = "latin-1") -> Segment:
        parts = text.split(seps.field)
        if parts[0] == "MSH":
            parts = ["MSH", seps.field, *parts[1:]]
        return cls(parts[0], parts, seps, codec)

    def raw(self, n: int) -> str:
        """Field n as sent (escaped, all repetitions)."""
        return self.fields[n] if n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        raw = self.raw(n)
        if self.name == "MSH" and n in (1, 2):
            return [raw]
        return raw.split(self.seps.repetition) if raw else []

    def components(self, n: int, rep: int = 1) -> list[str]:
        """Unescaped components of repetition `rep` of field n (subcomponents kept joined)."""
        reps = self.repetitions(n)
        if rep > len(reps):
            return []
        return [self._text(c) for c in reps[rep - 1].split(self.seps.component)]

    def get(self, n: int, component: int = 1, subcomponent: int | None = None, rep: int = 1) -> str:
        """One unescaped value; '' when absent. `get(3, 4, 2)` is CX.4.2 (authority OID)."""
        reps = self.repetitions(n)
        if rep > len(reps):
            return ""
        comps = reps[rep - 1].split(self.seps.component)
        if component > len(comps):
            return ""
        value = comps[component - 1]
        if subcomponent is not None:
            subs = value.split(self.seps.subcomponent)
            value = subs[subcomponent - 1] if subcomponent <= len(subs) else ""
        return self._text(value)

    def text(self, n: int, rep: int = 1) -> str:
        """A whole field repetition unescaped (for ST/TX/FT and free text)."""
        reps = self.repetitions(n)
        return self._text(reps[rep - 1]) if rep <= len(reps) else ""

    def _text(self, value: str) -> str:
        return unescape(value, self.seps, self.codec)

    def __str__(self) -> str:
        if self.name == "MSH":
            return self.seps.field.join(["MSH", *self.fields[2:]])
        return self.seps.field.join(self.fields)


@dataclass(slots=True)
class Hl7Message:
    header: MessageHeader
    segments: list[Segment]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def get(self, path: str, rep: int = 1) -> str:
        """`msg.get("PID-5.2")`: first segment of that name, field 5, component 2."""
        name, _, position = path.partition("-")
        seg = self.first(name)
        if seg is None:
            return ""
        field_s, _, comp_s = position.partition(".")
        comp_s, _, sub_s = comp_s.partition(".")
        return seg.get(
            int(field_s), int(comp_s) if comp_s else 1, int(sub_s) if sub_s else None, rep
        )

    def to_er7(self) -> str:
        return "\r".join(str(s) for s in self.segments) + "\r"


def parse_message(
    raw: bytes, default_charset: str = "8859/1", *, strict: bool = True
) -> Hl7Message:
    """Parse a whole message; raises `Hl7Error` for what intake would NACK.

    `strict=False` reads what can be read (e.g. an ACK echoing a version we refused).
    """
    header, segments = scan(raw, default_charset, strict=strict)
    codec = codec_for(header.charset) if strict else "latin-1"
    return Hl7Message(header, [Segment.from_text(s, header.separators, codec) for s in segments])
