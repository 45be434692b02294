"""The patient registry: find, create, update, merge and link patients in the store.

Rules that matter to a hospital:
- A patient is found by a local identifier (IPP per assigning authority) first, then
  by INS. A merged (absorbed) record resolves to its survivor.
- An event older than the data already held (EVN-2, else MSH-7) does not overwrite the
  traits; it is kept in the history as "stale". New identifiers it brings are added.
- Every change of identity is a history row with the before/after values.
- A40: the absorbed record's identifiers, documents and pending deliveries move to the
  survivor (every table with a foreign key to patients.id follows, see `_repoint`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pfi.identity.traits import PatientTraits
from pfi.store.models import (
    Base,
    Patient,
    PatientEvent,
    PatientIdentifier,
    PatientLink,
    utcnow,
)
from pfi.transforms.hl7 import Identifier

log = logging.getLogger(__name__)

#: Tables whose patient reference is identity bookkeeping, not "the patient's things".
_NOT_FOLLOWING = {"patient_identifiers", "patient_history", "patient_links", "patients"}


def authority_key(identifier: Identifier) -> str:
    return identifier.authority or identifier.authority_oid


class PatientRegistry:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- lookup --------------------------------------------------------------------
    def find(
        self,
        traits: PatientTraits | None = None,
        *,
        identifiers: Iterable[Identifier] = (),
        ins: str | None = None,
    ) -> Patient | None:
        idents = list(identifiers)
        if traits is not None:
            idents += list(traits.local_identifiers)
            ins = ins or (traits.ins.value if traits.ins else None)
        for ident in idents:
            if ident.type_code == "INS":
                ins = ins or ident.value
                continue
            row = self.session.scalar(
                select(PatientIdentifier).where(
                    PatientIdentifier.authority == authority_key(ident),
                    PatientIdentifier.value == ident.value,
                )
            )
            if row is not None:
                return self.survivor(row.patient)
        if ins:
            patient = self.session.scalar(
                select(Patient)
                .where(Patient.ins == ins, Patient.merged_into_id.is_(None))
                .order_by(Patient.id)
            )
            if patient is not None:
                return patient
        return None

    def survivor(self, patient: Patient) -> Patient:
        seen = {patient.id}
        while patient.merged_into_id is not None:
            nxt = self.session.get(Patient, patient.merged_into_id)
            if nxt is None or nxt.id in seen:
                break
            seen.add(nxt.id)
            patient = nxt
        return patient

    # -- changes -------------------------------------------------------------------
    def upsert(
        self,
        traits: PatientTraits,
        *,
        trigger: str,
        event_at: datetime | None,
        message_id: int | None,
        extra: dict[str, Any] | None = None,
    ) -> Patient:
        """Create the patient or apply the traits (unless the event is older)."""
        patient = self.find(traits)
        if patient is None:
            patient = Patient()
            self.session.add(patient)
            self._apply(patient, traits, extra)
            patient.event_at = event_at
            self.session.flush()
            self._add_identifiers(patient, traits.local_identifiers)
            self._history(
                patient,
                trigger,
                event_at,
                message_id,
                "created",
                {k: [None, v] for k, v in traits.comparable().items() if v},
            )
            return patient
        self._add_identifiers(patient, traits.local_identifiers)
        if event_at is not None and patient.event_at is not None and event_at < patient.event_at:
            self._history(
                patient,
                trigger,
                event_at,
                message_id,
                "stale",
                {"ignored": traits.comparable(), "held_event_at": patient.event_at.isoformat()},
            )
            return patient
        before = self.traits_of(patient)
        self._apply(patient, traits, extra)
        if event_at is not None:
            patient.event_at = event_at
        after = self.traits_of(patient)
        changes = {k: [before[k], v] for k, v in after.items() if before.get(k) != v}
        if extra:
            changes.update(
                {k: ["(changed)", "(see patient)"] for k in extra if extra[k] is not None}
            )
        self._history(
            patient, trigger, event_at, message_id, "updated" if changes else "unchanged", changes
        )
        return patient

    def merge(
        self,
        survivor_traits: PatientTraits,
        absorbed_ids: Iterable[Identifier],
        *,
        trigger: str,
        event_at: datetime | None,
        message_id: int | None,
    ) -> Patient:
        survivor = self.upsert(
            survivor_traits, trigger=trigger, event_at=event_at, message_id=message_id
        )
        absorbed = self.find(identifiers=absorbed_ids)
        if absorbed is None or absorbed.id == survivor.id:
            self._history(
                survivor,
                trigger,
                event_at,
                message_id,
                "merge-noop",
                {"absorbed": [f"{i.value}^{authority_key(i)}" for i in absorbed_ids]},
            )
            return survivor
        moved = self._repoint(absorbed.id, survivor.id)
        for ident in list(absorbed.identifiers):
            ident.patient_id = survivor.id
        absorbed.merged_into_id = survivor.id
        absorbed.updated_at = utcnow()
        self._history(
            survivor,
            trigger,
            event_at,
            message_id,
            "merged",
            {"absorbed_patient": [None, absorbed.id], "moved": moved},
        )
        self._history(
            absorbed,
            trigger,
            event_at,
            message_id,
            "absorbed",
            {"merged_into": [None, survivor.id]},
        )
        return survivor

    def change_identifier(
        self,
        new_traits: PatientTraits,
        old: Iterable[Identifier],
        *,
        trigger: str,
        event_at: datetime | None,
        message_id: int | None,
    ) -> Patient | None:
        """A47: the identifier in MRG-1 is replaced by the one in PID-3."""
        old_list = list(old)
        patient = self.find(identifiers=old_list)
        if patient is None:
            return self.upsert(
                new_traits, trigger=trigger, event_at=event_at, message_id=message_id
            )
        changes: dict[str, Any] = {}
        for old_id in old_list:
            row = self.session.scalar(
                select(PatientIdentifier).where(
                    PatientIdentifier.authority == authority_key(old_id),
                    PatientIdentifier.value == old_id.value,
                )
            )
            replacement = next(
                (
                    n
                    for n in new_traits.local_identifiers
                    if authority_key(n) == authority_key(old_id)
                ),
                None,
            )
            if row is not None and replacement is not None:
                changes[f"identifier {authority_key(old_id)}"] = [row.value, replacement.value]
                row.value = replacement.value
                row.type_code = replacement.type_code or row.type_code
        self.session.flush()
        self._history(patient, trigger, event_at, message_id, "identifier-changed", changes)
        return self.upsert(new_traits, trigger=trigger, event_at=event_at, message_id=message_id)

    def link(
        self,
        a: PatientTraits,
        b: PatientTraits,
        *,
        unlink: bool,
        trigger: str,
        event_at: datetime | None,
        message_id: int | None,
    ) -> None:
        pa = self.upsert(a, trigger=trigger, event_at=event_at, message_id=message_id)
        pb = self.upsert(b, trigger=trigger, event_at=event_at, message_id=message_id)
        first, second = sorted((pa.id, pb.id))
        existing = self.session.get(PatientLink, (first, second))
        if unlink and existing is not None:
            self.session.delete(existing)
        elif not unlink and existing is None:
            self.session.add(PatientLink(patient_id=first, linked_patient_id=second))
        outcome = "unlinked" if unlink else "linked"
        for p, other in ((pa, pb), (pb, pa)):
            self._history(
                p, trigger, event_at, message_id, outcome, {"other_patient": [None, other.id]}
            )

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def snapshot(patient: Patient) -> dict[str, Any]:
        """Everything whose change goes into the identity history."""
        return {
            **PatientRegistry.traits_of(patient),
            "attending": patient.attending,
            "pam": patient.pam,
        }

    @staticmethod
    def traits_of(patient: Patient) -> dict[str, Any]:
        return {
            "ins": patient.ins,
            "ins_oid": patient.ins_oid,
            "identity_status": patient.identity_status,
            "qualified": patient.qualified,
            "birth_name": patient.birth_name,
            "used_name": patient.used_name,
            "first_name": patient.first_name,
            "first_names": patient.first_names,
            "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
            "sex": patient.sex,
            "birth_place": patient.birth_place,
        }

    @staticmethod
    def _apply(patient: Patient, traits: PatientTraits, extra: dict[str, Any] | None) -> None:
        patient.ins = traits.ins.value if traits.ins else None
        patient.ins_oid = traits.ins.authority_oid if traits.ins else None
        patient.identity_status = traits.identity_status
        patient.qualified = traits.qualified
        patient.birth_name = traits.birth_name
        patient.used_name = traits.used_name
        patient.first_name = traits.first_name
        patient.first_names = traits.first_names
        patient.birth_date = traits.birth_date
        patient.sex = traits.sex
        patient.birth_place = traits.birth_place
        for key, value in (extra or {}).items():
            if value is not None:
                setattr(patient, key, value)
        patient.updated_at = utcnow()

    def _add_identifiers(self, patient: Patient, identifiers: Iterable[Identifier]) -> None:
        for ident in identifiers:
            key = authority_key(ident)
            row = self.session.scalar(
                select(PatientIdentifier).where(
                    PatientIdentifier.authority == key, PatientIdentifier.value == ident.value
                )
            )
            if row is None:
                self.session.add(
                    PatientIdentifier(
                        patient_id=patient.id,
                        authority=key,
                        value=ident.value,
                        authority_oid=ident.authority_oid,
                        type_code=ident.type_code,
                    )
                )
            elif row.patient_id != patient.id:
                log.warning(
                    "identifier %s^%s already belongs to patient %d, not %d",
                    ident.value,
                    key,
                    row.patient_id,
                    patient.id,
                )
        self.session.flush()

    def _history(
        self,
        patient: Patient,
        trigger: str,
        event_at: datetime | None,
        message_id: int | None,
        outcome: str,
        changes: dict[str, Any],
    ) -> None:
        self.session.add(
            PatientEvent(
                patient_id=patient.id,
                trigger=trigger,
                event_at=event_at,
                message_id=message_id,
                outcome=outcome,
                changes=changes,
            )
        )

    def _repoint(self, absorbed_id: int, survivor_id: int) -> dict[str, int]:
        """Move every row that belongs to the absorbed patient to the survivor."""
        moved: dict[str, int] = {}
        for table in Base.metadata.sorted_tables:
            if table.name in _NOT_FOLLOWING:
                continue
            for fk in table.foreign_keys:
                if fk.column.table.name != "patients" or fk.column.name != "id":
                    continue
                column = fk.parent
                result = self.session.execute(
                    update(table).where(column == absorbed_id).values({column.name: survivor_id})
                )
                if result.rowcount:
                    moved[f"{table.name}.{column.name}"] = result.rowcount
        return moved
