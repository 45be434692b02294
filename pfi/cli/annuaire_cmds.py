"""`pfi annuaire import|show|status`: the MSSanté annuaire extract in the store.

`import` streams the ANS extract (the `.txt`, or the `.zip` it is published in) into a
new generation and switches to it at once: the engine keeps resolving recipients with
the previous annuaire until the new one is complete, and a failed import changes
nothing. Re-running it with the next day's extract replaces the annuaire.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pfi.annuaire.importer import AnnuaireImportBusy, ImportReport, import_annuaire
from pfi.annuaire.lookup import active_import, find_professional
from pfi.cli.options import ConfigOption, open_store
from pfi.transforms.mssante.annuaire import AnnuaireFormatError

annuaire_app = typer.Typer(
    help="The MSSanté annuaire: import the ANS extract, look professionals up.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(annuaire_app, name="annuaire")


@contextmanager
def _text_lines(path: Path, encoding: str) -> Iterator[io.TextIOBase]:
    """The extract's lines: the file itself, or the single .txt inside a .zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith((".txt", ".csv"))]
            if len(names) != 1:
                raise AnnuaireFormatError(
                    f"{path}: expected one .txt extract in the zip, found {names or 'none'}"
                )
            with archive.open(names[0]) as raw:
                yield io.TextIOWrapper(raw, encoding=encoding, newline="")
        return
    with path.open(encoding=encoding, newline="") as text:
        yield text


@annuaire_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the ANS extract")],
    config: ConfigOption = None,
    encoding: Annotated[str, typer.Option(help="text encoding of the extract")] = "utf-8-sig",
    batch_size: Annotated[int, typer.Option(min=100, max=100_000)] = 5000,
    force: Annotated[
        bool, typer.Option("--force", help="even if another import seems to be loading")
    ] = False,
) -> None:
    """Import the extract; replaces the annuaire atomically. Prints counts and problems."""
    started = time.monotonic()
    with open_store(config) as db:
        try:
            with _text_lines(file, encoding) as lines:
                report = import_annuaire(
                    db, lines, source=str(file), batch_size=batch_size, force=force
                )
        except AnnuaireFormatError as exc:
            typer.echo(f"error: {file}: {exc}", err=True)
            raise typer.Exit(1) from None
        except AnnuaireImportBusy as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except UnicodeDecodeError as exc:
            typer.echo(f"error: {file}: not {encoding} text ({exc}); try --encoding", err=True)
            raise typer.Exit(1) from None
    _print_report(report, time.monotonic() - started)


def _print_report(report: ImportReport, seconds: float) -> None:
    typer.echo(
        f"annuaire import {report.import_id}: {report.lines_read} lines, "
        f"{report.professionals} professionals, {report.mailboxes} mailboxes, "
        f"{report.duplicates} duplicate(s), {report.problems} problem line(s) "
        f"in {seconds:.1f}s"
        + (f" (replaces import {report.replaced_import_id})" if report.replaced_import_id else "")
    )
    for problem in report.problem_sample:
        typer.echo(f"  {problem}", err=True)
    if report.problems > len(report.problem_sample):
        typer.echo(f"  ... {report.problems - len(report.problem_sample)} more", err=True)


@annuaire_app.command("show")
def show(
    identifier: Annotated[str, typer.Argument(help="RPPS, ADELI or national id (idNat)")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A professional and their MSSanté mailboxes, from the active annuaire."""
    with open_store(config) as db, db.reader() as session:
        found = find_professional(session, identifier)
    if found is None:
        typer.echo(f"{identifier}: not in the annuaire", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "national_id": found.national_id,
                    "id_type": found.id_type,
                    "identifier": found.identifier,
                    "name": found.display_name,
                    "profession": found.profession_label,
                    "specialty": found.specialty_label,
                    "mailboxes": [
                        {"address": m.address, "kind": m.kind, "structure": m.structure_name}
                        for m in found.mailboxes
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    typer.echo(
        f"{found.national_id} {found.display_name} — {found.profession_label}"
        + (f", {found.specialty_label}" if found.specialty_label else "")
    )
    if not found.mailboxes:
        typer.echo("  no MSSanté mailbox")
    for m in found.mailboxes:
        where = " / ".join(p for p in (m.structure_name, m.service) if p)
        typer.echo(f"  {m.kind:<3} {m.address}" + (f"  ({where})" if where else ""))


@annuaire_app.command("status")
def status(config: ConfigOption = None) -> None:
    """The active annuaire: when imported, from which file, with what counts."""
    with open_store(config) as db, db.reader() as session:
        current = active_import(session)
        if current is None:
            typer.echo("no annuaire imported (`pfi annuaire import FILE`)")
            return
        typer.echo(
            f"import {current.id} of {current.finished_at:%Y-%m-%d %H:%M}Z from "
            f"{current.source}: {current.professionals} professionals, {current.mailboxes} "
            f"mailboxes, {current.problems} problem line(s)"
        )
