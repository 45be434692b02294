"""Root Typer application and the command groups mounted on it."""

from __future__ import annotations

import typer

from pfi.cli import (
    annuaire_cmds,
    config_cmds,
    deliveries_cmds,
    documents_cmds,
    engine_cmds,
    holds_cmds,
    inbound_cmds,
    intake_cmds,
    observability_cmds,
    outbound_cmds,
    report_cmds,
    users_cmds,
)
from pfi.cli.simulate import simulate_app

app = typer.Typer(
    name="pfi",
    help="PFI hospital integration engine: HL7 v2 in, CI-SIS CDA out to DMP and MSSanté.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

engine_cmds.register(app)
config_cmds.register(app)
intake_cmds.register(app)
observability_cmds.register(app)
users_cmds.register(app)
report_cmds.register(app)
holds_cmds.register(app)
documents_cmds.register(app)
inbound_cmds.register(app)
deliveries_cmds.register(app)
outbound_cmds.register(app)
annuaire_cmds.register(app)
app.add_typer(simulate_app, name="simulate")
