"""The ANS MSSanté mailbox extract: 31 pipe-separated columns, one line per mailbox."""

from __future__ import annotations

import pytest

from pfi.transforms.mssante.annuaire import AnnuaireFormatError, parse_annuaire

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


def _line(**values: str) -> str:
    columns = [c.strip() for c in HEADER.split("|")]
    cells = {c: "" for c in columns}
    cells.update(values)
    return "|".join(cells[c] for c in columns)


def _pp(address: str, kind: str = "PER", **extra: str) -> str:
    return _line(
        **{
            "Type de BAL": kind,
            "Adresse BAL": address,
            "Type Identifiant PP": "8",
            "Identifiant PP": "10001234567",
            "Identification nationale PP": "810001234567",
            "Civilité d'exercice": "DR",
            "Nom d'exercice": "HOUSE",
            "Prénom d'exercice": "Gregory",
            "Catégorie profession": "C",
            "Libellé de catégorie profession": "Civil",
            "Code Profession": "10",
            "Libellé Profession": "Médecin",
            "Code savoir-faire": "SM26",
            "Libellé savoir-faire": "Qualifié en Médecine Générale",
            "Dématérialisation": "O",
            **extra,
        }
    )


def test_professional_with_several_addresses_is_one_entry_with_all_of_them():
    extract = parse_annuaire(
        [
            HEADER + "\n",
            _pp("g.house@ch-x.mssante.fr", **{"Raison Sociale structure BAL": "CH X"}) + "\n",
            _pp("gregory.house@medecin.mssante.fr") + "\r\n",
            _pp("G.HOUSE@ch-x.mssante.fr") + "\n",  # the same mailbox listed twice
        ]
    )
    assert extract.problems == ()
    (entry,) = extract.entries
    assert entry.kind == "professional"
    assert (entry.national_id, entry.rpps, entry.family_name, entry.given_name) == (
        "810001234567",
        "10001234567",
        "HOUSE",
        "Gregory",
    )
    assert (entry.profession_code, entry.profession_label, entry.specialty_code) == (
        "10",
        "Médecin",
        "SM26",
    )
    assert entry.addresses == ("g.house@ch-x.mssante.fr", "gregory.house@medecin.mssante.fr")
    assert entry.mailboxes[0].kind == "PER"
    assert entry.mailboxes[0].structure_name == "CH X"
    assert entry.mailboxes[0].dematerialisation is True
    assert extract.by_address()["gregory.house@medecin.mssante.fr"] is entry


def test_professional_without_address_and_organisation_mailboxes_are_kept():
    extract = parse_annuaire(
        [
            HEADER,
            _pp(""),
            _line(
                **{
                    "Type de BAL": "ORG",
                    "Adresse BAL": "cardiologie@ch-x.mssante.fr",
                    "Type identifiant structure": "1",
                    "Identification Structure": "1750000000",
                    "Service de rattachement": "Cardiologie",
                    "Raison Sociale structure BAL": "CH X",
                    "L4NUMEROVOIE": "12",
                    "NL4TYPEVOIE": "R",
                    "L4LIBELLEVOIE": "de la Paix",
                    "L6LIGNEACHEMINEMENT": "75001 PARIS",
                    "Code postal": "75001",
                }
            ),
        ]
    )
    professional, organisation = extract.entries
    assert professional.kind == "professional" and professional.mailboxes == ()
    assert organisation.kind == "organisation" and organisation.national_id == ""
    (box,) = organisation.mailboxes
    assert (box.address, box.kind, box.service, box.structure_id) == (
        "cardiologie@ch-x.mssante.fr",
        "ORG",
        "Cardiologie",
        "1750000000",
    )
    assert box.address_lines == ("12 R de la Paix",)
    assert box.city_line == "75001 PARIS"


def test_bad_lines_are_reported_with_their_number_and_skipped():
    extract = parse_annuaire([HEADER, _pp("a@b.mssante.fr"), "PER|x@y.mssante.fr|8", ""])
    assert [str(p) for p in extract.problems] == ["line 3: 3 columns where the header has 31"]
    assert len(extract.entries) == 1 and extract.lines_read == 4


def test_columns_are_found_by_name_not_position():
    columns = HEADER.split("|")
    reordered = [columns[1], columns[0], *columns[2:]]
    line = _pp("a@b.mssante.fr").split("|")
    line[0], line[1] = line[1], line[0]
    (entry,) = parse_annuaire(["|".join(reordered), "|".join(line)]).entries
    assert entry.addresses == ("a@b.mssante.fr",) and entry.mailboxes[0].kind == "PER"


def test_a_file_that_is_not_the_extract_is_refused_with_what_is_missing():
    with pytest.raises(AnnuaireFormatError, match=r"missing column.*'adresse bal'"):
        parse_annuaire(["Nom|Prénom|Email", "a|b|c"])
    with pytest.raises(AnnuaireFormatError, match="empty"):
        parse_annuaire([])
