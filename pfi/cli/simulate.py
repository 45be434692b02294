"""`pfi simulate ...`: run the stand-ins of the national services for demos and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfi.cli import simulate_mss

simulate_app = typer.Typer(
    name="simulate",
    help="Run a simulator of an external service (DMP, MSSanté) in the foreground.",
    no_args_is_help=True,
)


@simulate_app.command("dmp")
def dmp(
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 8090,
    tls_certfile: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="serve HTTPS with this cert")
    ] = None,
    tls_keyfile: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    tls_client_cafile: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="require client certs signed by this CA"),
    ] = None,
    trusted_signer: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True, dir_okay=False, help="seal certificate(s) accepted for VIHF and XAdES"
        ),
    ] = None,
    allow_unsigned_submission_sets: Annotated[
        bool, typer.Option(help="accept ITI-41 submissions without a XAdES signature")
    ] = False,
) -> None:
    """Strict DMP simulator: ITI-41 on /repository, ITI-57 on /registry, control on /_sim."""
    from pfi.simulators.dmp import DmpSimulatorServer, SimulatorOptions
    from pfi.simulators.dmp.server import load_certificates

    if (tls_certfile is None) != (tls_keyfile is None):
        raise typer.BadParameter("--tls-certfile and --tls-keyfile go together")
    options = SimulatorOptions(
        require_signed_submission_set=not allow_unsigned_submission_sets,
        trusted_signers=load_certificates(trusted_signer or []),
    )
    server = DmpSimulatorServer(
        host,
        port,
        options=options,
        tls_certfile=tls_certfile,
        tls_keyfile=tls_keyfile,
        tls_client_cafile=tls_client_cafile,
    )
    typer.echo(f"DMP simulator on {server.url} (ITI-41 /repository, ITI-57 /registry, /_sim)")
    server.serve_forever()


simulate_mss.register(simulate_app)
