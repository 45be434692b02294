"""The alert rules checked and unit-tested by the real promtool.

- `promtool check rules|config` on what is shipped;
- `promtool test rules` on deploy/prometheus/tests/*.yml (every alert, firing and not);
- the PromQL local-time rules against Python's zoneinfo at every change of time from
  2024 to 2040, and the working-window rules against the Python schedule;
- rules rendered with 1-minute test windows, and every dashboard query, are valid PromQL;
- the static tests are not vacuous: a wrong schedule makes them fail.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from pfi.config import ObservabilitySettings
from pfi.config.observability import WorkingHours
from pfi.config.timezone_rules import CHECKED_YEARS, last_sunday, zone_rule
from pfi.observability.alert_rules import render_alert_rules
from pfi.observability.dashboards import all_dashboards, dashboard_queries
from pfi.observability.feed_schedule import (
    active_spans,
    local_week_seconds,
    local_week_seconds_expr,
    utc_offset_expr,
    window_opened_at,
    window_start_expr,
)

ROOT = Path(__file__).parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMTOOL is None,
        reason="promtool not found: `apt-get install prometheus` (or `make system-deps`)",
    ),
]

#: Rules evaluated only at t=0: the cross-check files test expressions, not rules, at
#: instants decades after the epoch, and promtool evaluates the rule groups every
#: interval up to the last instant.
NO_RULES = (
    "groups:\n  - name: none\n    rules:\n      - record: pfi:noop\n        expr: vector(1)\n"
)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"promtool {' '.join(result.args[1:])} failed:\n{result.stdout}\n{result.stderr}"
    )


def test_shipped_rules_pass_promtool_check():
    assert_ok(promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml")))


def test_prometheus_config_is_valid_and_loads_the_rules():
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert_ok(result)
    assert "1 rule files found" in result.stdout


def test_every_alert_has_a_promtool_test():
    text = "\n".join(path.read_text(encoding="utf-8") for path in RULE_TESTS)
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = set(re.findall(r"alertname: (\w+)", text))
    assert alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file):
    assert_ok(promtool("test", "rules", test_file.name, cwd=test_file.parent))


def test_static_tests_fail_on_a_wrong_schedule(tmp_path):
    """RIS declared as working all week: the weekend test must catch the Saturday page."""
    settings = ObservabilitySettings.model_validate(
        {
            "feeds": {
                **{
                    name: feed.model_dump(mode="json")
                    for name, feed in ObservabilitySettings().feeds.items()
                },
                "RIS": {
                    "working_hours": [{"days": ["mon-sun"], "hours": ["08:00-19:00"]}],
                    "silence_after": "1h",
                },
            }
        }
    )
    (tmp_path / "alerts.yml").write_text(render_alert_rules(settings), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    shutil.copy(PROMETHEUS_DIR / "tests" / "feeds_weekend.yml", tmp_path / "tests")
    result = promtool("test", "rules", "feeds_weekend.yml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "time: 2d9h" in result.stdout + result.stderr  # Saturday 10:00 in Paris


def test_rules_rendered_with_one_minute_windows_are_valid(tmp_path):
    settings = ObservabilitySettings.model_validate(
        {
            "evaluation_interval": "15s",
            "silence_lookback": "10m",
            "feeds": {
                "SGL": {
                    "working_hours": "always",
                    "silence_after": "1m",
                    "volume": {"window": "1m", "season": "5m", "seasons": 2, "pending_for": "1m"},
                    "message_types": {"ORU^R01": {"silence_after": "2m"}},
                },
                "RIS": {
                    "timezone": "Indian/Reunion",
                    "working_hours": [{"days": ["sun"], "hours": ["22:00-06:00"]}],
                    "silence_after": "1m",
                },
            },
            "nack_ratio": {"window": "1m", "pending_for": "1m", "per_source": {"SGL": 0.2}},
            "delivery_failures": {"window": "1m", "pending_for": "1m"},
            "dmp_vs_crbio": {"window": "1m", "pending_for": "1m"},
            "hold_age": {"max_age": "1m", "per_reason": {"announcement": "2m"}},
            "consumer_lag": {"window": "1m", "pending_for": "1m"},
        }
    )
    path = tmp_path / "alerts.yml"
    path.write_text(render_alert_rules(settings), encoding="utf-8")
    assert_ok(promtool("check", "rules", str(path)))


def _grafana_to_promql(expr: str) -> str:
    text = re.sub(r"\$\{?__rate_interval\}?|\$\{?__interval\}?", "5m", expr)
    text = re.sub(r"\$\{?__range\}?", "1h", text)
    return re.sub(r"\$\{?[a-zA-Z_]+\}?", ".*", text)


def test_every_dashboard_query_is_valid_promql(tmp_path):
    rules = [
        {"record": f"dashboard_check:query_{i}", "expr": _grafana_to_promql(q.expr)}
        for i, q in enumerate(
            q for board in all_dashboards().values() for q in dashboard_queries(board)
        )
    ]
    path = tmp_path / "dashboards_as_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert_ok(promtool("check", "rules", "--lint=none", str(path)))


# --- local time: PromQL against zoneinfo --------------------------------------------


def _expr_test_file(tmp_path: Path, cases: list[dict]) -> Path:
    (tmp_path / "none.yml").write_text(NO_RULES, encoding="utf-8")
    path = tmp_path / "cross_check.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "rule_files": ["none.yml"],
                "evaluation_interval": "10000h",
                "tests": [{"interval": "10000h", "input_series": [], "promql_expr_test": cases}],
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    return path


def _case(expr: str, instant: datetime, value: float | None) -> dict:
    samples = [] if value is None else [{"labels": "{}", "value": value}]
    return {"expr": expr, "eval_time": f"{int(instant.timestamp())}s", "exp_samples": samples}


def _change_of_time_instants() -> list[datetime]:
    instants = []
    for year in CHECKED_YEARS:
        for month in (3, 10):
            switch = last_sunday(year, month)
            instants += [switch - timedelta(seconds=1), switch, switch + timedelta(hours=1)]
            instants += [switch - timedelta(days=1), switch + timedelta(days=1)]
        instants += [datetime(year, 1, 15, 12, tzinfo=UTC), datetime(year, 7, 15, 12, tzinfo=UTC)]
        instants += [datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC)]
    return instants


@pytest.mark.parametrize("zone", ["Europe/Paris", "Europe/London", "Indian/Reunion"])
def test_utc_offset_rule_matches_zoneinfo_at_every_change_of_time(tmp_path, zone):
    expr = utc_offset_expr(zone_rule(zone))
    tz = ZoneInfo(zone)
    cases = []
    for instant in _change_of_time_instants():
        offset = instant.astimezone(tz).utcoffset()
        assert offset is not None
        cases.append(_case(expr, instant, offset.total_seconds()))
    assert_ok(promtool("test", "rules", _expr_test_file(tmp_path, cases).name, cwd=tmp_path))


SCHEDULES = {
    "lab weekdays and saturday, Paris": (
        "Europe/Paris",
        [
            {"days": ["mon-fri"], "hours": ["07:00-20:00"]},
            {"days": ["sat"], "hours": ["08:00-13:00"]},
        ],
    ),
    "night shift across the week's end, Paris": (
        "Europe/Paris",
        [
            {"days": ["sun"], "hours": ["22:00-06:00"]},
            {"days": ["wed"], "hours": ["08:00-12:00", "12:00-18:00"]},
        ],
    ),
    "weekdays, La Réunion": ("Indian/Reunion", [{"days": ["mon-fri"], "hours": ["07:00-19:00"]}]),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_window_opening_rule_matches_the_schedule_in_local_time(tmp_path, name):
    zone, entries = SCHEDULES[name]
    spans = active_spans([WorkingHours.model_validate(e) for e in entries])
    offset = utc_offset_expr(zone_rule(zone))
    expr = window_start_expr(spans, local_week_seconds_expr(f"({offset})"), 86400)
    rng = random.Random(name)
    start = datetime(CHECKED_YEARS[0], 1, 1, tzinfo=UTC).timestamp()
    end = datetime(CHECKED_YEARS[-1], 12, 31, tzinfo=UTC).timestamp()
    instants = [datetime.fromtimestamp(rng.uniform(start, end), tz=UTC) for _ in range(150)]
    instants = [t.replace(microsecond=0) for t in instants] + _change_of_time_instants()[:40]
    # and both sides of the opening and closing minutes, in summer and in winter
    tz = ZoneInfo(zone)
    for day in (datetime(2025, 1, 6), datetime(2025, 7, 7), datetime(2026, 3, 30)):
        for hh, mm in ((6, 59), (7, 0), (19, 59), (20, 0), (5, 59), (6, 0), (21, 59), (22, 0)):
            local = day.replace(hour=hh, minute=mm, tzinfo=tz)
            instants += [local.astimezone(UTC), local.astimezone(UTC) + timedelta(seconds=59)]
    cases = []
    opened_count = 0
    for instant in instants:
        week = local_week_seconds(instant, zone)
        opened = window_opened_at(spans, week)
        value = None if opened is None else instant.timestamp() - (week - opened)
        opened_count += opened is not None
        cases.append(_case(expr, instant, value))
    assert 0 < opened_count < len(cases)  # both inside and outside working hours
    assert_ok(promtool("test", "rules", _expr_test_file(tmp_path, cases).name, cwd=tmp_path))
