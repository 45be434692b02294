"""Annuaire extracts for tests and the import benchmark: the ANS header, lines built
column by column, and a generated extract of any size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

HEADER = (
    "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
    "Type identifiant structure|Identification Structure|Service de rattachement|"
    "Civilité d'exercice|Nom d'exercice|Prénom d'exercice|Catégorie profession|"
    "Libellé de catégorie profession|Code Profession|Libellé Profession|Code savoir-faire|"
    "Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
    "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION|L3COMPLEMENTDISTRIBUTION|"
    "L4NUMEROVOIE|L4COMPLEMENTNUMEROVOIE|NL4TYPEVOIE|L4LIBELLEVOIE|L5LIEUDITMENTION|"
    "L6LIGNEACHEMINEMENT|Code postal|Département|Pays"
)
COLUMNS = [c.strip() for c in HEADER.split("|")]


def line(**values: str) -> str:
    cells = dict.fromkeys(COLUMNS, "")
    cells.update(values)
    return "|".join(cells[c] for c in COLUMNS)


def professional(
    rpps: str, address: str, *, kind: str = "PER", family: str = "HOUSE", given: str = "Gregory"
) -> str:
    return line(
        **{
            "Type de BAL": kind if address else "",
            "Adresse BAL": address,
            "Type Identifiant PP": "8",
            "Identifiant PP": rpps,
            "Identification nationale PP": f"8{rpps}",
            "Civilité d'exercice": "DR",
            "Nom d'exercice": family,
            "Prénom d'exercice": given,
            "Code Profession": "10",
            "Libellé Profession": "Médecin",
            "Dématérialisation": "O",
            "Raison Sociale structure BAL": "CH X" if kind == "ORG" else "",
        }
    )


def organisation(address: str, name: str = "CH X") -> str:
    return line(
        **{
            "Type de BAL": "ORG",
            "Adresse BAL": address,
            "Identification Structure": "1750000000",
            "Raison Sociale structure BAL": name,
            "Service de rattachement": "Cardiologie",
        }
    )


def generated_lines(count: int) -> Iterator[str]:
    """`count` mailbox lines: professionals with one or two mailboxes, some organisations,
    in the proportions of the real extract (about 1.3 mailboxes per professional)."""
    yield HEADER + "\n"
    n = 0
    person = 0
    while n < count:
        person += 1
        rpps = f"1{person:010d}"
        yield professional(rpps, f"p{person}@medecin.mssante.fr") + "\n"
        n += 1
        if person % 3 == 0 and n < count:
            yield professional(rpps, f"p{person}@ch-x.mssante.fr", kind="ORG") + "\n"
            n += 1
        if person % 10 == 0 and n < count:
            yield organisation(f"service{person}@ch-x.mssante.fr") + "\n"
            n += 1


def write_extract(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.writelines(generated_lines(count))
    return path
