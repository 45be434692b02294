"""Options shared by several commands, and how they load the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfi.config import ConfigError, Settings, load_settings

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
