"""A coded value as XDS carries it: code, coding scheme, display name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    """XDS classification value (nodeRepresentation, codingScheme slot, Name)."""

    code: str
    scheme: str
    display: str = ""

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "scheme": self.scheme, "display": self.display}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Code:
        return cls(data["code"], data["scheme"], data.get("display", ""))
