"""A real Prometheus scrapes a running engine: the drop-off alert fires when a feed goes
silent and resolves when it comes back (issue: "ops are alerted when a feed drops off")."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from pfi.adapters.mllp import MllpClient
from pfi.bus.broker import free_port
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")
ORU = (
    "MSH|^~\\&|SGL|LABO|PFI|CHU|20240301101010||ORU^R01^ORU_R01|{cid}|P|2.5\r"
    "PID|1||IPP1^^^CHU^PI||MARTIN^PAUL\rOBR|1\rOBX|1|ST|X^Y^L||ok||||||F\r"
)
SHORT_FEEDS = {
    "evaluation_interval": "1s",
    "feeds": {
        "SGL": {"working_hours": "always", "silence_after": "20s", "volume": False},
        "DPI": {"working_hours": "always", "silence_after": "1h", "volume": False},
        "RIS": {"working_hours": "always", "silence_after": "1h", "volume": False},
    },
}


def feed_alert_state(prometheus: str) -> str | None:
    """State of PfiFeedSilent for SGL: None, 'pending' or 'firing'."""
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    for alert in alerts:
        labels = alert["labels"]
        if labels.get("alertname") == "PfiFeedSilent" and labels.get("source") == "SGL":
            return str(alert["state"])
    return None


def wait_for(predicate, timeout_s: float, every: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (apt-get install prometheus; `make test` installs it)",
)
def test_feed_silence_alert_fires_on_drop_off_and_resolves_when_the_feed_resumes(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path / "engine", config={"observability": SHORT_FEEDS})
    rules = tmp_path / "rules.yml"
    rendered = subprocess.run(
        [
            sys.executable,
            "-m",
            "pfi.cli",
            "observability",
            "render-alerts",
            "-c",
            str(engine.config_path),
            "-o",
            str(rules),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "pfi", "static_configs": [{"targets": [f"127.0.0.1:{engine.http_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    engine.start()
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _ready(url), 30), "prometheus did not start"
        with MllpClient("127.0.0.1", engine.ports["SGL"]) as client:
            for i in range(10):  # the lab sends: no alert
                assert b"MSA|AA" in client.send(ORU.format(cid=f"A{i}").encode())
                time.sleep(1)
        assert feed_alert_state(url) is None
        # the lab stops sending: fires once silence > 20 s
        assert wait_for(lambda: feed_alert_state(url) == "firing", 60), feed_alert_state(url)
        with MllpClient("127.0.0.1", engine.ports["SGL"]) as client:
            assert b"MSA|AA" in client.send(ORU.format(cid="BACK").encode())
        assert wait_for(lambda: feed_alert_state(url) is None, 30), "alert did not resolve"
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        engine.stop()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
