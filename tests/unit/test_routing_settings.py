"""The `routing:` and `outbound:` sections: a bad routes file stops `pfi check-config`
and `pfi run` with file:line messages; business-ack endpoints are chosen per sender."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pfi.config import ConfigError, load_settings
from pfi.config.outbound import OutboundSettings, ReplyEndpoint
from pfi.engine import Engine, build_stages
from pfi.routes import BUILTIN_ROUTES_PATH, routes_path
from pfi.routes.release_stage import HoldReleaseStage
from pfi.routes.stage import RoutingStage

BAD_ROUTES = """\
routes:
  - name: lab
    from: {source: SGL, document: CR-BIO}
    to: [dmp, mss_pateint]
"""


def config(tmp_path: Path, routes: str, extra: str = "") -> Path:
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(routes, encoding="utf-8")
    path = tmp_path / "pfi.yaml"
    path.write_text(
        f"engine: {{data_dir: '{tmp_path / 'var'}'}}\n"
        f"routing: {{routes_file: '{routes_file}'}}\n{extra}",
        encoding="utf-8",
    )
    return path


def run_pfi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pfi.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_reports_the_routes_file_line(tmp_path: Path) -> None:
    result = run_pfi("check-config", str(config(tmp_path, BAD_ROUTES)))
    assert result.returncode == 2
    assert f"{tmp_path / 'routes.yaml'}:4: routes[0].to[1]: expected a destination" in result.stderr


def test_check_config_accepts_good_routes_and_counts_them(tmp_path: Path) -> None:
    good = BAD_ROUTES.replace("mss_pateint", "mss_patient")
    result = run_pfi("check-config", str(config(tmp_path, good)))
    assert result.returncode == 0, result.stderr
    assert "routes.yaml: 1 routes" in result.stdout


def test_engine_refuses_to_start_on_a_bad_routes_file(tmp_path: Path) -> None:
    path = config(tmp_path, BAD_ROUTES)
    with pytest.raises(ConfigError) as exc:
        Engine(load_settings(path, environ={}))
    assert str(exc.value).startswith(f"{tmp_path / 'routes.yaml'}:4:")
    result = run_pfi("run", "--config", str(path))
    assert result.returncode == 2
    assert "routes error" in result.stderr
    assert f"{tmp_path / 'routes.yaml'}:4: routes[0].to[1]" in result.stderr


def test_missing_routes_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pfi.yaml"
    path.write_text(f"routing: {{routes_file: '{tmp_path / 'nope.yaml'}'}}\n", encoding="utf-8")
    result = run_pfi("check-config", str(path))
    assert result.returncode == 2
    assert f"{tmp_path / 'nope.yaml'}: (file): file not found" in result.stderr


def test_release_trigger_stage_runs_only_when_triggers_are_declared(tmp_path: Path) -> None:
    plain = BAD_ROUTES.replace("mss_pateint", "mss_patient")
    settings = load_settings(config(tmp_path, plain), environ={})
    assert [type(s) for s in build_stages(settings, None)][2:] == [RoutingStage]  # type: ignore[arg-type]
    triggers = plain + (
        "release_triggers:\n"
        "  - name: done\n"
        "    message: ORM^O01\n"
        "    document_key: {field: ORC-3.1, kind: filler_order_number}\n"
    )
    settings = load_settings(config(tmp_path, triggers), environ={})
    stages = build_stages(settings, None)  # type: ignore[arg-type]
    assert [type(s) for s in stages][2:] == [RoutingStage, HoldReleaseStage]
    assert [s.name for s in stages] == ["identity", "documents", "routing", "hold-release"]


def test_business_ack_endpoint_is_chosen_per_sender() -> None:
    outbound = OutboundSettings(
        business_acks=[
            ReplyEndpoint(sending_application="SIL-Y", host="127.0.0.1", port=3001),
            ReplyEndpoint(source="RIS", sending_facility="imagerie", host="127.0.0.1", port=3002),
            ReplyEndpoint(host="127.0.0.1", port=3003),
        ]
    )

    def port(source: str, app: str, facility: str) -> int | None:
        found = outbound.reply_endpoint(
            source=source, sending_application=app, sending_facility=facility
        )
        return found.port if found else None

    assert port("SGL", "sil-y", "labo") == 3001
    assert port("RIS", "RIS", "IMAGERIE") == 3002
    assert port("RIS", "RIS", "autre") == 3003
    assert (
        OutboundSettings().reply_endpoint(
            source="SGL", sending_application="SIL", sending_facility=""
        )
        is None
    )


def test_a_catch_all_ack_endpoint_before_others_is_an_error(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        BAD_ROUTES.replace("mss_pateint", "mss_patient"),
        "outbound:\n"
        "  business_acks:\n"
        "    - {host: 127.0.0.1, port: 3003}\n"
        "    - {sending_application: SIL, host: 127.0.0.1, port: 3001}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert "business_acks[0] matches every sender" in str(exc.value)
    assert "pfi.yaml:3: outbound" in str(exc.value)


def test_shipped_routes_are_the_repository_routes() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert BUILTIN_ROUTES_PATH.read_bytes() == (repo / "config" / "routes.yaml").read_bytes(), (
        "pfi/routes/default_routes.yaml is the copy of config/routes.yaml that `pfi run` uses "
        "from a directory without config/: copy it again"
    )


def test_routes_file_defaults_to_config_then_to_the_shipped_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert routes_path(tmp_path / "mine.yaml") == tmp_path / "mine.yaml"
    monkeypatch.chdir(tmp_path)
    assert routes_path(None) == BUILTIN_ROUTES_PATH
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "routes.yaml").write_text("routes: []\n")
    assert routes_path(None) == Path("config/routes.yaml")
