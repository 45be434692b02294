"""`pfi simulate mss`: run the MSSanté simulator in the foreground.

`register(simulate_app)` adds the command to the `simulate` Typer group (pfi/cli/simulate.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from pfi.simulators.mssante import MssSimulator, SimulatorTls


def register(simulate_app: typer.Typer) -> None:
    simulate_app.command("mss")(simulate_mss)


def simulate_mss(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    smtp_port: Annotated[int, typer.Option(help="SMTP relay port")] = 2525,
    imap_port: Annotated[int, typer.Option(help="IMAP port of the application mailboxes")] = 1143,
    http_port: Annotated[int, typer.Option(help="HTTP inspection/control port")] = 8091,
    mailbox: Annotated[
        list[str],
        typer.Option(help="application mailbox served over IMAP, as ADDRESS:PASSWORD"),
    ] = ["pfi@hopital.mssante.fr:pfi"],  # noqa: B006 - Typer needs a literal default
    unknown: Annotated[list[str], typer.Option(help="address that bounces (repeatable)")] = [],  # noqa: B006
    opposed: Annotated[
        list[str], typer.Option(help="patient address that auto-replies an opposition")
    ] = [],  # noqa: B006
    reject_unknown: Annotated[
        bool, typer.Option(help="refuse unknown addresses at RCPT (550) instead of bouncing")
    ] = False,
    certfile: Annotated[
        Path | None, typer.Option(help="server certificate (PEM): enables TLS")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="server private key (PEM)")] = None,
    cafile: Annotated[Path | None, typer.Option(help="CA of the client certificates")] = None,
    require_client_cert: Annotated[
        bool, typer.Option(help="refuse clients without a certificate")
    ] = False,
) -> None:
    """Run the strict MSSanté simulator (SMTP + IMAP + HTTP) until Ctrl-C."""
    boxes = {}
    for spec in mailbox:
        address, sep, password = spec.partition(":")
        if not sep or "@" not in address:
            raise typer.BadParameter(f"--mailbox {spec!r}: expected ADDRESS:PASSWORD")
        boxes[address] = password
    tls = None
    if certfile or keyfile:
        if not (certfile and keyfile):
            raise typer.BadParameter("--certfile and --keyfile go together")
        tls = SimulatorTls(certfile, keyfile, cafile, require_client_cert=require_client_cert)
    sim = MssSimulator(
        host=host,
        smtp_port=smtp_port,
        imap_port=imap_port,
        http_port=http_port,
        mailboxes=boxes,
        tls=tls,
        unknown=list(unknown),
        opposed=list(opposed),
        unknown_mode="reject" if reject_unknown else "bounce",
    )
    typer.echo(
        f"MSSanté simulator: SMTP {host}:{smtp_port}, IMAP {host}:{imap_port}, "
        f"HTTP http://{host}:{http_port}/_sim/messages (Ctrl-C to stop)"
    )
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
