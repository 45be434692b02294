"""Reading `config/routes.yaml` with the configuration loader's machinery, so that a
routing mistake reads like any other configuration mistake: `file:line: key: expected`.

Loaded once at engine start (and by `pfi check-routes`); the decision never reads files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pfi.config.loader import (
    ConfigError,
    read_yaml_document,
    validate_document,
)
from pfi.routes.model import DEFER_CROSS_CHECKS, Routes

DEFAULT_ROUTES_PATH = Path("config/routes.yaml")
#: The routes PFI ships, used when no routes file is configured and none is in config/.
BUILTIN_ROUTES_PATH = Path(__file__).with_name("default_routes.yaml")


def routes_path(configured: Path | None) -> Path:
    """The routes file to load: the configured one, else config/routes.yaml when present,
    else the shipped defaults (so that `pfi run` works from an empty directory)."""
    if configured is not None:
        return configured
    return DEFAULT_ROUTES_PATH if DEFAULT_ROUTES_PATH.exists() else BUILTIN_ROUTES_PATH


def load_routes(path: Path, *, known_sources: Iterable[str] | None = None) -> Routes:
    """Load and check a routes file; `ConfigError` lists every problem with its line.

    `known_sources` (the sources of `pfi.yaml`) makes a route naming an undeclared
    source an error instead of a route that silently never matches.
    """
    doc = read_yaml_document(
        Path(path), root_hint="a mapping with routes: (and optionally defaults:, release_triggers:)"
    )
    routes = validate_document(doc, Routes, context={DEFER_CROSS_CHECKS: True})
    problems = routes.problems(known_sources)
    if problems:
        raise ConfigError([doc.problem(key_path, expected) for key_path, expected in problems])
    routes.locate([doc.lines.get(("routes", i)) for i in range(len(routes.routes))])
    return routes


def configured_routes(configured: Path | None, sources: Iterable[str]) -> tuple[Path, Routes]:
    """The routes `pfi.yaml` asks for (`routing.routes_file`, see `routes_path`), checked
    against its sources; `ConfigError` (file:line) if bad.

    The shipped routes name the usual feeds (SGL, RIS, DPI): an installation without one
    of them simply has no document from it, which is no reason to refuse to start.
    """
    path = routes_path(configured)
    known = None if path == BUILTIN_ROUTES_PATH else sources
    return path, load_routes(path, known_sources=known)
