"""`pfi send`, `pfi messages`, `pfi patients show`: the intake seen from a terminal."""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path
from typing import Annotated

import typer

from pfi.adapters.mllp import MllpClient, MllpError
from pfi.cli.options import ConfigOption, open_store
from pfi.identity import queries as patient_queries
from pfi.intake.queries import MessageFilter, find_messages
from pfi.transforms.hl7 import parse_message

patients_app = typer.Typer(
    help="Patients as the identity feeds describe them.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.command("messages")(messages)
    app.add_typer(patients_app, name="patients")


_MESSAGE_START = re.compile(rb"(?:^|[\r\n])(?=MSH\|)")


def split_messages(data: bytes) -> list[bytes]:
    """A file may hold several messages: each starts with an MSH segment."""
    parts = [p.strip(b"\r\n \t\x0b\x1c") for p in _MESSAGE_START.split(data)]
    return [p + b"\r" for p in parts if p.startswith(b"MSH")]


def send(
    files: Annotated[
        list[Path],
        typer.Argument(help="files holding one or more messages", exists=True, dir_okay=False),
    ],
    port: Annotated[int, typer.Option(help="MLLP port (DPI 2575, SGL 2576, RIS 2577)")],
    host: Annotated[str, typer.Option(help="listener host")] = "127.0.0.1",
    timeout: Annotated[float, typer.Option(help="seconds to wait for each ACK")] = 30.0,
    tls_ca: Annotated[Path | None, typer.Option(help="CA bundle: use TLS")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="client certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="client key (PEM)")] = None,
) -> None:
    """Send HL7 messages over MLLP and print each ACK; exit 1 if any is not AA/CA."""
    context = None
    if tls_ca is not None:
        context = ssl.create_default_context(cafile=str(tls_ca))
        if tls_cert is not None:
            context.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
    failures = 0
    try:
        with MllpClient(host, port, timeout_s=timeout, ssl_context=context) as client:
            for path in files:
                for index, message in enumerate(split_messages(path.read_bytes()), start=1):
                    ack = client.send(message)
                    code, text = _ack_summary(ack)
                    failures += code not in ("AA", "CA")
                    typer.echo(f"{path.name}#{index}: {code} {text}".rstrip())
    except MllpError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(1 if failures else 0)


def _ack_summary(ack: bytes) -> tuple[str, str]:
    try:
        msg = parse_message(ack, "8859/1")
    except Exception:
        return "??", repr(ack[:200])
    code = msg.get("MSA-1")
    detail = msg.get("MSA-2")
    err = msg.first("ERR")
    if err is not None:
        text = err.get(8) or msg.get("MSA-3") or err.get(3, 2)
        where = err.get(2, 1) + (f"-{err.get(2, 3)}" if err.get(2, 3) else "")
        detail += f" ERR {err.get(3, 1) or err.get(1, 4, 1)} {where}: {text}"
    return code, detail


def messages(
    config: ConfigOption = None,
    source: Annotated[str | None, typer.Option(help="DPI, SGL, RIS...")] = None,
    status: Annotated[str | None, typer.Option(help="accepted | rejected | duplicate")] = None,
    control_id: Annotated[str | None, typer.Option(help="MSH-10")] = None,
    ipp: Annotated[str | None, typer.Option(help="patient IPP (PID-3)")] = None,
    ins: Annotated[str | None, typer.Option(help="patient INS (PID-3, type INS)")] = None,
    limit: Annotated[int, typer.Option(help="newest first, at most")] = 50,
    raw: Annotated[bool, typer.Option(help="print each message's raw text too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """List stored messages, newest first."""
    if status and status not in ("accepted", "rejected", "duplicate"):
        typer.echo("--status must be accepted, rejected or duplicate", err=True)
        raise typer.Exit(2)
    with open_store(config) as db, db.reader() as session:
        rows = find_messages(session, MessageFilter(source, status, control_id, ipp, ins, limit))
        for m in rows:
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "id": m.id,
                            "source": m.source,
                            "received_at": m.received_at.isoformat(),
                            "sender": f"{m.sending_application}|{m.sending_facility}",
                            "control_id": m.control_id,
                            "type": m.message_type,
                            "status": m.status,
                            "ack": m.ack_code,
                            "ipp": m.ipp,
                            "ins": m.ins,
                            "reason": m.reason,
                            "duplicate_of": m.duplicate_of,
                            "size": m.size,
                        },
                        ensure_ascii=False,
                    )
                )
                continue
            line = (
                f"{m.id:>8} {m.received_at:%Y-%m-%d %H:%M:%S} {m.source:<4} "
                f"{m.message_type:<8} {m.control_id:<20} {m.status:<9} {m.ack_code} "
                f"ipp={m.ipp or '-'} ins={m.ins or '-'}"
            )
            if m.duplicate_of:
                line += f" duplicate_of={m.duplicate_of}"
            typer.echo(line)
            if m.reason:
                typer.echo(f"{'':>9}reason: {m.reason}")
            if raw:
                typer.echo(m.raw.decode("latin-1").replace("\r", "\n"))


@patients_app.command("show")
def patients_show(
    key: Annotated[str, typer.Argument(help="an IPP (any authority) or an INS")],
    config: ConfigOption = None,
) -> None:
    """Show a patient: identity, INS status, identifiers, PAM data and history."""
    with open_store(config) as db, db.reader() as session:
        found = patient_queries.find_patients(session, key)
        if not found:
            typer.echo(f"no patient with IPP or INS {key!r}", err=True)
            raise typer.Exit(1)
        for p in found:
            qualified = "qualified" if p.qualified else "NOT qualified"
            typer.echo(
                f"patient {p.id}: {p.birth_name} ({p.used_name or '-'}) {p.first_name}"
                f" [{p.first_names}] born {p.birth_date or '?'} sex {p.sex or '?'}"
                f" birthplace {p.birth_place or '-'}"
            )
            typer.echo(
                f"  INS: {p.ins or '-'} ({p.ins_oid or '-'})  identity status "
                f"{p.identity_status or '-'}: {qualified}"
            )
            for ident in p.identifiers:
                typer.echo(
                    f"  identifier {ident.value} ^ {ident.authority} "
                    f"({ident.authority_oid or '-'}) type {ident.type_code or '-'}"
                )
            if p.attending:
                a = p.attending
                typer.echo(
                    f"  médecin traitant: {a.get('given_name', '')} "
                    f"{a.get('family_name', '')} ({a.get('id_type', '')} {a.get('id', '')})"
                )
            for seg, fields in sorted((p.pam or {}).items()):
                typer.echo(f"  {seg}: " + " ".join(f"{k}={v}" for k, v in fields.items()))
            for other in patient_queries.absorbed_into(session, p.id):
                typer.echo(f"  absorbed patient {other} (merged)")
            for other in patient_queries.links(session, p.id):
                typer.echo(f"  linked to patient {other}")
            typer.echo("  history:")
            for ev in patient_queries.history(session, p.id):
                when = ev.event_at.isoformat() if ev.event_at else "-"
                typer.echo(
                    f"    {ev.recorded_at:%Y-%m-%d %H:%M:%S} {ev.trigger:<4} event {when} "
                    f"{ev.outcome}: {json.dumps(ev.changes, ensure_ascii=False)}"
                )
