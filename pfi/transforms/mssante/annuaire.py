"""The ANS public extract of MSSanté mailboxes ("Extraction_Correspondance_MSSante").

Format supported (the file the Annuaire Santé publishes daily, zipped, and mirrored on
data.gouv.fr as ``extraction-correspondance-mssante.txt``): UTF-8 text, ``|`` separator,
no quoting, one header line, one line per mailbox, 31 columns. Columns are found by their
header name (accents, case and spacing ignored), so a reordered file still reads; a header
that lacks a column PFI needs is an error, extra columns are ignored.

| column header                     | field                                   |
| --------------------------------- | --------------------------------------- |
| Type de BAL                       | MssMailbox.kind (PER, ORG, APP)         |
| Adresse BAL                       | MssMailbox.address                      |
| Type Identifiant PP               | AnnuaireEntry.id_type (8 RPPS, 0 ADELI) |
| Identifiant PP                    | AnnuaireEntry.identifier                |
| Identification nationale PP       | AnnuaireEntry.national_id (grouping key)|
| Type identifiant structure        | MssMailbox.structure_id_type            |
| Identification Structure          | MssMailbox.structure_id                 |
| Service de rattachement           | MssMailbox.service                      |
| Civilité d'exercice               | AnnuaireEntry.civility                  |
| Nom d'exercice                    | AnnuaireEntry.family_name               |
| Prénom d'exercice                 | AnnuaireEntry.given_name                |
| Catégorie profession              | AnnuaireEntry.category_code             |
| Libellé de catégorie profession   | AnnuaireEntry.category_label            |
| Code Profession                   | AnnuaireEntry.profession_code           |
| Libellé Profession                | AnnuaireEntry.profession_label          |
| Code savoir-faire                 | AnnuaireEntry.specialty_code            |
| Libellé savoir-faire              | AnnuaireEntry.specialty_label           |
| Dématérialisation                 | MssMailbox.dematerialisation (O/N)      |
| Raison Sociale structure BAL      | MssMailbox.structure_name               |
| Enseigne commerciale structure BAL| MssMailbox.structure_trade_name         |
| L6LIGNEACHEMINEMENT               | MssMailbox.city_line                    |
| Code postal                       | MssMailbox.postal_code                  |
| Département                       | MssMailbox.department                   |
| Pays                              | MssMailbox.country                      |

The other address lines (L2..L5) are kept in MssMailbox.address_lines.

Grouping: lines of one professional (same "Identification nationale PP") make one entry
with all their mailboxes, so a professional with several addresses is one entry with
several mailboxes; a line with an empty address still yields the professional, with no
mailbox. A line without a professional (an organisational or applicative mailbox) is one
entry of kind "organisation". A line whose column count is wrong is reported with its
line number and skipped: one bad line must not stop a 500,000-line import.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Literal

EntryKind = Literal["professional", "organisation"]

#: Our field name -> the normalised header of the column it comes from.
_COLUMNS: dict[str, str] = {
    "kind": "type de bal",
    "address": "adresse bal",
    "id_type": "type identifiant pp",
    "identifier": "identifiant pp",
    "national_id": "identification nationale pp",
    "structure_id_type": "type identifiant structure",
    "structure_id": "identification structure",
    "service": "service de rattachement",
    "civility": "civilite d'exercice",
    "family_name": "nom d'exercice",
    "given_name": "prenom d'exercice",
    "category_code": "categorie profession",
    "category_label": "libelle de categorie profession",
    "profession_code": "code profession",
    "profession_label": "libelle profession",
    "specialty_code": "code savoir-faire",
    "specialty_label": "libelle savoir-faire",
    "dematerialisation": "dematerialisation",
    "structure_name": "raison sociale structure bal",
    "structure_trade_name": "enseigne commerciale structure bal",
    "l2": "l2complementlocalisation",
    "l3": "l3complementdistribution",
    "l4_number": "l4numerovoie",
    "l4_complement": "l4complementnumerovoie",
    "l4_type": "nl4typevoie",
    "l4_street": "l4libellevoie",
    "l5": "l5lieuditmention",
    "city_line": "l6ligneacheminement",
    "postal_code": "code postal",
    "department": "departement",
    "country": "pays",
}
#: Columns without which the file cannot be used at all.
_REQUIRED = ("kind", "address", "national_id", "family_name", "given_name")
#: Header spellings seen in older extracts, mapped to today's.
_ALIASES = {
    "type identifiant pp": ("type d'identifiant pp",),
    "libelle de categorie profession": ("libelle categorie profession",),
    "categorie profession": ("categorie professionnelle",),
}


class AnnuaireFormatError(ValueError):
    """The file is not an MSSanté mailbox extract PFI can read (header problems)."""


@dataclass(frozen=True, slots=True)
class MssMailbox:
    address: str
    kind: str  # PER (personal), ORG (organisational), APP (applicative)
    structure_id_type: str = ""
    structure_id: str = ""
    service: str = ""
    structure_name: str = ""
    structure_trade_name: str = ""
    dematerialisation: bool | None = None
    address_lines: tuple[str, ...] = ()
    city_line: str = ""
    postal_code: str = ""
    department: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class AnnuaireEntry:
    """A professional (and every mailbox they hold), or one organisational mailbox."""

    kind: EntryKind
    national_id: str = ""
    id_type: str = ""
    identifier: str = ""
    civility: str = ""
    family_name: str = ""
    given_name: str = ""
    category_code: str = ""
    category_label: str = ""
    profession_code: str = ""
    profession_label: str = ""
    specialty_code: str = ""
    specialty_label: str = ""
    mailboxes: tuple[MssMailbox, ...] = ()

    @property
    def rpps(self) -> str:
        """The RPPS number when the identifier is one (type 8), else ''."""
        return self.identifier if self.id_type == "8" else ""

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(m.address for m in self.mailboxes)


@dataclass(frozen=True, slots=True)
class AnnuaireProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class AnnuaireExtract:
    entries: tuple[AnnuaireEntry, ...]
    problems: tuple[AnnuaireProblem, ...] = ()
    lines_read: int = 0

    @property
    def professionals(self) -> tuple[AnnuaireEntry, ...]:
        return tuple(e for e in self.entries if e.kind == "professional")

    def by_address(self) -> dict[str, AnnuaireEntry]:
        """Lower-cased address -> its entry, for recipient look-ups."""
        return {m.address.lower(): e for e in self.entries for m in e.mailboxes}


def _norm(header: str) -> str:
    text = unicodedata.normalize("NFKD", header.strip().lstrip("\ufeff"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.replace("’", "'").lower().split())


def _header_positions(header: list[str]) -> dict[str, int]:
    seen = {_norm(h): i for i, h in enumerate(header)}
    positions: dict[str, int] = {}
    for name, column in _COLUMNS.items():
        for spelling in (column, *_ALIASES.get(column, ())):
            if spelling in seen:
                positions[name] = seen[spelling]
                break
    missing = [_COLUMNS[n] for n in _REQUIRED if n not in positions]
    if missing:
        raise AnnuaireFormatError(
            "line 1: not an MSSanté mailbox extract header, missing column(s) "
            + ", ".join(repr(m) for m in missing)
            + f" (found {len(header)} columns: {', '.join(h.strip() for h in header[:6])}...)"
        )
    return positions


_PERSON = (
    "national_id", "id_type", "identifier", "civility", "family_name", "given_name",
    "category_code", "category_label", "profession_code", "profession_label",
    "specialty_code", "specialty_label",
)  # fmt: skip
_MAILBOX = (
    "address", "kind", "structure_id_type", "structure_id", "service", "structure_name",
    "structure_trade_name", "dematerialisation", "l2", "l3", "l4_number", "l4_complement",
    "l4_type", "l4_street", "l5", "city_line", "postal_code", "department", "country",
)  # fmt: skip


@dataclass(slots=True)
class _Builder:
    person: tuple[str, ...]
    mailboxes: list[MssMailbox] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def parse_annuaire(lines: Iterable[str], separator: str = "|") -> AnnuaireExtract:
    """Parse the extract's lines (text, header first) into entries grouped per professional."""
    it = iter(lines)
    try:
        header_line = next(it)
    except StopIteration:
        raise AnnuaireFormatError("the extract is empty (no header line)") from None
    header = header_line.rstrip("\r\n").split(separator)
    pos = _header_positions(header)
    width = len(header)
    # A column the file lacks reads the empty cell appended at index `width` of each line.
    person_of = itemgetter(*(pos.get(n, width) for n in _PERSON))
    mailbox_of = itemgetter(*(pos.get(n, width) for n in _MAILBOX))
    i_address, i_national = pos["address"], pos["national_id"]
    professionals: dict[str, _Builder] = {}
    organisations: list[AnnuaireEntry] = []
    problems: list[AnnuaireProblem] = []
    line_no = 1
    for line_no, raw in enumerate(it, start=2):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        cells = text.split(separator)
        if len(cells) != width:
            problems.append(
                AnnuaireProblem(line_no, f"{len(cells)} columns where the header has {width}")
            )
            continue
        cells.append("")
        address = cells[i_address].strip()
        mailbox = _mailbox(mailbox_of(cells)) if address else None
        national_id = cells[i_national].strip()
        if national_id:
            builder = professionals.get(national_id)
            if builder is None:
                person = tuple(v.strip() for v in person_of(cells))
                builder = professionals[national_id] = _Builder(person)
            key = address.lower()
            if mailbox is not None and key not in builder.seen:
                builder.seen.add(key)
                builder.mailboxes.append(mailbox)
        elif mailbox is not None:
            organisations.append(AnnuaireEntry(kind="organisation", mailboxes=(mailbox,)))
        else:
            problems.append(AnnuaireProblem(line_no, "neither a professional nor an address"))
    entries = [
        AnnuaireEntry("professional", *b.person, mailboxes=tuple(b.mailboxes))
        for b in professionals.values()
    ]
    entries.extend(organisations)
    return AnnuaireExtract(tuple(entries), tuple(problems), lines_read=line_no)


