"""Options shared by several commands, and how they load the configuration."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from pfi.config import ConfigError, Settings, load_settings
from pfi.store import Database
from pfi.store.migrate import current_revision, head_revision

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="configuration file (default: config/pfi.yaml when present, else built-in defaults)",
        envvar="PFI_CONFIG",
    ),
]


def settings_or_exit(path: Path | None) -> Settings:
    """Load the configuration or print every problem and exit 2 (usage error)."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        typer.echo("configuration error:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def open_store(config: Path | None) -> Iterator[Database]:
    """The configured store, checked to be at the current schema, disposed on exit."""
    db = Database(settings_or_exit(config).database_url)
    try:
        current, head = current_revision(db), head_revision(db)
        if current != head:
            typer.echo(
                f"database {safe_url(db.url)} is at revision {current or 'none'}, "
                f"not {head}: run `pfi migrate` first",
                err=True,
            )
            raise typer.Exit(2)
        yield db
    finally:
        db.dispose()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


def safe_url(url: str) -> str:
    """The URL without its password, for error messages."""
    return make_url(url).render_as_string(hide_password=True)
