"""`pfi deliveries list|show|replay`: the delivery ledger for the on-call team.

A replay is the same act as `POST /api/deliveries/{id}/replay` (see
`pfi.delivery.operations`): the row goes back to pending, a DeliveryRequest is written
to the outbox in the same transaction, and the running engine's outbox relay publishes
it at its next poll (a fraction of a second), as for `pfi holds release`. Audited as
`cli:<OS user>` with the reason given.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from pfi.cli.options import ConfigOption, cli_actor, open_store
from pfi.delivery.operations import (
    MAX_BULK_REPLAY,
    REPLAYABLE,
    DeliveryDetail,
    DeliveryFilter,
    DeliveryListing,
    ReplayRefused,
    find_deliveries,
    get_delivery,
    replay_delivery,
    replay_matching,
)

deliveries_app = typer.Typer(
    help="The delivery ledger: list deliveries, show one, replay refused or failed ones.",
    no_args_is_help=True,
)

DESTINATIONS = ("dmp", "mss_pro", "mss_patient")


def register(app: typer.Typer) -> None:
    app.add_typer(deliveries_app, name="deliveries")
    app.command("replay")(replay_dead_letters)


@deliveries_app.command("list")
def list_(
    status: Annotated[
        str | None,
        typer.Option(help="pending, sending, delivered, refused, failed, dead_letter, held..."),
    ] = None,
    destination: Annotated[str | None, typer.Option(help="dmp, mss_pro or mss_patient")] = None,
    document_type: Annotated[
        str | None, typer.Option("--document-type", help="CR-BIO, CR-IMG, OTHER")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="changed at or after (ISO date/time, UTC)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per delivery")] = False,
) -> None:
    """List deliveries, newest first."""
    f = DeliveryFilter(
        status=status,
        destination=destination,
        document_type=document_type,
        since=_utc(since),
        limit=limit,
    )
    with open_store(config) as db, db.reader() as session:
        rows = find_deliveries(session, f)
    for row in rows:
        typer.echo(json.dumps(_json(row), ensure_ascii=False) if as_json else _line(row))
    if not rows and not as_json:
        typer.echo("no deliveries match", err=True)


@deliveries_app.command("show")
def show(
    delivery_id: Annotated[int, typer.Argument(help="the delivery id")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One delivery: its document, attempts, reasons, holds, dead letters and audit trail."""
    with open_store(config) as db, db.reader() as session:
        detail = get_delivery(session, delivery_id)
    if detail is None:
        typer.echo(f"error: no delivery {delivery_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(detail_json(detail), ensure_ascii=False, indent=2))
        return
    for line in _detail_lines(detail):
        typer.echo(line)


@deliveries_app.command("replay")
def replay(
    delivery_ids: Annotated[
        list[int] | None, typer.Argument(help="delivery ids (or select with --status)")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="why it may go now (audited)")] = "",
    status: Annotated[
        str | None, typer.Option(help="replay every delivery in this status: refused, failed...")
    ] = None,
    destination: Annotated[
        str | None, typer.Option(help="with --status: only this destination")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_BULK_REPLAY, help="with --status: at most this many")
    ] = 100,
    config: ConfigOption = None,
) -> None:
    """Send refused, failed or dead-lettered deliveries again."""
    if len(reason.strip()) < 3:
        typer.echo("error: --reason needs a few words (it goes to the audit trail)", err=True)
        raise typer.Exit(2)
    if bool(delivery_ids) == bool(status):
        typer.echo("error: give delivery ids, or --status (and --destination), not both", err=True)
        raise typer.Exit(2)
    if status is not None and status not in REPLAYABLE:
        typer.echo(
            f"error: --status {status} is not replayed; one of {', '.join(sorted(REPLAYABLE))}",
            err=True,
        )
        raise typer.Exit(2)
    if destination is not None and destination not in DESTINATIONS:
        typer.echo(f"error: --destination is one of {', '.join(DESTINATIONS)}", err=True)
        raise typer.Exit(2)
    actor = cli_actor()
    with open_store(config) as db:
        if status is not None:
            with db.transaction() as session:
                results = replay_matching(
                    session,
                    status=status,
                    destination=destination,
                    actor=actor,
                    reason=reason,
                    limit=limit,
                )
            typer.echo(
                f"{len(results)} delivery(ies) replayed"
                + (f": {', '.join(str(r.delivery_id) for r in results)}" if results else "")
            )
            return
        failed = 0
        for delivery_id in delivery_ids or []:
            try:
                with db.transaction() as session:
                    result = replay_delivery(session, delivery_id, actor=actor, reason=reason)
            except ReplayRefused as exc:
                typer.echo(f"error: {exc}", err=True)
                failed += 1
                continue
            dead = (
                f", dead letter(s) {', '.join(map(str, result.dead_letters_replayed))} replayed"
                if result.dead_letters_replayed
                else ""
            )
            typer.echo(
                f"delivery {result.delivery_id} ({result.destination}) replayed: "
                f"{result.previous_status} -> pending{dead}"
            )
    if failed:
        raise typer.Exit(1)


