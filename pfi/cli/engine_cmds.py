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
    role: Annotated[
        str,
        typer.Option(help="all (default) | intake (MLLP + HTTP only) | workers (relay + stages)"),
    ] = "all",
    with_simulators: Annotated[
        bool,
        typer.Option(help="also start the DMP and MSSanté simulators (what `make run` does)"),
    ] = False,
) -> None:
    """Run the engine until SIGTERM or SIGINT, then drain and exit 0."""
    from pfi.config import DEFAULT_CONFIG_PATH

    if role not in ("all", "intake", "workers"):
        typer.echo("--role must be all, intake or workers", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    if role == "all" and settings.engine.worker_process:
        from pfi.observability import multiprocess

        # before any metric exists: the worker process inherits the directory
        multiprocess.enable(settings.engine.data_dir / "metrics", clear=True)
    from pfi.engine import run_engine  # after metrics are set up for several processes

    path = config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    raise typer.Exit(
        run_engine(
            settings,
            role=role,
            config_path=path.resolve() if path else None,  # type: ignore[arg-type]
            with_simulators=with_simulators,
        )
    )


def migrate(config: ConfigOption = None) -> None:
    """Apply the database migrations and exit."""
    from pfi.store import Database
    from pfi.store.migrate import head_revision, upgrade

    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    upgrade(db)
    typer.echo(f"database at revision {head_revision(db)}")
