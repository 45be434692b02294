"""`pfi outbound list|retry`: the HL7 replies queued for the hospital (ZAM business
acks, masking ORUs) and the retry of one that died.

`retry` puts a dead (or failing) message back at the head of its endpoint's queue with
its attempts reset; the running engine's sender picks it up at its next poll. Audited
as `cli:<OS user>` with the reason given.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy import select

from pfi.cli.options import ConfigOption, cli_actor, open_store
from pfi.delivery.outbound_queue import OutboundRetryRefused, retry_message
from pfi.store.models import OutboundMessage

outbound_app = typer.Typer(
    help="HL7 replies to the hospital (ZAM, masking ORU): list them, retry a dead one.",
    no_args_is_help=True,
)

STATUSES = ("pending", "sent", "failed", "dead")


def register(app: typer.Typer) -> None:
    app.add_typer(outbound_app, name="outbound")


@outbound_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="pending, sent, failed or dead")] = None,
    kind: Annotated[
        str | None, typer.Option(help="zam_z01, zam_z02, zam_z03 or masking_oru")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per message")] = False,
) -> None:
    """List queued HL7 replies, newest first."""
    if status is not None and status not in STATUSES:
        typer.echo(f"error: --status is one of {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    query = select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(limit)
    if status:
        query = query.where(OutboundMessage.status == status)
    if kind:
        query = query.where(OutboundMessage.kind == kind)
    with open_store(config) as db, db.reader() as session:
        rows = list(session.scalars(query))
    for row in rows:
        typer.echo(json.dumps(_json(row), ensure_ascii=False) if as_json else _line(row))
    if not rows and not as_json:
        typer.echo("no outbound messages match", err=True)


@outbound_app.command("retry")
def retry(
    message_id: Annotated[int, typer.Argument(help="the message id (see `pfi outbound list`)")],
    reason: Annotated[str, typer.Option("--reason", help="why it may go now (audited)")] = "",
    config: ConfigOption = None,
) -> None:
    """Send a dead or failing HL7 reply again (attempts reset)."""
    if len(reason.strip()) < 3:
        typer.echo("error: --reason needs a few words (it goes to the audit trail)", err=True)
        raise typer.Exit(2)
    with open_store(config) as db:
        try:
            with db.transaction() as session:
                row = retry_message(session, message_id, actor=cli_actor(), reason=reason.strip())
                line = (
                    f"outbound message {row.id} ({row.kind} to {row.host}:{row.port}) queued again"
                )
        except OutboundRetryRefused as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(line)


def _line(row: OutboundMessage) -> str:
    when = row.sent_at or row.next_attempt_at or row.updated_at
    error = f" — {row.last_error}" if row.last_error and row.status != "sent" else ""
    return (
        f"{row.id:>8} {row.status:<7} {row.kind:<11} {row.host}:{row.port} "
        f"delivery {row.delivery_id} tries {row.attempts} {row.ack_code or '--'} "
        f"{when:%Y-%m-%d %H:%M:%S}Z {row.description}{error}"
    )


def _json(row: OutboundMessage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in OutboundMessage.__table__.columns:
        if column.name == "payload":
            continue
        value = getattr(row, column.name)
        out[column.name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
