"""PFI's Grafana dashboards, built in code and shipped as JSON in deploy/grafana/dashboards.

Built rather than hand-edited so that every panel follows the same conventions (the
provisioned Prometheus datasource, the `source`/`destination` variables, units) and so
that a test can read back every query and check it only uses metrics PFI exports
(`unknown_metrics`). Regenerate with `pfi observability render-dashboards`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pfi.observability.promql_names import metric_names

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
#: Series Prometheus itself creates: they exist without the engine exporting them.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})
RATE = "[$__rate_interval]"
PER_MINUTE = " * 60"

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


class _Layout:
    """Places panels left to right, 24 columns wide, in rows of equal height."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> Json:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + self.row_height
            self.row_height = 0
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _targets(queries: list[Query]) -> list[Json]:
    return [
        {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": q.expr,
            "legendFormat": q.legend or "__auto",
            "range": True,
        }
        for i, q in enumerate(queries)
    ]


def _timeseries(
    layout: _Layout,
    title: str,
    queries: list[Query],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    overrides: list[Json] | None = None,
    stack: bool = False,
) -> Json:
    return {
        "id": layout.new_id(),
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(width, height),
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": overrides or [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def _stat(
    layout: _Layout,
    title: str,
    queries: list[Query],
    *,
    unit: str = "short",
    thresholds: list[tuple[float | None, str]] | None = None,
    description: str = "",
    width: int = 6,
    height: int = 5,
) -> Json:
    steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "green")])]
    return {
        "id": layout.new_id(),
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(width, height),
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
        },
    }


def _variable(name: str, label: str, metric: str) -> Json:
    query = f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


