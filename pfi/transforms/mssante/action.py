"""What a transmission does to a document: first sending, replacement or deletion.

One notion, three spellings across the CI-SIS volets: the XDM extra metadata "action"
(absent, C, D), the HL7 OBX-11 result status (F, C, D), ORC-1 (NW, RO, CA) and the MDM
event (T02, T10, T04).
"""

from __future__ import annotations

from enum import StrEnum


class DocumentAction(StrEnum):
    NEW = "new"
    REPLACE = "replace"
    DELETE = "delete"

    @property
    def xdm_code(self) -> str:
        """Value of the XDM "action" extra metadata ('' for a first sending)."""
        return {"new": "", "replace": "C", "delete": "D"}[self.value]

    @property
    def obx11(self) -> str:
        return {"new": "F", "replace": "C", "delete": "D"}[self.value]

    @property
    def orc1(self) -> str:
        return {"new": "NW", "replace": "RO", "delete": "CA"}[self.value]

    @property
    def mdm_event(self) -> str:
        return {"new": "T02", "replace": "T10", "delete": "T04"}[self.value]

    @classmethod
    def from_xdm_code(cls, code: str) -> DocumentAction:
        code = code.strip().upper()
        if code in ("", "N", "F"):
            return cls.NEW
        if code == "C":
            return cls.REPLACE
        if code == "D":
            return cls.DELETE
        raise ValueError(f"XDM action {code!r} is not C (replace) nor D (delete)")

    @classmethod
    def from_obx11(cls, status: str) -> DocumentAction:
        return {"F": cls.NEW, "C": cls.REPLACE, "D": cls.DELETE}[status.strip().upper()]
