"""`pfi observability render-alerts | render-dashboards`: Prometheus rules, Grafana boards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfi.cli.options import ConfigOption, settings_or_exit

observability_app = typer.Typer(
    name="observability",
    help="Prometheus alert rules rendered from the observability section of pfi.yaml.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(observability_app)


@observability_app.command("render-alerts")
def render_alerts(
    config: ConfigOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write the rules there (default: stdout)"),
    ] = None,
) -> None:
    """Render the alert rules (working hours, thresholds) for Prometheus' rule_files."""
    from pfi.observability.alert_rules import render_alert_rules

    settings = settings_or_exit(config)
    for source in settings.observability.unwatched_sources(set(settings.sources)):
        typer.echo(
            f"warning: source {source} has no working hours under observability.feeds: "
            "no silence or drop-off alert for it",
            err=True,
        )
    rules = render_alert_rules(settings.observability)
    if output is None:
        typer.echo(rules, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rules, encoding="utf-8")
    typer.echo(f"{output}: alert rules written; reload Prometheus to apply them", err=True)


@observability_app.command("render-dashboards")
def render_dashboards(
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="directory for the dashboard JSON files")
    ] = Path("deploy/grafana/dashboards"),
) -> None:
    """Write PFI's Grafana dashboards (feeds, deliveries, holds, latency, bus)."""
    from pfi.observability.dashboards import write_dashboards

    for path in write_dashboards(output_dir):
        typer.echo(str(path))
