"""The `routing:` section of pfi.yaml: where the routes file is.

The routes themselves live in their own file (`config/routes.yaml`, docs/routes.md): the
integration team edits and reviews them apart from the engine's settings, and
`pfi check-routes` checks them alone. The engine loads that file once at start and
refuses to start on a bad one, with the file:line of every problem. Like pfi.yaml, it is
optional: `pfi run` from an empty directory routes with the routes PFI ships (the same
as config/routes.yaml in the repository).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pfi.config.base import Section


class RoutingSettings(Section):
    routes_file: Path | None = Field(
        default=None,
        description="the routes file (docs/routes.md), relative to the directory PFI runs "
        "in; empty: config/routes.yaml when present, else the routes PFI ships",
    )