def replay_dead_letters(
    delivery_ids: Annotated[
        list[int] | None, typer.Argument(help="delivery ids (default: every dead letter)")
    ] = None,
    destination: Annotated[str | None, typer.Option(help="only this destination")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="only dead letters since (ISO date or time, UTC)")
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="why it may go now (audited)")
    ] = "replayed by an operator",
    limit: Annotated[int, typer.Option(min=1, max=MAX_BULK_REPLAY)] = 100,
    config: ConfigOption = None,
) -> None:
    """Send dead-lettered deliveries again (`pfi deliveries replay` for other statuses)."""
    if delivery_ids:
        if destination or since:
            typer.echo("error: give delivery ids, or --destination/--since, not both", err=True)
            raise typer.Exit(2)
        replay(delivery_ids, reason=reason, config=config)
        return
    if destination is not None and destination not in DESTINATIONS:
        typer.echo(f"error: --destination is one of {', '.join(DESTINATIONS)}", err=True)
        raise typer.Exit(2)
    with open_store(config) as db, db.transaction() as session:
        results = replay_matching(
            session,
            status="dead_letter",
            destination=destination,
            actor=cli_actor(),
            reason=reason,
            limit=limit,
            since=_utc(since),
        )
    typer.echo(
        f"{len(results)} dead-lettered delivery(ies) replayed"
        + (f": {', '.join(str(r.delivery_id) for r in results)}" if results else "")
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _line(d: DeliveryListing) -> str:
    why = d.refusal_reason or d.last_error or ""
    where = f"{d.destination} {d.recipient}".strip()
    return (
        f"{d.id:>8} {d.status:<12} {where:<40} {d.operation:<14} doc {d.document_id} "
        f"{d.document_type} v{d.version} {d.source:<6} tries {d.attempts} "
        f"{d.updated_at:%Y-%m-%d %H:%M}Z" + (f" — {why}" if why else "")
    )


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _json(d: DeliveryListing) -> dict[str, Any]:
    return {name: _iso(getattr(d, name)) for name in d.__dataclass_fields__}


def detail_json(detail: DeliveryDetail) -> dict[str, Any]:
    def obj(item: Any) -> dict[str, Any]:
        return {name: _iso(getattr(item, name)) for name in item.__dataclass_fields__}

    return {
        "delivery": _json(detail.delivery),
        "request": detail.request,
        "holds": [obj(h) for h in detail.holds],
        "dead_letters": [obj(d) for d in detail.dead_letters],
        "audit": [obj(a) for a in detail.audit],
    }


def _detail_lines(detail: DeliveryDetail) -> list[str]:
    d = detail.delivery
    lines = [
        f"delivery {d.id}: {d.status} — {d.destination} {d.recipient}".rstrip(),
        f"  document {d.document_id} {d.set_id} ({d.document_type} {d.title!r}) "
        f"version {d.version} {d.action}, source {d.source}, patient {d.patient_id}",
        f"  operation {d.operation} revision {d.revision}, attempts {d.attempts}"
        + (f", next attempt {d.next_attempt_at:%Y-%m-%d %H:%M:%S}Z" if d.next_attempt_at else ""),
        f"  created {d.created_at:%Y-%m-%d %H:%M:%S}Z, changed {d.updated_at:%Y-%m-%d %H:%M:%S}Z"
        + (f", delivered {d.delivered_at:%Y-%m-%d %H:%M:%S}Z" if d.delivered_at else ""),
    ]
    if d.external_id:
        lines.append(f"  external id {d.external_id}")
    if d.refusal_reason:
        lines.append(f"  refused: {d.refusal_reason}")
    if d.last_error:
        lines.append(f"  last error: {d.last_error}")
    for r in detail.replays:
        lines.append(
            f"  replayed {r.get('at')} by {r.get('by')} from {r.get('previous_status')} "
            f"(reason: {r.get('reason')}; was: {r.get('refusal_reason') or r.get('last_error')})"
        )
    for h in detail.holds:
        state = "OPEN" if h.released_at is None else f"released by {h.released_by}"
        lines.append(f"  hold {h.id} {h.kind} {state}: {h.reason}")
    for dl in detail.dead_letters:
        lines.append(
            f"  dead letter {dl.id} ({dl.stage}, {dl.status}, replayed {dl.replay_count}x): "
            f"{dl.error_type}: {dl.error}"
        )
    for a in detail.audit:
        lines.append(
            f"  audit {a.at:%Y-%m-%d %H:%M:%S}Z {a.actor} {a.action}"
            + (f" — {a.reason}" if a.reason else "")
        )
    return lines
