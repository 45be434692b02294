"""The three roles of the ops API, their order (admin ⊇ operator ⊇ viewer), and the
authenticated caller holding one.

- viewer: reads messages, patients, documents and delivery states (every read of
  patient data is audited).
- operator: what a viewer does, plus the acts of the on-call team: release a hold,
  replay a failed delivery or a dead letter.
- admin: what an operator does, plus reading the audit trail and managing access.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pfi.store.models.users import ROLE_NAMES


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return ROLE_NAMES.index(self.value)

    def covers(self, needed: Role) -> bool:
        """True when this role may do what `needed` may do."""
        return self.rank >= needed.rank


assert tuple(r.value for r in Role) == ROLE_NAMES, "Role and the users table disagree"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as handlers and the audit trail see it."""

    name: str
    role: Role
    token_id: str
