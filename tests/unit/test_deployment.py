"""docker-compose.yml, the Dockerfile and the compose configuration agree with the engine.

Docker does not run here; what can be checked without it is checked: the files parse,
service names, ports, volumes and environment variables match what the engine reads,
Prometheus scrapes the engine where it listens, Grafana is provisioned from the repo.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from pfi.config.loader import ENV_OVERRIDES, load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PFI = SERVICES["pfi"]
ENV = {k: str(v) for k, v in PFI["environment"].items()}


def compose_settings():
    mount = next(v for v in PFI["volumes"] if v.endswith(":/etc/pfi/pfi.yaml:ro"))
    host_path = REPO / mount.split(":")[0]
    return load_settings(host_path, environ=ENV)


def test_compose_has_the_production_services() -> None:
    assert set(SERVICES) == {"kafka", "postgres", "pfi", "prometheus", "grafana"}


def test_engine_environment_uses_only_variables_the_engine_reads() -> None:
    assert set(ENV) <= set(ENV_OVERRIDES)


def test_engine_configuration_in_compose_is_valid_and_uses_kafka_and_postgres() -> None:
    settings = compose_settings()
    assert not settings.embedded_broker
    host, port = settings.kafka.bootstrap_servers.split(":")  # type: ignore[union-attr]
    assert host == "kafka"
    kafka_env = SERVICES["kafka"]["environment"]
    assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    db = urlparse(settings.database_url)
    pg_env = SERVICES["postgres"]["environment"]
    assert db.hostname == "postgres" and db.port == 5432
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )


def test_published_ports_are_the_ports_the_engine_listens_on() -> None:
    settings = compose_settings()
    published = {int(p.split(":")[1]) for p in PFI["ports"]}
    wanted = {settings.http.port, *(s.port for s in settings.sources.values())}
    assert published == wanted
    assert settings.http.host == "0.0.0.0"
    assert all(s.host == "0.0.0.0" for s in settings.sources.values())


def test_kafka_accepts_ten_megabyte_messages() -> None:
    assert int(SERVICES["kafka"]["environment"]["KAFKA_MESSAGE_MAX_BYTES"]) >= 11 * 1024 * 1024


def test_prometheus_scrapes_the_engine_service_and_loads_the_alert_rules() -> None:
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert f"pfi:{compose_settings().http.port}" in targets
    assert prom["rule_files"] == ["alerts.yml"]
    assert (REPO / "deploy/prometheus/alerts.yml").exists()
    mount = SERVICES["prometheus"]["volumes"][0]
    assert mount.startswith("./deploy/prometheus:/etc/prometheus")


def test_grafana_is_provisioned_from_the_repository() -> None:
    mounts = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"] if v.startswith("./"))
    provisioning = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/pfi.yml").read_text()
    )
    dashboards_path = provisioning["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/dashboards"] == dashboards_path
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert list((REPO / "deploy/grafana/dashboards").glob("*.json"))
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_every_repository_path_mounted_by_compose_exists() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), volume


def test_dockerfile_runs_the_engine_as_an_unprivileged_user_with_a_health_check() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert 'CMD ["pfi", "run"' in text
    assert "USER pfi" in text
    assert "HEALTHCHECK" in text and "/readyz" in text
    exposed = {
        int(p) for line in text.splitlines() if line.startswith("EXPOSE") for p in line.split()[1:]
    }
    settings = compose_settings()
    assert exposed == {settings.http.port, *(s.port for s in settings.sources.values())}


@pytest.mark.docker
def test_docker_compose_config_is_accepted_by_docker() -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip("no Docker engine answers on this machine")
    result = subprocess.run(
        ["docker", "compose", "config", "-q"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
