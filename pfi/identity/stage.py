"""The identity stage: applies ADT messages from the inbound topic to the patient registry.

`on_patient_changed` is called, in the same transaction, with each patient an ADT
created, updated or merged into: routing uses it to release the deliveries that waited
for a qualified INS (documents wait for identity; they are never lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pfi.bus.outbox import OutgoingRecord
from pfi.bus.stage import Record, StageContext
from pfi.bus.topics import INBOUND
from pfi.config.model import IdentitySettings
from pfi.identity.registry import PatientRegistry
from pfi.identity.traits import AdtEvent, IdentityRules, read_adt, read_identifiers, read_patient
from pfi.store.models import Patient
from pfi.transforms.hl7 import Hl7Message, parse_message

log = logging.getLogger(__name__)

MERGE_TRIGGERS = frozenset({"A40", "A34", "A36", "A39"})
LINK_TRIGGERS = {"A24": False, "A37": True}  # trigger -> unlink

#: Called with each patient an ADT changed; returns records to publish with the change.
PatientChanged = Callable[[Session, Patient], Sequence[OutgoingRecord]]


def identity_rules(settings: IdentitySettings) -> IdentityRules:
    return IdentityRules(
        qualifying_statuses=frozenset(s.upper() for s in settings.qualifying_statuses),
        ins_authority_oids=frozenset(settings.ins_authority_oids),
        local_zone=ZoneInfo(settings.local_timezone),
    )


class IdentityStage:
    name = "identity"
    input = INBOUND

    def __init__(
        self, settings: IdentitySettings, on_patient_changed: PatientChanged | None = None
    ) -> None:
        self.rules = identity_rules(settings)
        self.on_patient_changed = on_patient_changed

    def handle(self, record: Record, ctx: StageContext) -> None:
        value = record.value
        if not value["message_type"].startswith("ADT"):
            return
        # The documents stage also creates patients (from an ORU's PID when no ADT came
        # first). On PostgreSQL both may insert the same identifier at once: the second
        # gets an IntegrityError once the first commits. Applying the message again then
        # finds the patient the other stage created (READ COMMITTED sees it).
        mark = len(ctx.outgoing)
        try:
            with ctx.session.begin_nested():
                self._apply(value, ctx)
        except IntegrityError:
            log.info("identity: patient created concurrently; applying message again")
            del ctx.outgoing[mark:]  # what the first attempt emitted is void
            with ctx.session.begin_nested():
                self._apply(value, ctx)

    def _apply(self, value: dict, ctx: StageContext) -> None:
        msg = parse_message(value["raw"], value["charset"])
        event = read_adt(msg, self.rules)
        if not event.patients:
            raise ValueError(f"ADT^{event.trigger} without a PID segment")
        registry = PatientRegistry(ctx.session)
        common = {
            "trigger": event.trigger,
            "event_at": event.event_at,
            "message_id": value["message_id"],
        }
        changed: list[Patient | None] = []
        if event.trigger in MERGE_TRIGGERS:
            for survivor, absorbed in self._merge_pairs(msg):
                changed.append(registry.merge(survivor, absorbed, **common))
        elif event.trigger == "A47":
            changed.append(
                registry.change_identifier(event.patients[0], event.prior_identifiers, **common)
            )
        elif event.trigger in LINK_TRIGGERS:
            if len(event.patients) < 2:
                raise ValueError(f"ADT^{event.trigger} needs two PID segments to (un)link")
            registry.link(
                event.patients[0], event.patients[1], unlink=LINK_TRIGGERS[event.trigger], **common
            )
        else:
            existing = registry.find(event.patients[0])
            changed.append(
                registry.upsert(event.patients[0], extra=self._extra(event, existing), **common)
            )
        if self.on_patient_changed is not None:
            for patient in changed:
                if patient is not None:
                    ctx.outgoing.extend(self.on_patient_changed(ctx.session, patient))

    def _merge_pairs(self, msg: Hl7Message) -> list[tuple]:
        """A40 may carry several PID/MRG groups: each MRG belongs to the PID before it."""
        pairs = []
        current = None
        for seg in msg:
            if seg.name == "PID":
                current = read_patient(seg, self.rules)
            elif seg.name == "MRG" and current is not None:
                pairs.append((current, read_identifiers(seg, 1)))
        if not pairs:
            raise ValueError("merge message without PID/MRG pair")
        return pairs

    @staticmethod
    def _extra(event: AdtEvent, existing: Patient | None) -> dict[str, object]:
        pam = dict(existing.pam or {}) if existing is not None else {}
        pam.update(event.pam)
        return {"attending": event.attending, "pam": pam or None}
