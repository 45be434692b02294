"""Looking a patient up the way ops do: by an IPP (any authority) or by INS."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pfi.store.models import Patient, PatientEvent, PatientIdentifier, PatientLink


def find_patients(session: Session, key: str) -> list[Patient]:
    """Patients whose IPP (any authority) or INS is `key`, merged ones resolved."""
    by_ipp = select(PatientIdentifier.patient_id).where(PatientIdentifier.value == key)
    rows = session.scalars(
        select(Patient).where(or_(Patient.id.in_(by_ipp), Patient.ins == key)).order_by(Patient.id)
    ).all()
    out: list[Patient] = []
    for patient in rows:
        while patient.merged_into_id is not None:
            survivor = session.get(Patient, patient.merged_into_id)
            if survivor is None:
                break
            patient = survivor
        if patient not in out:
            out.append(patient)
    return out


def history(session: Session, patient_id: int) -> list[PatientEvent]:
    return list(
        session.scalars(
            select(PatientEvent)
            .where(PatientEvent.patient_id == patient_id)
            .order_by(PatientEvent.recorded_at, PatientEvent.id)
        )
    )


def links(session: Session, patient_id: int) -> list[int]:
    rows = session.execute(
        select(PatientLink.patient_id, PatientLink.linked_patient_id).where(
            or_(PatientLink.patient_id == patient_id, PatientLink.linked_patient_id == patient_id)
        )
    ).all()
    return [b if a == patient_id else a for a, b in rows]


def absorbed_into(session: Session, patient_id: int) -> list[int]:
    return list(session.scalars(select(Patient.id).where(Patient.merged_into_id == patient_id)))
