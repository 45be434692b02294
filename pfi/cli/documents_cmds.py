"""`pfi documents list|show|release` and `pfi loinc unmapped`: documents from a terminal.

`show --cda` / `--pdf` write the document's bytes to stdout unchanged (redirect them to a
file); everything else is text, or JSON lines with `--json`. Releasing a hold is a state
change: it is recorded in the audit trail as `cli:<OS user>` in the same transaction.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from pfi.cli.options import ConfigOption, settings_or_exit
from pfi.console.audit import record_audit
from pfi.documents import repository as repo
from pfi.documents.release import ReleaseRefused, release_unmapped_hold
from pfi.store import Database

documents_app = typer.Typer(
    help="CDA documents received or built, their versions and validation.",
    no_args_is_help=True,
)
loinc_app = typer.Typer(help="LOINC transcoding of the labs' local codes.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(documents_app, name="documents")
    app.add_typer(loinc_app, name="loinc")


@documents_app.command("list")
def list_documents(
    config: ConfigOption = None,
    ipp: Annotated[str | None, typer.Option(help="patient IPP (any authority)")] = None,
    ins: Annotated[str | None, typer.Option(help="patient INS")] = None,
    status: Annotated[str | None, typer.Option(help="valid | invalid | held | withdrawn")] = None,
    document_type: Annotated[
        str | None, typer.Option("--type", help="CR-BIO, CR-IMG, OTHER")
    ] = None,
    source: Annotated[str | None, typer.Option(help="SGL, RIS, DPI...")] = None,
    limit: Annotated[int, typer.Option(help="newest first, at most")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """List document versions, newest first."""
    if status and status not in repo.VERSION_STATUSES:
        typer.echo(f"--status must be one of {', '.join(repo.VERSION_STATUSES)}", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    try:
        with db.reader() as session:
            rows = repo.find_versions(
                session,
                repo.VersionFilter(
                    ipp=ipp,
                    ins=ins,
                    status=status,
                    document_type=document_type,
                    source=source,
                    limit=limit,
                ),
            )
            for v, d in rows:
                if as_json:
                    typer.echo(_json(repo.version_summary(v, d)))
                    continue
                typer.echo(
                    f"{v.id:>7} {v.created_at:%Y-%m-%d %H:%M:%S} {d.source:<4} "
                    f"{d.document_type:<7} v{v.version:<3} {v.action:<11} {v.status:<9} "
                    f"patient={d.patient_id or '-'} set={d.set_id}"
                )
                if v.status in (repo.INVALID, repo.HELD) and v.validation:
                    typer.echo(f"{'':>8}{v.validation}")
    finally:
        db.dispose()


@documents_app.command("show")
def show_document(
    version_id: Annotated[int, typer.Argument(help="document version id (pfi documents list)")],
    config: ConfigOption = None,
    cda: Annotated[bool, typer.Option("--cda", help="write the CDA XML to stdout")] = False,
    pdf: Annotated[bool, typer.Option("--pdf", help="write the PDF to stdout")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="everything, as JSON")] = False,
) -> None:
    """Show one document version: header facts, validation findings, holds, routing meta."""
    if sum((cda, pdf, as_json)) > 1:
        typer.echo("--cda, --pdf and --json are exclusive", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    try:
        with db.reader() as session:
            found = repo.get_version(session, version_id)
            if found is None:
                typer.echo(f"no document version {version_id}", err=True)
                raise typer.Exit(1)
            v, d = found
            if cda or pdf:
                data = v.cda if cda else v.pdf
                if data is None:
                    what = "CDA" if cda else "PDF"
                    typer.echo(
                        f"document version {version_id} ({v.action}, {v.status}) has no {what}",
                        err=True,
                    )
                    raise typer.Exit(1)
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
                return
            detail = repo.version_detail(session, v, d)
        if as_json:
            typer.echo(_json(detail, indent=2))
            return
        _print_detail(detail)
    finally:
        db.dispose()


def _json(value: dict[str, Any], indent: int | None = None) -> str:
    return json.dumps(
        value,
        ensure_ascii=False,
        indent=indent,
        default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o),
    )


def _print_detail(detail: dict[str, Any]) -> None:
    typer.echo(
        f"document version {detail['id']}: {detail['document_type']} {detail['title']!r} "
        f"version {detail['version']} {detail['action']} — {detail['status']}"
    )
    typer.echo(f"  set {detail['set_id']}  document {detail['document_uid']}")
    if detail["replaces_uid"]:
        typer.echo(f"  replaces {detail['replaces_uid']}")
    typer.echo(
        f"  source {detail['source']} ({detail['way']}), message {detail['message_id']}, "
        f"patient {detail['patient_id']}, received {detail['received_at']}"
    )
    typer.echo(f"  CDA {detail['cda_bytes']} bytes, PDF {detail['pdf_bytes']} bytes")
    if detail["validation"]:
        typer.echo(f"  validation: {detail['validation']}")
    for f in detail["findings"]:
        where = f.get("location") or (f"line {f['line']}" if f.get("line") else "")
        typer.echo(
            f"    {f['severity']:<7} {f['source']}"
            + (f" [{f['rule_id']}]" if f.get("rule_id") else "")
            + (f" at {where}" if where else "")
            + f": {f['message']}"
        )
    for h in detail["holds"]:
        state = (
            f"released {h['released_at']:%Y-%m-%d %H:%M:%S} by {h['released_by']}: "
            f"{h['release_reason']}"
            if h["released_at"]
            else "OPEN"
        )
        typer.echo(f"  hold {h['id']} {h['kind']}: {h['reason']} — {state}")
    for w in detail["warnings"]:
        typer.echo(f"  warning: {w}")
    for r in detail.get("deliveries", []):
        typer.echo(
            f"  delivery {r['id']} {r['destination']} {r['recipient'] or '-'} "
            f"{r['operation']} — {r['status']}" + (f": {r['reason']}" if r["reason"] else "")
        )
    for w in detail.get("routing_warnings", []):
        typer.echo(f"  routing warning: {w}")


@documents_app.command("release")
def release(
    version_id: Annotated[int, typer.Argument(help="the held document version")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")],
    config: ConfigOption = None,
    keep_local: Annotated[
        bool,
        typer.Option(
            "--keep-local",
            help="send with the local codes instead of waiting for the LOINC mapping",
        ),
    ] = False,
) -> None:
    """Release a version held for unmapped LOINC codes (rebuilt with the current mapping).

    With --keep-local it is rebuilt keeping the local codes instead. Either way it is then
    validated and published, or held again if a code is still unmapped."""
    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    actor = _cli_actor()
    try:
        with db.transaction() as session:
            done = release_unmapped_hold(
                session, version_id, actor=actor, reason=reason, keep_local=keep_local
            )
            record_audit(
                session,
                actor,
                "document.release",
                "document_version",
                version_id,
                reason=reason,
                details={"hold_kind": repo.HOLD_UNMAPPED, "keep_local": keep_local},
            )
    except ReleaseRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    typer.echo(
        f"released {done.holds_released} hold(s) of document version {version_id}; message "
        f"{done.message_id} goes through the documents stage again"
        + (" (local codes kept)" if keep_local else "")
    )


@loinc_app.command("unmapped")
def loinc_unmapped(
    config: ConfigOption = None,
    lab: Annotated[str | None, typer.Option(help="source name of the lab (SGL...)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Local codes seen without a LOINC mapping, most frequent first."""
    settings = settings_or_exit(config)
    db = Database(settings.database_url)
    try:
        with db.reader() as session:
            rows = repo.unmapped_codes(session, lab)
            for r in rows:
                if as_json:
                    typer.echo(
                        json.dumps(
                            {
                                "lab": r.lab,
                                "code": r.code,
                                "label": r.label,
                                "occurrences": r.occurrences,
                                "first_seen": r.first_seen.isoformat(),
                                "last_seen": r.last_seen.isoformat(),
                            },
                            ensure_ascii=False,
                        )
                    )
                else:
                    typer.echo(
                        f"{r.lab:<6} {r.code:<16} {r.occurrences:>7}  {r.label}  "
                        f"(last seen {r.last_seen:%Y-%m-%d %H:%M})"
                    )
            if not rows and not as_json:
                typer.echo("no unmapped codes" + (f" for {lab}" if lab else ""))
    finally:
        db.dispose()


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"
