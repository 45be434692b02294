"""Finding a professional and their mailboxes in the active annuaire generation.

Messages name a professional by RPPS (11 digits, XCN-1 with an RPPS/IDNPS authority)
or by national id (idNat: "8" + RPPS, "0" + ADELI); the extract carries both, so
either finds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pfi.store.models import AnnuaireImport, AnnuaireMailbox, AnnuaireProfessional


@dataclass(frozen=True, slots=True)
class AnnuaireMailboxRow:
    address: str
    kind: str  # PER, ORG, APP
    structure_name: str = ""
    service: str = ""
    dematerialisation: bool | None = None


@dataclass(frozen=True, slots=True)
class ProfessionalRow:
    national_id: str
    id_type: str
    identifier: str
    civility: str
    family_name: str
    given_name: str
    profession_label: str
    specialty_label: str
    mailboxes: tuple[AnnuaireMailboxRow, ...]

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.civility, self.given_name, self.family_name) if p)


def active_import(session: Session) -> AnnuaireImport | None:
    return session.scalar(select(AnnuaireImport).where(AnnuaireImport.active.is_(True)))


def active_import_id(session: Session) -> int | None:
    return session.scalar(select(AnnuaireImport.id).where(AnnuaireImport.active.is_(True)))


def find_professional(
    session: Session, identifier: str, *, import_id: int | None = None
) -> ProfessionalRow | None:
    """The professional with this RPPS / ADELI / national id, with their mailboxes
    (in file order), or None (unknown, or no annuaire imported)."""
    ident = identifier.strip()
    if not ident:
        return None
    gen = import_id if import_id is not None else active_import_id(session)
    if gen is None:
        return None
    candidates = {ident, f"8{ident}"} if len(ident) == 11 else {ident}
    person = session.scalars(
        select(AnnuaireProfessional)
        .where(
            AnnuaireProfessional.import_id == gen,
            or_(
                AnnuaireProfessional.national_id.in_(candidates),
                AnnuaireProfessional.identifier == ident,
            ),
        )
        .order_by(AnnuaireProfessional.id)
        .limit(1)
    ).first()
    if person is None:
        return None
    boxes = session.execute(
        select(
            AnnuaireMailbox.address,
            AnnuaireMailbox.kind,
            AnnuaireMailbox.structure_name,
            AnnuaireMailbox.service,
            AnnuaireMailbox.dematerialisation,
        )
        .where(AnnuaireMailbox.import_id == gen, AnnuaireMailbox.national_id == person.national_id)
        .order_by(AnnuaireMailbox.id)
    ).all()
    return ProfessionalRow(
        national_id=person.national_id,
        id_type=person.id_type,
        identifier=person.identifier,
        civility=person.civility,
        family_name=person.family_name,
        given_name=person.given_name,
        profession_label=person.profession_label,
        specialty_label=person.specialty_label,
        mailboxes=tuple(AnnuaireMailboxRow(*b) for b in boxes),
    )
