"""`pfi inbound poll` and `pfi inbound ko list|show|assign|retry|reject`.

The KO worklist holds the documents received by MSSanté that PFI could not hand to the
DPI alone (no patient found, unreadable, refused by the DPI). Each resolution is the
same act as the matching `POST /api/inbound/ko/{id}/...`, audited as `cli:<OS user>`
with the reason given; assign and retry send the MDM to the DPI at once.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pfi.cli.options import ConfigOption, cli_actor, open_store, settings_or_exit
from pfi.inbound.config import InboundConfig

# pfi.inbound.service creates metrics: imported inside the commands, so that `pfi run`
# can enable multiprocess metrics before any exists.
from pfi.inbound.worklist import InboundItem, WorklistError, get_item, list_ko

inbound_app = typer.Typer(
    help="Documents received by MSSanté: poll the mailbox, resolve the KO worklist.",
    no_args_is_help=True,
)
ko_app = typer.Typer(
    help="Documents that could not be integrated: list, show, assign, retry, reject.",
    no_args_is_help=True,
)
inbound_app.add_typer(ko_app, name="ko")

ReasonOption = Annotated[str, typer.Option("--reason", help="why (goes to the audit trail)")]


def register(app: typer.Typer) -> None:
    app.add_typer(inbound_app, name="inbound")


@inbound_app.command("poll")
def poll(config: ConfigOption = None) -> None:
    """Poll the mailbox once and integrate what waits (what the engine does periodically)."""
    from pfi.inbound.service import InboundIntegrator

    cfg = _config_or_exit(config)
    with open_store(config) as db:
        summary = InboundIntegrator(db, cfg).poll_once()
    typer.echo(
        f"{summary.fetched} fetched, {summary.kept} kept, {summary.already_kept} already kept, "
        f"{summary.reports} report(s) left, {summary.integrated} integrated, {summary.ko} KO, "
        f"{summary.pending} pending"
    )
    if summary.imap_error:
        typer.echo(f"mailbox not read: {summary.imap_error}", err=True)
        raise typer.Exit(1)


@ko_app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    status: Annotated[
        str, typer.Option(help="ko (the worklist), pending, sending, integrated, rejected")
    ] = "ko",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """KO documents (or those of another status), newest first."""
    with open_store(config) as db, db.reader() as session:
        try:
            items = list_ko(session, limit=limit, status=status)
        except WorklistError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    for item in items:
        typer.echo(json.dumps(item_json(item), ensure_ascii=False) if as_json else _line(item))
    if not items and not as_json:
        typer.echo(f"no {status} inbound documents", err=True)


@ko_app.command("show")
def show(
    document_id: Annotated[int, typer.Argument(help="the id `pfi inbound ko list` shows")],
    config: ConfigOption = None,
) -> None:
    """Everything known about one received document (KO or not)."""
    with open_store(config) as db, db.reader() as session:
        try:
            item = get_item(session, document_id)
        except WorklistError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    for key, value in item_json(item).items():
        typer.echo(f"{key:>15}: {'' if value is None else value}")


@ko_app.command("assign")
def assign(
    document_id: Annotated[int, typer.Argument()],
    patient: Annotated[str, typer.Option("--patient", help="the patient's IPP or INS")],
    reason: ReasonOption,
    config: ConfigOption = None,
) -> None:
    """Attach the document to this patient and send it to the DPI."""
    _resolve(config, document_id, "assign", reason, patient_key=patient)


@ko_app.command("retry")
def retry(
    document_id: Annotated[int, typer.Argument()],
    reason: Annotated[
        str, typer.Option("--reason", help="why (audited)")
    ] = "retried by the operator",
    config: ConfigOption = None,
) -> None:
    """Look the patient up again and send the document to the DPI."""
    _resolve(config, document_id, "retry", reason)


@ko_app.command("reject")
def reject(
    document_id: Annotated[int, typer.Argument()],
    reason: ReasonOption,
    config: ConfigOption = None,
) -> None:
    """Close the document without integrating it."""
    from pfi.inbound.service import reject_document

    _check_reason(reason)
    with open_store(config) as db:
        try:
            reject_document(db, document_id, actor=cli_actor(), reason=reason.strip())
        except WorklistError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"inbound document {document_id} rejected")


def _resolve(
    config: ConfigOption, document_id: int, act: str, reason: str, *, patient_key: str = ""
) -> None:
    from pfi.inbound.service import InboundIntegrator, resolve_and_integrate

    _check_reason(reason)
    cfg = _config_or_exit(config)
    with open_store(config) as db:
        try:
            outcome = resolve_and_integrate(
                InboundIntegrator(db, cfg),
                document_id,
                act,
                actor=cli_actor(),
                reason=reason.strip(),
                patient_key=patient_key,
            )
        except WorklistError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        with db.reader() as session:
            item = get_item(session, document_id)
    if outcome == "integrated":
        typer.echo(
            f"inbound document {document_id} integrated: patient {item.patient_id}, "
            f"MDM {item.mdm_control_id} acknowledged {item.dpi_ack_code}"
        )
    elif outcome == "pending":
        typer.echo(
            f"inbound document {document_id} waits for the DPI ({item.last_error}); "
            "the engine sends it at its next poll"
        )
    else:
        typer.echo(f"inbound document {document_id} is KO again: {item.reason}", err=True)
        raise typer.Exit(1)


def _check_reason(reason: str) -> None:
    if len(reason.strip()) < 3:
        typer.echo("error: --reason needs a few words (it goes to the audit trail)", err=True)
        raise typer.Exit(2)


def _config_or_exit(config: ConfigOption) -> InboundConfig:
    cfg = InboundConfig.of(settings_or_exit(config))
    if cfg is None:
        typer.echo(
            "error: mssante.inbound is not configured (the DPI endpoint for the MDM messages)",
            err=True,
        )
        raise typer.Exit(2)
    return cfg


def _line(item: InboundItem) -> str:
    return (
        f"{item.id:>8} {item.received_at:%Y-%m-%d %H:%M}Z {item.sender:<32} "
        f"{item.document_title or item.attachment_key}  — {item.reason}"
    )


def item_json(item: InboundItem) -> dict[str, object]:
    def iso(value: object) -> object:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return {name: iso(getattr(item, name)) for name in item.__dataclass_fields__}
