"""`pfi check-config`, `pfi check-routes` and `pfi version`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfi import __version__
from pfi.cli.options import ConfigOption, settings_or_exit
from pfi.config import ConfigError
from pfi.routes import DEFAULT_ROUTES_PATH, load_routes
from pfi.routes.loader import configured_routes


def register(app: typer.Typer) -> None:
    app.command("check-config")(check_config)
    app.command("check-routes")(check_routes)
    app.command("version")(version)


def check_config(
    path: Annotated[Path, typer.Argument(help="configuration file to check")],
) -> None:
    """Validate a configuration file and the routes file it names (`routing.routes_file`);
    exit 2 with file:line, key and expectation on error."""
    settings = settings_or_exit(path)
    try:
        routes_file, routes = configured_routes(settings.routing.routes_file, settings.sources)
    except ConfigError as exc:
        typer.echo("routes error:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    broker = settings.kafka.bootstrap_servers or "embedded Tansu broker"
    typer.echo(
        f"{path}: OK ({len(settings.sources)} sources, broker: {broker}; "
        f"{routes_file}: {len(routes.routes)} routes)"
    )


def check_routes(
    path: Annotated[Path, typer.Argument(help="routes file to check")] = DEFAULT_ROUTES_PATH,
    config: ConfigOption = None,
) -> None:
    """Validate a routes file (and its sources against the configuration); exit 2 on error."""
    settings = settings_or_exit(config)
    try:
        routes = load_routes(path, known_sources=settings.sources)
    except ConfigError as exc:
        typer.echo("routes error:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{path}: OK ({len(routes.routes)} routes, {len(routes.release_triggers)} release triggers)"
    )


def version() -> None:
    """Print the PFI version."""
    typer.echo(f"pfi {__version__}")
