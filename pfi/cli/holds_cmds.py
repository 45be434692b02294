"""`pfi holds list|release`: what waits, and its release by the on-call team.

The same act as `POST /api/holds/{id}/release`: the hold's kind ends for the document
version, routing decides again with the configured routes, and what may leave now is
written to the outbox in the same transaction (the running engine publishes it). The
release is audited as `cli:<OS user>` with the reason given.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pfi.bus.outbox import add_to_outbox
from pfi.cli.options import ConfigOption, cli_actor, open_store, settings_or_exit
from pfi.config import ConfigError
from pfi.routes.hold_queries import HoldFilter, HoldListing, find_holds
from pfi.routes.loader import configured_routes
from pfi.routes.router import Router, RoutingRefused

holds_app = typer.Typer(
    help="Held deliveries: list them, release them (announcement, retain, review).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(holds_app, name="holds")


@holds_app.command("list")
def list_(
    open_only: Annotated[bool, typer.Option("--open", help="only holds not yet released")] = False,
    kind: Annotated[
        str | None,
        typer.Option(help="identity, announcement, retain, masking, review, unmapped_code..."),
    ] = None,
    document: Annotated[int | None, typer.Option(help="only this document id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per hold")] = False,
) -> None:
    """List holds, newest first."""
    f = HoldFilter(open_only=open_only, kind=kind, document_id=document, limit=limit)
    with open_store(config) as db, db.reader() as session:
        holds = find_holds(session, f)
    for h in holds:
        typer.echo(json.dumps(_json(h), ensure_ascii=False) if as_json else _line(h))
    if not holds and not as_json:
        typer.echo("no holds match", err=True)


@holds_app.command("release")
def release(
    hold_id: Annotated[int, typer.Argument(help="the hold id (see `pfi holds list`)")],
    reason: Annotated[str, typer.Option("--reason", help="why it may go now (audited)")],
    config: ConfigOption = None,
) -> None:
    """Release a hold: route its document version again and publish what may go now."""
    if len(reason.strip()) < 3:
        typer.echo("error: --reason needs a few words (it goes to the audit trail)", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    try:
        router = Router(configured_routes(settings.routing.routes_file, settings.sources)[1])
    except ConfigError as exc:
        typer.echo("routes error:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    with open_store(config) as db:
        try:
            with db.transaction() as session:
                hold, changes = router.release_hold(
                    session, hold_id, actor=cli_actor(), reason=reason.strip()
                )
                add_to_outbox(session, changes.outgoing)
        except RoutingRefused as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"hold {hold.id} ({hold.kind}) released: {len(changes.sent)} delivery(ies) published"
        + (
            f" ({len(changes.masking_updates)} DMP masking update(s))"
            if changes.masking_updates
            else ""
        )
        + (f", {len(changes.held)} still held" if changes.held else "")
        + (f", {len(changes.refused)} refused" if changes.refused else "")
    )


def _line(h: HoldListing) -> str:
    state = "OPEN" if h.is_open else f"released {h.released_at:%Y-%m-%d %H:%M}Z by {h.released_by}"
    where = f"{h.destination} {h.recipient}".strip() if h.destination else "(whole version)"
    return (
        f"{h.id:>8} {h.kind:<13} {state:<16} doc {h.document_id} {h.document_type} "
        f"v{h.version} {h.source:<6} {where}  since {h.created_at:%Y-%m-%d %H:%M}Z — {h.reason}"
    )


def _json(h: HoldListing) -> dict[str, object]:
    def iso(value: object) -> object:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return {name: iso(getattr(h, name)) for name in h.__dataclass_fields__}