@dataclass(frozen=True, slots=True)
class AnnuaireLine:
    """One line of the extract, ungrouped: the professional it names (an entry without
    mailboxes, None for an organisational line) and its mailbox (None when empty)."""

    line: int
    person: AnnuaireEntry | None
    mailbox: MssMailbox | None


def iter_annuaire(
    lines: Iterable[str], separator: str = "|"
) -> Iterator[AnnuaireLine | AnnuaireProblem]:
    """The extract line by line, for an import that cannot hold 500,000 entries in memory.

    Same header rules and per-line checks as `parse_annuaire`; the caller groups (the
    store groups by national id). Raises AnnuaireFormatError for an unusable header.
    """
    it = iter(lines)
    try:
        header_line = next(it)
    except StopIteration:
        raise AnnuaireFormatError("the extract is empty (no header line)") from None
    header = header_line.rstrip("\r\n").split(separator)
    pos = _header_positions(header)
    width = len(header)
    person_of = itemgetter(*(pos.get(n, width) for n in _PERSON))
    mailbox_of = itemgetter(*(pos.get(n, width) for n in _MAILBOX))
    i_address, i_national = pos["address"], pos["national_id"]
    for line_no, raw in enumerate(it, start=2):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        cells = text.split(separator)
        if len(cells) != width:
            yield AnnuaireProblem(line_no, f"{len(cells)} columns where the header has {width}")
            continue
        cells.append("")
        address = cells[i_address].strip()
        mailbox = _mailbox(mailbox_of(cells)) if address else None
        if cells[i_national].strip():
            person = AnnuaireEntry("professional", *(v.strip() for v in person_of(cells)))
            yield AnnuaireLine(line_no, person, mailbox)
        elif mailbox is not None:
            yield AnnuaireLine(line_no, None, mailbox)
        else:
            yield AnnuaireProblem(line_no, "neither a professional nor an address")


def _mailbox(raw: tuple[str, ...]) -> MssMailbox:
    (
        address, kind, structure_id_type, structure_id, service, structure_name,
        trade_name, demat, l2, l3, number, complement, street_type, street, l5,
        city_line, postal_code, department, country,
    ) = (v.strip() for v in raw)  # fmt: skip
    demat = demat.upper()
    street_line = " ".join(p for p in (number, complement, street_type, street) if p)
    return MssMailbox(
        address=address,
        kind=kind.upper(),
        structure_id_type=structure_id_type,
        structure_id=structure_id,
        service=service,
        structure_name=structure_name,
        structure_trade_name=trade_name,
        dematerialisation=True if demat in ("O", "OUI", "Y", "1") else False if demat else None,
        address_lines=tuple(p for p in (l2, l3, street_line, l5) if p),
        city_line=city_line,
        postal_code=postal_code,
        department=department,
        country=country,
    )
