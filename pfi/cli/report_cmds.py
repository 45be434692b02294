"""`pfi report sun-es`: the monthly SUN-ES indicators (CSV or HTML with a chart)."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from pfi.cli.options import ConfigOption, open_store, settings_or_exit
from pfi.observability.sunes import sun_es_report, to_csv, to_html

report_app = typer.Typer(help="Reports for the national programme.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")


@report_app.command("sun-es")
def sun_es(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    config: ConfigOption = None,
    format: Annotated[str, typer.Option("--format", help="csv | html")] = "csv",
) -> None:
    """Share of CR-BIO sent to the DMP with a qualified INS in CDA R2 N3, and volumes."""
    if format not in ("csv", "html"):
        typer.echo("--format must be csv or html", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    try:
        with open_store(config) as db, db.reader() as session:
            report = sun_es_report(session, month, ZoneInfo(settings.identity.local_timezone))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(
        to_csv(report) if format == "csv" else to_html(report, settings.engine.name), nl=False
    )
