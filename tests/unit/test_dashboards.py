"""Grafana dashboards: shipped as rendered, and querying only metrics PFI exports."""

import json
from pathlib import Path

import pytest
import yaml

from pfi.observability.dashboards import (
    PanelQuery,
    all_dashboards,
    dashboard_queries,
    render_dashboard,
    unknown_metrics,
)
from pfi.observability.metrics import exported_metric_names

ROOT = Path(__file__).parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
FIXTURE = ROOT / "tests" / "fixtures" / "observability" / "dashboard_with_unknown_metric.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def known_names():
    """What a dashboard may query: engine metrics and the recording rules of alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    return exported_metric_names() | recorded


def shipped():
    return sorted(DASHBOARDS.glob("*.json"))


def test_shipped_dashboards_are_the_rendered_ones():
    rendered = all_dashboards()
    assert sorted(p.name for p in shipped()) == sorted(rendered)
    for path in shipped():
        assert path.read_text(encoding="utf-8") == render_dashboard(rendered[path.name]), (
            f"{path.name} drifted: run `pfi observability render-dashboards`"
        )


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.name)
def test_every_panel_query_uses_only_exported_metrics(path):
    board = json.loads(path.read_text(encoding="utf-8"))
    queries = list(dashboard_queries(board))
    panels_with_targets = [p for p in board["panels"] if p.get("targets")]
    assert len(queries) >= len(panels_with_targets) > 0
    problems = unknown_metrics(queries, known_names())
    assert problems == [], "\n".join(str(p) for p in problems)


def test_a_dashboard_with_an_unknown_metric_is_reported_with_its_panel():
    board = json.loads(FIXTURE.read_text(encoding="utf-8"))
    problems = unknown_metrics(list(dashboard_queries(board)), known_names())
    assert [(p.where, p.metric) for p in problems] == [
        ("Fixture with a typo / panel 'Deliveries (typo)'", "pfi_delivery_total")
    ]


def test_the_requested_views_are_there():
    titles = {
        board["uid"]: [p["title"] for p in board["panels"]] for board in all_dashboards().values()
    }
    assert set(titles) == {"pfi-feeds", "pfi-deliveries", "pfi-holds", "pfi-latency", "pfi-bus"}
    feeds = json.dumps(all_dashboards()["pfi-feeds.json"])
    assert "offset 1w" in feeds and "pfi_last_message_received_timestamp_seconds" in feeds
    latency = json.dumps(all_dashboards()["pfi-latency.json"])
    for q in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({q}" in latency


def test_panels_do_not_overlap_and_ids_are_unique():
    for board in all_dashboards().values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        cells = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, panel["title"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{board['uid']}: {panel['title']} overlaps"
                    cells.add((x, y))


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards():
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    [source] = datasource["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "pfi.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    for board in all_dashboards().values():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]


def test_alert_rules_query_only_metrics_the_engine_exports():
    parsed = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    queries = [PanelQuery(r.get("alert") or r["record"], r["expr"]) for r in parsed]
    problems = unknown_metrics(queries, known_names())
    assert problems == [], "\n".join(str(p) for p in problems)


def test_an_alert_rule_on_a_metric_nobody_exports_is_reported():
    queries = [PanelQuery("PfiTypo", "rate(pfi_messages_recieved_total[5m]) > 0")]
    [problem] = unknown_metrics(queries, known_names())
    assert problem.metric == "pfi_messages_recieved_total"
    assert str(problem).startswith("PfiTypo: pfi_messages_recieved_total")
