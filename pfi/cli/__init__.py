"""The `pfi` command. Each command group lives in its own module and registers here."""

from __future__ import annotations

from pfi.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
