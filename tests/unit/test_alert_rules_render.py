"""Alert rules rendered from configuration: shipped file in sync, complete, documented."""

import re
from pathlib import Path

import yaml

from pfi.config import ObservabilitySettings
from pfi.observability.alert_rules import alert_names, render_alert_rules, runbook_anchor

ROOT = Path(__file__).parents[2]
SHIPPED = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"


def rules(text):
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def test_shipped_rules_are_the_rendering_of_the_default_configuration():
    rendered = render_alert_rules(ObservabilitySettings())
    assert SHIPPED.read_text(encoding="utf-8") == rendered, (
        "deploy/prometheus/alerts.yml drifted from the configuration: run "
        "`pfi observability render-alerts -o deploy/prometheus/alerts.yml`"
    )


def test_every_alert_has_severity_summary_description_and_runbook_section():
    runbook = RUNBOOK.read_text(encoding="utf-8")
    headings = {runbook_anchor(m.group(1)) for m in re.finditer(r"^## (\S+)\s*$", runbook, re.M)}
    alerts = [r for r in rules(SHIPPED.read_text(encoding="utf-8")) if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket"), alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        url = annotations["runbook_url"]
        assert url == f"docs/runbook.md#{alert['alert'].lower()}"
        assert url.split("#")[1] in headings, f"no '## {alert['alert']}' in docs/runbook.md"


def test_the_alerts_the_programme_asked_for_are_all_there():
    assert set(alert_names(ObservabilitySettings())) >= {
        "PfiFeedSilent",
        "PfiFeedVolumeDrop",
        "PfiNackRatioHigh",
        "PfiDeliveryFailureRatioHigh",
        "PfiDmpSubmissionsBelowLabResults",
        "PfiHoldTooOld",
        "PfiDeadLettersNotEmpty",
        "PfiConsumerLagGrowing",
        "PfiClientCertificateExpiring",
    }


def test_recording_rules_are_recorded_before_they_are_read_within_their_group():
    for group in yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["groups"]:
        recorded_so_far: set[str] = set()
        all_recorded = {r["record"] for r in group["rules"] if "record" in r}
        for rule in group["rules"]:
            for name in re.findall(r"pfi:[a-z_:]+", rule["expr"]):
                if name in all_recorded:
                    assert name in recorded_so_far, f"{name} read before it is recorded"
            if "record" in rule:
                recorded_so_far.add(rule["record"])


def test_short_test_windows_render_into_the_rules():
    settings = ObservabilitySettings.model_validate(
        {
            "evaluation_interval": "15s",
            "silence_lookback": "10m",
            "feeds": {
                "SGL": {
                    "working_hours": "always",
                    "silence_after": "1m",
                    "volume": {"window": "1m", "season": "5m", "seasons": 2, "pending_for": "1m"},
                }
            },
            "dmp_vs_crbio": {"window": "1m", "pending_for": "1m"},
        }
    )
    text = render_alert_rules(settings)
    parsed = rules(text)
    silent = next(r for r in parsed if r.get("alert") == "PfiFeedSilent")
    assert silent["expr"] == 'pfi:feed_silence_seconds{source="SGL", message_type=""} > 60'
    assert "interval: 15s" in text
    assert "[10m]" in text and "offset 5m" in text and "offset 10m" in text
    assert 'seasons_ago: "3"' not in text


def test_per_destination_thresholds_split_the_rule():
    settings = ObservabilitySettings.model_validate(
        {"delivery_failures": {"max_ratio": 0.3, "per_destination": {"dmp": 0.05, "mss_pro": 0.1}}}
    )
    failing = [
        r
        for r in rules(render_alert_rules(settings))
        if r.get("alert") == "PfiDeliveryFailureRatioHigh"
    ]
    exprs = {r["labels"].get("destination", "*"): r["expr"] for r in failing}
    assert set(exprs) == {"*", "dmp", "mss_pro"}
    assert 'destination!~"dmp|mss_pro"' in exprs["*"] and ") > 0.3" in exprs["*"]
    assert 'destination="dmp"' in exprs["dmp"] and ") > 0.05" in exprs["dmp"]


def test_a_message_type_feed_matches_all_events_of_a_bare_code():
    text = render_alert_rules(ObservabilitySettings())
    assert 'message_type=~"MDM(\\\\^.+)?"' in text
