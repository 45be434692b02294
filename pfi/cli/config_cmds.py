"""`pfi check-config` and `pfi version`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfi import __version__
from pfi.cli.options import settings_or_exit


def register(app: typer.Typer) -> None:
    app.command("check-config")(check_config)
    app.command("version")(version)


def check_config(
    path: Annotated[Path, typer.Argument(help="configuration file to check")],
) -> None:
    """Validate a configuration file; exit 2 with file:line, key and expectation on error."""
    settings = settings_or_exit(path)
    broker = settings.kafka.bootstrap_servers or "embedded Tansu broker"
    typer.echo(f"{path}: OK ({len(settings.sources)} sources, broker: {broker})")


def version() -> None:
    """Print the PFI version."""
    typer.echo(f"pfi {__version__}")