def _dashboard(
    uid: str, title: str, description: str, panels: list[Json], variables: list[Json]
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["pfi"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "browser",
        "graphTooltip": 1,
        "links": [
            {"type": "dashboards", "tags": ["pfi"], "asDropdown": True, "title": "PFI dashboards"}
        ],
        "annotations": {
            "list": [
                {
                    "name": "PFI alerts",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "red",
                    "expr": 'ALERTS{alertstate="firing", alertname=~"Pfi.*"}',
                    "titleFormat": "{{alertname}}",
                    "textFormat": "{{source}}{{destination}}{{stage}}{{reason}}",
                    "step": "1m",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }


_LAST_WEEK_DASHED = {
    "matcher": {"id": "byRegexp", "options": ".*last week.*"},
    "properties": [
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        {"id": "custom.fillOpacity", "value": 0},
    ],
}


def feeds_dashboard() -> Json:
    """Every feed at a glance: volumes against last week, silence, NACKs."""
    lay = _Layout()
    src = 'source=~"$source"'
    received = f"pfi_messages_received_total{{{src}}}"
    acks = f"pfi_messages_acknowledged_total{{{src}}}"
    nacks = f'pfi_messages_acknowledged_total{{{src}, ack_code!~"AA|CA"}}'
    panels = [
        _stat(
            lay,
            "Last message age",
            [
                Query(
                    "time() - max by (source) "
                    f"(pfi_last_message_received_timestamp_seconds{{{src}}})",
                    "{{source}}",
                )
            ],
            unit="s",
            thresholds=[(None, "green"), (1800, "orange"), (7200, "red")],
            description="Time since the last message of each source, whatever its type.",
            width=12,
        ),
        _stat(
            lay,
            "Feeds expected to send now",
            [Query(f"pfi:feed_expected_active{{{src}}}", "{{source}} {{message_type}}")],
            thresholds=[(None, "text"), (1, "blue")],
            description="1 during the feed's working hours (observability.feeds in pfi.yaml); "
            "silence alerts only fire then.",
            width=12,
        ),
        _timeseries(
            lay,
            "Messages per minute, with the same time last week",
            [
                Query(
                    f"sum by (source, message_type) (rate({received}{RATE})){PER_MINUTE}",
                    "{{source}} {{message_type}}",
                ),
                Query(
                    f"sum by (source, message_type) (rate({received}{RATE} offset 1w)){PER_MINUTE}",
                    "{{source}} {{message_type}} (last week)",
                ),
            ],
            unit="short",
            description="Dashed: the same hour one week earlier. A feed far under its "
            "dashed line is dropping off.",
            width=24,
            height=10,
            overrides=[_LAST_WEEK_DASHED],
        ),
        _timeseries(
            lay,
            "Silence during working hours",
            [Query(f"pfi:feed_silence_seconds{{{src}}}", "{{source}} {{message_type}}")],
            unit="s",
            description="Time since the later of the last message and the opening of the "
            "current working window; no value outside working hours.",
        ),
        _timeseries(
            lay,
            "Volume over the alert window vs usual (median of past weeks)",
            [
                Query(f"pfi:feed_received_messages{{{src}}}", "{{source}} {{message_type}}"),
                Query(
                    f"pfi:feed_received_messages_baseline{{{src}}}",
                    "{{source}} {{message_type}} (usual)",
                ),
            ],
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": ".*usual.*"},
                    "properties": [
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
                    ],
                }
            ],
        ),
        _timeseries(
            lay,
            "NACKs per minute by code",
            [
                Query(
                    f"sum by (source, ack_code) (rate({nacks}{RATE})){PER_MINUTE}",
                    "{{source}} {{ack_code}}",
                )
            ],
            description="AE: application error, AR: rejected (enhanced mode CE/CR).",
        ),
        _timeseries(
            lay,
            "NACK ratio",
            [
                Query(
                    f"sum by (source) (rate({nacks}{RATE})) / sum by (source) (rate({acks}{RATE}))",
                    "{{source}}",
                )
            ],
            unit="percentunit",
        ),
        _timeseries(
            lay,
            "Message size (p95)",
            [
                Query(
                    "histogram_quantile(0.95, sum by (le, source) "
                    f"(rate(pfi_received_message_size_bytes_bucket{{{src}}}{RATE})))",
                    "{{source}}",
                )
            ],
            unit="bytes",
            width=24,
        ),
    ]
    return _dashboard(
        "pfi-feeds",
        "PFI / Feeds",
        "Incoming HL7 feeds per source and message type: volume, silence, NACKs.",
        panels,
        [_variable("source", "Source", "pfi_messages_received_total")],
    )


def deliveries_dashboard() -> Json:
    """Deliveries and failures per destination, documents built, DMP vs lab results."""
    lay = _Layout()
    dest = 'destination=~"$destination"'
    deliveries = f"pfi_deliveries_total{{{dest}}}"
    failed = f'pfi_deliveries_total{{{dest}, outcome=~"refused|failed_transient|dead_letter"}}'
    attempts = f'pfi_deliveries_total{{{dest}, outcome!="held"}}'
    panels = [
        _timeseries(
            lay,
            "Deliveries per minute by destination and outcome",
            [
                Query(
                    f"sum by (destination, outcome) (rate({deliveries}{RATE})){PER_MINUTE}",
                    "{{destination}} {{outcome}}",
                )
            ],
            width=24,
            height=10,
            stack=True,
        ),
        _timeseries(
            lay,
            "Failure ratio by destination",
            [
                Query(
                    f"sum by (destination) (rate({failed}{RATE})) / "
                    f"sum by (destination) (rate({attempts}{RATE}))",
                    "{{destination}}",
                )
            ],
            unit="percentunit",
            description="Refused, failed and dead-lettered attempts over all attempts "
            "(holds excluded).",
        ),
        _timeseries(
            lay,
            "Circuit breakers open",
            [
                Query(
                    f"max by (destination) (pfi_delivery_breaker_open{{{dest}}})", "{{destination}}"
                )
            ],
            description="1 while a destination's breaker stops the calls after consecutive "
            "transient failures (docs/delivery.md); rows wait as failed until it closes.",
        ),
        _timeseries(
            lay,
            "CR-BIO delivered to the DMP vs lab results accepted (per hour)",
            [
                Query(
                    "sum(increase(pfi_deliveries_total"
                    '{destination="dmp", document_type="CR-BIO", outcome="delivered"}[1h]))',
                    "CR-BIO delivered to the DMP",
                ),
                Query(
                    'sum(increase(pfi_messages_acknowledged_total{message_type="ORU^R01", '
                    'ack_code=~"AA|CA"}[1h]))',
                    "ORU^R01 accepted",
                ),
            ],
            description="The two lines should move together; a gap that opens is the DMP "
            "drop-off (alert PfiDmpSubmissionsBelowLabResults).",
        ),
        _timeseries(
            lay,
            "Documents built per minute by type and version",
            [
                Query(
                    "sum by (document_type, version_kind) "
                    f"(rate(pfi_documents_built_total{RATE})){PER_MINUTE}",
                    "{{document_type}} {{version_kind}}",
                )
            ],
        ),
        _timeseries(
            lay,
            "Invalid documents per minute",
            [
                Query(
                    f"sum by (document_type, check) (rate(pfi_documents_invalid_total{RATE}))"
                    f"{PER_MINUTE}",
                    "{{document_type}} {{check}}",
                )
            ],
        ),
        _timeseries(
            lay,
            "Unmapped LOINC codes",
            [
                Query("max by (lab) (pfi_unmapped_loinc_codes)", "{{lab}} distinct codes"),
                Query(
                    f"sum by (lab) (increase(pfi_unmapped_loinc_occurrences_total{RATE}))",
                    "{{lab}} occurrences",
                ),
            ],
        ),
        _stat(
            lay,
            "Client certificates: days left",
            [
                Query(
                    "(max by (certificate) (pfi_client_certificate_expiry_timestamp_seconds)"
                    " - time()) / 86400",
                    "{{certificate}}",
                )
            ],
            unit="d",
            thresholds=[(None, "red"), (7, "orange"), (30, "green")],
            width=12,
        ),
    ]
    return _dashboard(
        "pfi-deliveries",
        "PFI / Deliveries",
        "Deliveries to the DMP and MSSanté per destination and outcome; documents built.",
        panels,
        [_variable("destination", "Destination", "pfi_deliveries_total")],
    )


def holds_dashboard() -> Json:
    """Open holds and their age; the qualified-INS share that drives identity holds."""
    lay = _Layout()
    panels = [
        _stat(
            lay,
            "Open holds",
            [Query("sum(max by (reason) (pfi_holds_open))", "open holds")],
            thresholds=[(None, "green"), (1, "blue")],
        ),
        _stat(
            lay,
            "Oldest hold",
            [Query("max(pfi_hold_oldest_age_seconds)", "oldest")],
            unit="s",
            thresholds=[(None, "green"), (3 * 86400, "orange"), (7 * 86400, "red")],
        ),
        _stat(
            lay,
            "Patients with a qualified INS",
            [Query("max(pfi_patients_qualified_ins_ratio)", "qualified INS")],
            unit="percentunit",
            thresholds=[(None, "red"), (0.5, "orange"), (0.8, "green")],
            width=12,
        ),
        _timeseries(
            lay,
            "Open holds by reason",
            [Query("max by (reason) (pfi_holds_open)", "{{reason}}")],
            stack=True,
        ),
        _timeseries(
            lay,
            "Age of the oldest hold by reason",
            [Query("max by (reason) (pfi_hold_oldest_age_seconds)", "{{reason}}")],
            unit="s",
        ),
    ]
    return _dashboard(
        "pfi-holds",
        "PFI / Holds",
        "Documents held from a destination (announcement, identity, manual) and for how long.",
        panels,
        [],
    )


def latency_dashboard() -> Json:
    """Per-stage processing time and end-to-end latency per destination."""
    lay = _Layout()
    stage = "pfi_stage_processing_duration_seconds_bucket"
    e2e = 'pfi_end_to_end_duration_seconds_bucket{destination=~"$destination"}'
    panels = [
        _timeseries(
            lay,
            "Stage processing time (p95)",
            [
                Query(
                    f"histogram_quantile(0.95, sum by (le, stage) (rate({stage}{RATE})))",
                    "{{stage}}",
                )
            ],
            unit="s",
        ),
        _timeseries(
            lay,
            "Stage processing time (mean)",
            [
                Query(
                    f"sum by (stage) (rate(pfi_stage_processing_duration_seconds_sum{RATE}))"
                    f" / sum by (stage) (rate(pfi_stage_processing_duration_seconds_count{RATE}))",
                    "{{stage}}",
                )
            ],
            unit="s",
        ),
        *[
            _timeseries(
                lay,
                f"End to end, HL7 received to destination ACK (p{q})",
                [
                    Query(
                        f"histogram_quantile(0.{q}, sum by (le, destination) (rate({e2e}{RATE})))",
                        "{{destination}}",
                    )
                ],
                unit="s",
                width=8,
            )
            for q in ("50", "95", "99")
        ],
        _timeseries(
            lay,
            "Records processed per minute by stage",
            [
                Query(
                    "sum by (stage) "
                    f"(rate(pfi_stage_processing_duration_seconds_count{RATE})){PER_MINUTE}",
                    "{{stage}}",
                )
            ],
            width=24,
        ),
    ]
    return _dashboard(
        "pfi-latency",
        "PFI / Latency",
        "How long each stage takes, and how long a result takes to reach each destination.",
        panels,
        [_variable("destination", "Destination", "pfi_end_to_end_duration_seconds_count")],
    )


def bus_dashboard() -> Json:
    """Engine and bus health: up, broker, database, lag, outbox, dead letters."""
    lay = _Layout()
    panels = [
        _stat(
            lay,
            "Engine scraped",
            [Query('up{job="pfi"}', "{{instance}}")],
            thresholds=[(None, "red"), (1, "green")],
        ),
        _stat(
            lay,
            "Broker reachable",
            [Query("pfi_broker_up", "{{instance}}")],
            thresholds=[(None, "red"), (1, "green")],
        ),
        _stat(
            lay,
            "Database reachable",
            [Query("pfi_database_up", "{{instance}}")],
            thresholds=[(None, "red"), (1, "green")],
        ),
        _stat(
            lay,
            "Dead letters",
            [Query("sum(max by (stage) (pfi_dead_letters))", "dead letters")],
            thresholds=[(None, "green"), (1, "red")],
        ),
        _timeseries(
            lay,
            "Consumer lag by stage (records)",
            [Query("max by (stage) (pfi_consumer_lag_records)", "{{stage}}")],
        ),
        _timeseries(
            lay,
            "Dead letters by stage",
            [Query("max by (stage) (pfi_dead_letters)", "{{stage}}")],
        ),
        _timeseries(
            lay,
            "Outbox backlog",
            [Query("max(pfi_outbox_unpublished_records)", "unpublished records")],
        ),
        _timeseries(
            lay,
            "Oldest unpublished outbox record",
            [Query("max(pfi_outbox_oldest_unpublished_age_seconds)", "age")],
            unit="s",
        ),
        _timeseries(
            lay,
            "Store gauges: age of the last refresh",
            [Query("time() - pfi_store_gauges_refresh_timestamp_seconds", "{{instance}}")],
            unit="s",
            description="Holds, dead letters and outbox are read from the database every "
            "30 s; a growing age means those panels are stale.",
        ),
        _timeseries(
            lay,
            "Engine memory and CPU",
            [
                Query('process_resident_memory_bytes{job="pfi"}', "{{instance}} memory"),
                Query(f'rate(process_cpu_seconds_total{{job="pfi"}}{RATE})', "{{instance}} cpu"),
            ],
            unit="short",
        ),
        _stat(
            lay,
            "Engine version",
            [Query("pfi_build_info", "{{instance}} {{version}} (python {{python_version}})")],
            width=24,
            height=4,
        ),
    ]
    return _dashboard(
        "pfi-bus",
        "PFI / Engine and bus health",
        "Is the engine up, are its broker and database reachable, is any stage behind.",
        panels,
        [],
    )


def all_dashboards() -> dict[str, Json]:
    """File name -> dashboard, as shipped in deploy/grafana/dashboards."""
    boards = [
        feeds_dashboard(),
        deliveries_dashboard(),
        holds_dashboard(),
        latency_dashboard(),
        bus_dashboard(),
    ]
    return {f"{board['uid']}.json": board for board in boards}


def render_dashboard(board: Json) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in all_dashboards().items():
        path = directory / name
        path.write_text(render_dashboard(board), encoding="utf-8")
        written.append(path)
    return written


# --- checking queries --------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL query found in a dashboard, and where (for the error message)."""

    where: str
    expr: str


@dataclass(frozen=True)
class UnknownMetric:
    where: str
    metric: str
    expr: str

    def __str__(self) -> str:
        return f"{self.where}: {self.metric} (in {self.expr!r})"


def dashboard_queries(board: Json) -> Iterator[PanelQuery]:
    """Every PromQL expression of a dashboard: panels (rows included), variables,
    annotations."""
    title = board.get("title", "?")
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                yield PanelQuery(f"{title} / panel {panel.get('title', '?')!r}", expr)
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and text:
            yield PanelQuery(f"{title} / variable {variable.get('name')!r}", _variable_expr(text))
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield PanelQuery(f"{title} / annotation {annotation.get('name')!r}", annotation["expr"])


def _panels(panels: list[Json]) -> Iterator[Json]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def _variable_expr(query: str) -> str:
    """`label_values(metric{...}, label)` -> `metric{...}`: Grafana's, not PromQL."""
    text = query.strip()
    for fn in ("label_values(", "query_result("):
        if text.startswith(fn) and text.endswith(")"):
            inner = text[len(fn) : -1]
            if fn == "label_values(" and "," in inner:
                inner = inner[: inner.rindex(",")]
            return inner
    return text


def unknown_metrics(queries: list[PanelQuery], known: frozenset[str]) -> list[UnknownMetric]:
    """The queries' metric names that are not in `known` (nor Prometheus' own series)."""
    out: list[UnknownMetric] = []
    allowed = known | PROMETHEUS_SERIES
    for query in queries:
        found = metric_names(query.expr)
        for name in sorted(found.names - allowed):
            out.append(UnknownMetric(query.where, name, query.expr))
        for pattern in sorted(found.name_patterns):
            out.append(UnknownMetric(query.where, f"__name__=~{pattern!r}", query.expr))
    return out
