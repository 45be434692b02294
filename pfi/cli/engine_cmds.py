"""`pfi run` and `pfi migrate`: start the engine, or only bring the schema up to date."""

from __future__ import annotations

from typing import Annotated

import typer

from pfi.cli.options import ConfigOption, settings_or_exit


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("migrate")(migrate)


def run(
    config: ConfigOption = None,
    with_simulators: Annotated[
        bool,
        typer.Option(help="also start the DMP and MSSanté simulators (what `make run` does)"),
    ] = False,
) -> None:
    """Run the engine until SIGTERM or SIGINT, then drain and exit 0."""
    from pfi.engine import run_engine

    settings = settings_or_exit(config)
    raise typer.Exit(run_engine(settings, with_simulators=with_simulators))


def migrate(config: ConfigOption = None) -> None:
    """Apply the database migrations and exit."""
    from pfi.store import Database
    from pfi.store.migrate import head_revision, upgrade

    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    upgrade(db)
    typer.echo(f"database at revision {head_revision(db)}")
