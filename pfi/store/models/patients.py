"""Patients as the hospital's identity feeds describe them, INS and history included."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pfi.store.models.base import Base, BigId, Json, UtcDateTime, utcnow


class Patient(Base):
    """Identity traits of one patient.

    `qualified` is derived from PID-32 and the presence of an INS: only a qualified INS
    goes into a DMP submission or a patient MSSanté address. `event_at` is the time of
    the event that last wrote the traits, so that an older event arriving late does not
    overwrite newer data. A merged (absorbed) patient keeps its row and points at the
    survivor with `merged_into_id`.
    """

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ins: Mapped[str | None] = mapped_column(String(32), index=True)
    ins_oid: Mapped[str | None] = mapped_column(String(64))
    identity_status: Mapped[str] = mapped_column(String(8), default="")
    qualified: Mapped[bool] = mapped_column(default=False)
    birth_name: Mapped[str] = mapped_column(String(200), default="")
    used_name: Mapped[str] = mapped_column(String(200), default="")
    first_name: Mapped[str] = mapped_column(String(200), default="")
    first_names: Mapped[str] = mapped_column(String(400), default="")
    birth_date: Mapped[date | None]
    sex: Mapped[str] = mapped_column(String(2), default="")
    birth_place: Mapped[str] = mapped_column(String(16), default="")
    attending: Mapped[dict[str, Any] | None] = mapped_column(Json)
    pam: Mapped[dict[str, Any] | None] = mapped_column(Json)
    event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    merged_into_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    identifiers: Mapped[list[PatientIdentifier]] = relationship(
        back_populates="patient", cascade="all, delete-orphan"
    )


class PatientIdentifier(Base):
    """An identifier from PID-3 (IPP per assigning authority, INS, NDA...)."""

    __tablename__ = "patient_identifiers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    authority: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(String(64))
    authority_oid: Mapped[str] = mapped_column(String(64), default="")
    type_code: Mapped[str] = mapped_column(String(8), default="")

    patient: Mapped[Patient] = relationship(back_populates="identifiers")

    __table_args__ = (
        UniqueConstraint("authority", "value"),
        Index("ix_patient_identifiers_value", "value"),
    )


class PatientEvent(Base):
    """One change of identity (or an event ignored because older data was newer)."""

    __tablename__ = "patient_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    trigger: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(BigId)
    outcome: Mapped[str] = mapped_column(String(16))
    changes: Mapped[dict[str, Any]] = mapped_column(Json)


class PatientLink(Base):
    """A24 links two patient records as the same person; A37 removes the link."""

    __tablename__ = "patient_links"

    patient_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    linked_patient_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
