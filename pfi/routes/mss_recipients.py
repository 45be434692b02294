"""MSSanté addresses of the professionals a built report names only by RPPS.

A CR-BIO PFI builds from a plain ORU names its prescriber (OBR-16 / ORC-12) and copy
recipients (OBR-28) by RPPS: their mailboxes come from the imported annuaire. This runs
in the routing stage, before the (pure) decision, so that the decision sees one
professional recipient per address, and so that its stored input keeps the addresses
used: a later re-decision (identity qualified, hold released) sends to the same ones even
if the annuaire changed meanwhile.

Rules:
- one mailbox: that one;
- several: `mssante.recipients.several_mailboxes`: "personal" (default) takes the first
  personal (PER) mailbox, else the first one of any kind; "all" takes every one;
- the patient's attending physician (médecin traitant, ADT ROL ODRP) is added as a copy
  recipient when `mssante.recipients.attending` is on;
- none (unknown RPPS, no mailbox, no annuaire imported, resolution off): the
  professional is kept as unresolved, which routing records as a refused mss_pro row
  with the reason plus a warning, and counts in pfi_mss_recipients_total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from pfi.annuaire.lookup import AnnuaireMailboxRow, active_import_id, find_professional
from pfi.config.mssante import MssRecipientSettings
from pfi.routes.document_meta import WAY_BUILT, DocumentMeta, MetaPerson
from pfi.routes.inputs import Recipient, RecipientRole, UnresolvedRecipient
from pfi.routes.model import PATIENT_MAIL_DOMAIN

if TYPE_CHECKING:  # the metrics module registers its metrics when imported: not before
    from pfi.observability.metrics import EngineMetrics  # the engine set up multiprocess

RESOLUTION_OFF = (
    "recipients are not resolved from the annuaire (no mssante section, or "
    "mssante.recipients.resolve_from_annuaire is false)"
)
NO_ANNUAIRE = "no annuaire imported (pfi annuaire import)"


@dataclass(frozen=True, slots=True)
class ResolvedRecipients:
    recipients: tuple[Recipient, ...] = ()
    unresolved: tuple[UnresolvedRecipient, ...] = ()
    notes: tuple[str, ...] = ()


class AnnuaireRecipientResolver:
    """Resolves `DocumentMeta.to_resolve` in the routing stage's transaction."""

    def __init__(
        self, settings: MssRecipientSettings, metrics: EngineMetrics | None = None
    ) -> None:
        self.settings = settings
        self._metrics = metrics

    @property
    def metrics(self) -> EngineMetrics:
        if self._metrics is None:
            from pfi.observability.metrics import DEFAULT_METRICS

            self._metrics = DEFAULT_METRICS
        return self._metrics

    def people_to_resolve(
        self, meta: DocumentMeta, attending: Mapping[str, Any] | None
    ) -> tuple[MetaPerson, ...]:
        """The built report's prescriber and copies, plus the patient's attending
        physician (ROL ODRP) as a copy when `recipients.attending` is on."""
        people = list(meta.to_resolve)
        if self.settings.attending and meta.way == WAY_BUILT and attending:
            person_id = str(attending.get("id") or "").strip()
            known = {p.id for p in people} | {r.id for r in meta.recipients if r.id}
            if person_id and person_id not in known:
                name = " ".join(
                    str(attending.get(k) or "").strip() for k in ("given_name", "family_name")
                ).strip()
                people.append(
                    MetaPerson(
                        RecipientRole.COPY,
                        person_id,
                        str(attending.get("id_type") or ""),
                        f"{name} (médecin traitant)".strip(),
                    )
                )
        return tuple(people)

    def resolve(
        self,
        session: Session,
        meta: DocumentMeta,
        people: tuple[MetaPerson, ...] | None = None,
    ) -> ResolvedRecipients:
        """Addresses of `people` (default: `meta.to_resolve`)."""
        people = meta.to_resolve if people is None else people
        if not people:
            return ResolvedRecipients()
        if not self.settings.resolve_from_annuaire:
            return self._count(unresolved_all(people, RESOLUTION_OFF))
        generation = active_import_id(session)
        if generation is None:
            return self._count(unresolved_all(people, NO_ANNUAIRE))
        recipients: list[Recipient] = []
        unresolved: list[UnresolvedRecipient] = []
        notes: list[str] = []
        for person in people:
            found = find_professional(session, person.id, import_id=generation)
            name = person.name or (found.display_name if found else "")
            if found is None:
                unresolved.append(
                    UnresolvedRecipient(
                        person.role, person.id, f"{person.id} is not in the annuaire", name
                    )
                )
                continue
            boxes = self._chosen(found.mailboxes)
            if not boxes:
                unresolved.append(
                    UnresolvedRecipient(
                        person.role,
                        person.id,
                        f"{found.national_id} has no MSSanté mailbox in the annuaire",
                        name,
                    )
                )
                continue
            self.metrics.record_mss_recipient(person.role.value, "resolved")
            for box in boxes:
                recipients.append(Recipient(box.address, person.role, name))
            chosen = ", ".join(f"{b.address} ({b.kind})" for b in boxes)
            notes.append(
                f"{person.role.value} {name} ({person.id}) -> {chosen}"
                + (
                    f", of {len(found.mailboxes)} mailboxes ({self.settings.several_mailboxes})"
                    if len(found.mailboxes) > 1
                    else ""
                )
            )
        return self._count(ResolvedRecipients(tuple(recipients), tuple(unresolved), tuple(notes)))

    def _chosen(self, boxes: tuple[AnnuaireMailboxRow, ...]) -> tuple[AnnuaireMailboxRow, ...]:
        usable = tuple(
            b for b in boxes if not b.address.lower().endswith("@" + PATIENT_MAIL_DOMAIN)
        )
        if len(usable) <= 1 or self.settings.several_mailboxes == "all":
            return usable
        personal = [b for b in usable if b.kind == "PER"]
        return (personal[0] if personal else usable[0],)

    def _count(self, result: ResolvedRecipients) -> ResolvedRecipients:
        """Counts the unresolved (the resolved are counted as they are found)."""
        for u in result.unresolved:
            self.metrics.record_mss_recipient(u.role.value, "unresolved")
        return result


def unresolved_all(people: tuple[MetaPerson, ...], reason: str) -> ResolvedRecipients:
    return ResolvedRecipients(
        unresolved=tuple(UnresolvedRecipient(p.role, p.id, reason, p.name) for p in people)
    )


def merge_recipients(
    given: tuple[Recipient, ...], resolved: tuple[Recipient, ...]
) -> tuple[Recipient, ...]:
    """The message's own recipients first, then the resolved ones; one per address
    (a prescriber also in copy gets one mail, as the prescriber)."""
    out: dict[str, Recipient] = {}
    for r in (*given, *resolved):
        key = r.address.strip().lower()
        if key not in out:
            out[key] = r
    return tuple(out.values())
