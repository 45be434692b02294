"""The imported MSSanté annuaire extract: who has which secure mailbox.

An import is a generation (`annuaire_imports`): its professionals and mailboxes are
loaded under its id while readers keep using the active generation, then one short
transaction makes it the active one. A reader therefore never sees half an import, and
a failed or interrupted import leaves the previous generation in service (its rows are
deleted by the next import). Lines are not grouped in memory: one row per professional
(national id) and one per mailbox, keyed by the generation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pfi.store.models.base import Base, BigId, Json, UtcDateTime, utcnow


class AnnuaireImport(Base):
    """One load of the extract. status: loading → active → replaced, or failed."""

    __tablename__ = "annuaire_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="loading")
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lines_read: Mapped[int] = mapped_column(default=0)
    professionals: Mapped[int] = mapped_column(default=0)
    mailboxes: Mapped[int] = mapped_column(default=0)
    problems: Mapped[int] = mapped_column(default=0)
    #: the first problems ("line N: reason"), for `pfi annuaire status`
    problem_sample: Mapped[list[str] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_annuaire_imports_active", "active"),)


class AnnuaireProfessional(Base):
    """A professional of one generation: national id (idNat: 8 + RPPS, 0 + ADELI)."""

    __tablename__ = "annuaire_professionals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("annuaire_imports.id", ondelete="CASCADE")
    )
    national_id: Mapped[str] = mapped_column(String(40))
    id_type: Mapped[str] = mapped_column(String(4), default="")  # 8 RPPS, 0 ADELI
    identifier: Mapped[str] = mapped_column(String(40), default="")  # RPPS / ADELI number
    civility: Mapped[str] = mapped_column(String(20), default="")
    family_name: Mapped[str] = mapped_column(String(200), default="")
    given_name: Mapped[str] = mapped_column(String(200), default="")
    profession_code: Mapped[str] = mapped_column(String(20), default="")
    profession_label: Mapped[str] = mapped_column(String(200), default="")
    specialty_code: Mapped[str] = mapped_column(String(20), default="")
    specialty_label: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (
        Index("ix_annuaire_professionals_import_national", "import_id", "national_id", unique=True),
        Index("ix_annuaire_professionals_import_identifier", "import_id", "identifier"),
    )


class AnnuaireMailbox(Base):
    """A mailbox of one generation; national_id '' for an organisational/applicative one."""

    __tablename__ = "annuaire_mailboxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("annuaire_imports.id", ondelete="CASCADE")
    )
    national_id: Mapped[str] = mapped_column(String(40), default="")
    address: Mapped[str] = mapped_column(String(320))
    address_key: Mapped[str] = mapped_column(String(320))  # lower-cased, for look-ups
    kind: Mapped[str] = mapped_column(String(8), default="")  # PER, ORG, APP
    structure_id_type: Mapped[str] = mapped_column(String(8), default="")
    structure_id: Mapped[str] = mapped_column(String(40), default="")
    service: Mapped[str] = mapped_column(String(300), default="")
    structure_name: Mapped[str] = mapped_column(String(300), default="")
    dematerialisation: Mapped[bool | None] = mapped_column(Boolean)
    city_line: Mapped[str] = mapped_column(String(200), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    department: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)  # address lines, trade name

    __table_args__ = (
        Index("ix_annuaire_mailboxes_import_national", "import_id", "national_id"),
        Index("ix_annuaire_mailboxes_import_address", "import_id", "address_key"),
    )
