"""Configuration: every mistake is reported with the file, the line, the key and what
was expected; environment variables override the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pfi.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pfi.yaml"
    path.write_text(text)
    return path


BAD_CONFIGS = [
    pytest.param(
        "kafka:\n  partitions: 0\n",
        "pfi.yaml:2: kafka.partitions: expected greater than or equal to 1 (got 0)",
        id="number-out-of-range",
    ),
    pytest.param(
        "kafka:\n  bootstrap: x:9092\n",
        "pfi.yaml:2: kafka.bootstrap: unknown key; expected one of: bootstrap_servers,",
        id="unknown-key-lists-the-known-ones",
    ),
    pytest.param(
        "http:\n  port: eighty\n",
        "pfi.yaml:2: http.port: expected a valid integer",
        id="wrong-type",
    ),
    pytest.param(
        "sources:\n  SGL:\n    port: 2576\n",
        "pfi.yaml:2: sources.SGL.allowed_message_types: required key is missing",
        id="missing-required-key",
    ),
    pytest.param(
        "sources:\n  SGL:\n    port: 2576\n    allowed_message_types: [ORU-R01]\n",
        "pfi.yaml:4: sources.SGL.allowed_message_types: expected message types like 'ORU^R01'",
        id="bad-message-type",
    ),
    pytest.param(
        "database:\n  url: mysql://db/pfi\n",
        "pfi.yaml:2: database.url: expected a sqlite:/// or postgresql+psycopg:// URL",
        id="unsupported-database",
    ),
    pytest.param(
        "sources:\n  SGL:\n    port: 8080\n    allowed_message_types: [ORU^R01]\n",
        "source SGL port 8080 is already used by http",
        id="port-clash",
    ),
    pytest.param(
        "sources:\n  DPI:\n    port: 2575\n    allowed_message_types: [ADT]\n"
        "    tls:\n      certfile: a.pem\n      keyfile: a.key\n      require_client_cert: true\n",
        "pfi.yaml:5: sources.DPI.tls: expected require_client_cert needs cafile",
        id="tls-client-cert-without-ca",
    ),
    pytest.param(
        "identity:\n  local_timezone: Mars/Olympus\n",
        "pfi.yaml:2: identity.local_timezone: expected an IANA time zone",
        id="bad-time-zone",
    ),
    pytest.param(
        "kafka:\n  partitions: 3\n  partitions: 4\n",
        "pfi.yaml:3: kafka.partitions: each key once (duplicate key)",
        id="duplicate-key",
    ),
    pytest.param(
        "kafka: [unclosed\n",
        "pfi.yaml:2: (syntax): invalid YAML",
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_configuration_names_file_line_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert str(path.parent) in message
    assert expected in message


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  partitions: 0\nhttp:\n  port: -1\n  colour: red\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    keys = {p.key for p in info.value.problems}
    assert keys == {"kafka.partitions", "http.port", "http.colour"}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  port: 9000\ndatabase:\n  url: sqlite:///a.db\n")
    settings = load_settings(
        path,
        environ={
            "PFI_HTTP_PORT": "9100",
            "PFI_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "PFI_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "PFI_DATA_DIR": "/srv/pfi",
        },
    )
    assert settings.http.port == 9100
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert not settings.embedded_broker
    assert str(settings.engine.data_dir) == "/srv/pfi"


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"PFI_HTTP_PORT": "http"})
    assert str(info.value).startswith("environment PFI_HTTP_PORT: http.port: expected")


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert {n: s.port for n, s in settings.sources.items()} == {
        "DPI": 2575,
        "SGL": 2576,
        "RIS": 2577,
    }
    assert settings.embedded_broker
    assert str(settings.engine.data_dir) == "var"
    assert settings.database_url.endswith("var/pfi.db")


def test_shipped_example_configuration_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config" / "pfi.yaml", environ={})
    assert settings.sources["SGL"].port == 2576


def test_check_config_command_exits_non_zero_with_the_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  partitions: zero\n")
    result = subprocess.run(
        [sys.executable, "-m", "pfi.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{path}:2: kafka.partitions: expected a valid integer" in result.stderr


def test_check_config_command_accepts_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  partitions: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "pfi.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
