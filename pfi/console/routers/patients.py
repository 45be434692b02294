"""`/api/patients/{ipp_or_ins}`: a patient as the identity feeds describe them.

The same content as `pfi patients show`: identity traits, INS and whether it is
qualified, identifiers, PAM data, merges and links, and the history of changes. A
lookup is audited whether or not it finds someone: looking for a person is itself
something the DPO may have to account for.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from pfi.console.audit import record_read
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Viewer
from pfi.identity import queries
from pfi.store.models import Patient

router = APIRouter(prefix="/patients", tags=["patients"], responses=AUTH_RESPONSES)


class PatientIdentifierView(BaseModel):
    """An identifier from PID-3: IPP per assigning authority, INS, NDA..."""

    model_config = ConfigDict(from_attributes=True)

    value: str
    authority: str
    authority_oid: str
    type_code: str


class PatientEventView(BaseModel):
    """One change of identity, or an event ignored because newer data was there."""

    model_config = ConfigDict(from_attributes=True)

    recorded_at: datetime
    event_at: datetime | None
    trigger: str
    message_id: int | None
    outcome: str
    changes: dict[str, Any]


class PatientView(BaseModel):
    """Identity traits. Only a `qualified` INS may go to the DMP or a patient MSSanté
    address; `identity_status` is PID-32 (PROV, VALI, QUAL, ...)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    ins: str | None
    ins_oid: str | None
    identity_status: str
    qualified: bool
    birth_name: str
    used_name: str
    first_name: str
    first_names: str
    birth_date: date | None
    sex: str
    birth_place: str
    attending: dict[str, Any] | None
    pam: dict[str, Any] | None
    event_at: datetime | None
    created_at: datetime
    updated_at: datetime
    identifiers: list[PatientIdentifierView]
    absorbed_patient_ids: list[int]
    """Patients merged into this one (A40)."""
    linked_patient_ids: list[int]
    """Patients linked to this one as the same person (A24)."""
    history: list[PatientEventView]


class PatientLookup(BaseModel):
    key: str
    """The IPP or INS that was looked up."""
    patients: list[PatientView]
    """Usually one; several when the key is an IPP of several authorities. Merged
    patients are resolved to the survivor."""


@router.get(
    "/{key}",
    response_model=PatientLookup,
    summary="A patient by IPP (any authority) or INS",
    responses={404: {"description": "no patient has this IPP or INS"}},
)
def get_patient(
    principal: Viewer,
    db: DatabaseDep,
    key: Annotated[str, Path(min_length=1, max_length=64, description="an IPP or an INS")],
) -> PatientLookup:
    with db.reader() as session:
        patients = [_patient_view(session, p) for p in queries.find_patients(session, key)]
    record_read(
        db,
        principal,
        "patient.read",
        "patient",
        key,
        details={
            "patient_ids": [p.id for p in patients],
            "ins": [p.ins for p in patients if p.ins],
        },
    )
    if not patients:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no patient with IPP or INS {key!r}")
    return PatientLookup(key=key, patients=patients)


def _patient_view(session: Session, patient: Patient) -> PatientView:
    columns = Patient.__table__.columns
    traits = {name: getattr(patient, name) for name in PatientView.model_fields if name in columns}
    return PatientView(
        **traits,
        identifiers=[PatientIdentifierView.model_validate(i) for i in patient.identifiers],
        absorbed_patient_ids=queries.absorbed_into(session, patient.id),
        linked_patient_ids=queries.links(session, patient.id),
        history=[PatientEventView.model_validate(e) for e in queries.history(session, patient.id)],
    )
