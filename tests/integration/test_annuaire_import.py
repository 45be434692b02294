"""The annuaire extract in the store, on SQLite and PostgreSQL: import, look-up,
atomic replacement, problems reported, a failed import changing nothing."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select
from typer.testing import CliRunner

from pfi.annuaire.importer import AnnuaireImportBusy, import_annuaire
from pfi.annuaire.lookup import find_professional
from pfi.cli.app import app as cli_app
from pfi.store import Database
from pfi.store.models import AnnuaireImport, AnnuaireMailbox, AnnuaireProfessional
from pfi.transforms.mssante.annuaire import AnnuaireFormatError
from tests.support.annuaire import HEADER, generated_lines, organisation, professional

RPPS = "10001234567"


def _extract(*lines: str) -> list[str]:
    return [HEADER + "\n", *(f"{line}\n" for line in lines)]


def test_professional_is_found_by_rpps_and_national_id_with_every_mailbox(db: Database):
    report = import_annuaire(
        db,
        _extract(
            professional(RPPS, "g.house@ch-x.mssante.fr", kind="ORG"),
            professional(RPPS, "gregory.house@medecin.mssante.fr"),
            professional(RPPS, "G.HOUSE@ch-x.mssante.fr"),  # listed twice
            organisation("cardio@ch-x.mssante.fr"),
            "PER|x@y.mssante.fr|8",
        ),
        source="extract.txt",
    )
    assert (report.professionals, report.mailboxes, report.duplicates, report.problems) == (
        1,
        3,
        1,
        1,
    )
    assert report.problem_sample == ["line 6: 3 columns where the header has 31"]
    with db.reader() as s:
        by_rpps = find_professional(s, RPPS)
        by_national = find_professional(s, f"8{RPPS}")
        assert find_professional(s, "19999999999") is None
    assert by_rpps == by_national and by_rpps is not None
    assert by_rpps.display_name == "DR Gregory HOUSE"
    assert [(m.kind, m.address) for m in by_rpps.mailboxes] == [
        ("ORG", "g.house@ch-x.mssante.fr"),
        ("PER", "gregory.house@medecin.mssante.fr"),
    ]


def test_reimport_replaces_the_annuaire_and_deletes_the_old_generation(db: Database):
    first = import_annuaire(db, _extract(professional(RPPS, "old@ch-x.mssante.fr")))
    second = import_annuaire(db, _extract(professional(RPPS, "new@ch-x.mssante.fr")))
    assert second.replaced_import_id == first.import_id
    with db.reader() as s:
        found = find_professional(s, RPPS)
        assert found is not None and [m.address for m in found.mailboxes] == ["new@ch-x.mssante.fr"]
        assert s.scalar(select(func.count()).select_from(AnnuaireMailbox)) == 1
        assert s.scalar(select(func.count()).select_from(AnnuaireProfessional)) == 1
        statuses = dict(s.execute(select(AnnuaireImport.id, AnnuaireImport.status)).all())
    assert statuses == {first.import_id: "replaced", second.import_id: "active"}


def test_readers_see_the_old_annuaire_until_the_new_one_is_complete(db: Database):
    import_annuaire(db, _extract(professional(RPPS, "old@ch-x.mssante.fr")))
    seen_during: list[list[str]] = []

    def lines():
        yield HEADER + "\n"
        for i in range(30):
            yield professional(f"2{i:010d}", f"p{i}@x.mssante.fr") + "\n"
        yield professional(RPPS, "new@ch-x.mssante.fr") + "\n"
        # batches of 10 rows were committed by now: a reader still sees the old annuaire
        with db.reader() as s:
            found = find_professional(s, RPPS)
            assert found is not None
            seen_during.append([m.address for m in found.mailboxes])
            seen_during.append(["p0" if find_professional(s, "20000000000") else "-"])

    import_annuaire(db, lines(), batch_size=10)
    assert seen_during == [["old@ch-x.mssante.fr"], ["-"]]
    with db.reader() as s:
        found = find_professional(s, RPPS)
    assert found is not None and [m.address for m in found.mailboxes] == ["new@ch-x.mssante.fr"]


def test_an_import_that_fails_midway_leaves_the_previous_annuaire_in_service(db: Database):
    import_annuaire(db, _extract(professional(RPPS, "old@ch-x.mssante.fr")))

    def broken():
        yield HEADER + "\n"
        for i in range(25):
            yield professional(f"2{i:010d}", f"p{i}@x.mssante.fr") + "\n"
        raise OSError("disk read error")

    with pytest.raises(OSError, match="disk read error"):
        import_annuaire(db, broken(), batch_size=10)
    with db.reader() as s:
        found = find_professional(s, RPPS)
        assert found is not None and [m.address for m in found.mailboxes] == ["old@ch-x.mssante.fr"]
        assert s.scalar(select(func.count()).select_from(AnnuaireProfessional)) == 1
        failed = s.scalar(select(AnnuaireImport).where(AnnuaireImport.status == "failed"))
    assert failed is not None and "disk read error" in (failed.error or "")


def test_an_import_refuses_to_start_while_another_one_is_loading(db: Database):
    import_annuaire(db, _extract(professional(RPPS, "old@ch-x.mssante.fr")))
    with db.transaction() as s:
        s.add(AnnuaireImport(source="other.txt", status="loading", active=False))
    with pytest.raises(AnnuaireImportBusy, match=r"of other\.txt is loading since .*--force"):
        import_annuaire(db, _extract(professional(RPPS, "new@ch-x.mssante.fr")))
    report = import_annuaire(db, _extract(professional(RPPS, "new@ch-x.mssante.fr")), force=True)
    with db.reader() as s:
        statuses = sorted(s.scalars(select(AnnuaireImport.status)))
        found = find_professional(s, RPPS)
    assert statuses == ["active", "failed", "replaced"] and report.professionals == 1
    assert found is not None and found.mailboxes[0].address == "new@ch-x.mssante.fr"


def test_a_file_that_is_not_the_extract_writes_nothing(db: Database):
    with pytest.raises(AnnuaireFormatError, match="missing column"):
        import_annuaire(db, ["Nom|Prénom|Email\n", "a|b|c\n"])
    with db.reader() as s:
        assert s.scalar(select(func.count()).select_from(AnnuaireImport)) == 0


def test_cli_imports_a_file_and_shows_a_professional(db_url: str, tmp_path: Path):
    config = tmp_path / "pfi.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": db_url}}))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["migrate", "--config", str(config)]).exit_code == 0
    extract = tmp_path / "extraction.txt"
    extract.write_text(
        "".join(_extract(professional(RPPS, "gregory.house@medecin.mssante.fr"))),
        encoding="utf-8",
    )
    imported = runner.invoke(cli_app, ["annuaire", "import", str(extract), "-c", str(config)])
    assert imported.exit_code == 0, imported.output
    assert "1 professionals, 1 mailboxes" in imported.output
    shown = runner.invoke(cli_app, ["annuaire", "show", RPPS, "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "PER gregory.house@medecin.mssante.fr" in shown.output
    missing = runner.invoke(cli_app, ["annuaire", "show", "19999999999", "-c", str(config)])
    assert missing.exit_code == 1
    archive = tmp_path / "Extraction_Correspondance_MSSante.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "Extraction_Correspondance_MSSante.txt",
            "".join(_extract(professional(RPPS, "house@ch-z.mssante.fr"))),
        )
    zipped = runner.invoke(cli_app, ["annuaire", "import", str(archive), "-c", str(config)])
    assert zipped.exit_code == 0, zipped.output
    assert "(replaces import" in zipped.output
    shown = runner.invoke(cli_app, ["annuaire", "show", RPPS, "-c", str(config)])
    assert "PER house@ch-z.mssante.fr" in shown.output
    bad = tmp_path / "bad.txt"
    bad.write_text("Nom|Email\na|b\n", encoding="utf-8")
    refused = runner.invoke(cli_app, ["annuaire", "import", str(bad), "-c", str(config)])
    assert refused.exit_code == 1 and "missing column" in refused.output


def test_a_generated_extract_imports_every_mailbox_across_batches(db: Database):
    report = import_annuaire(db, generated_lines(1000), batch_size=300)
    with db.reader() as s:
        boxes = s.scalar(select(func.count()).select_from(AnnuaireMailbox))
    assert report.mailboxes == boxes == 1000 and report.problems == 0
