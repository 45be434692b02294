"""How long a consumer lets the broker hold a fetch: short with the embedded Tansu (it
answers only when the wait ends), long with a Kafka cluster (answers on arrival)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pfi.bus import kafka
from pfi.config import ConfigError, load_settings
from pfi.config.model import KafkaSettings

REPO = Path(__file__).resolve().parents[2]


def test_consumers_use_the_configured_fetch_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka, "KafkaConsumer", lambda **options: made.append(options))

    kafka.make_consumer(KafkaSettings(fetch_max_wait_ms=500), "127.0.0.1:9092", "pfi.identity")
    kafka.make_consumer(KafkaSettings(), "127.0.0.1:9092", "pfi.identity")

    assert [m["fetch_max_wait_ms"] for m in made] == [500, 50]


def test_shipped_configurations_wait_short_on_tansu_and_long_on_kafka() -> None:
    embedded = load_settings(REPO / "config/pfi.yaml", environ={})
    cluster = load_settings(
        REPO / "deploy/docker/pfi.yaml",
        environ={
            "PFI_KAFKA_BOOTSTRAP": "kafka:9092",
            "PFI_DATABASE_URL": "postgresql+psycopg://pfi:pfi@postgres:5432/pfi",
        },
    )
    assert embedded.embedded_broker and embedded.kafka.fetch_max_wait_ms == 50
    assert not cluster.embedded_broker and cluster.kafka.fetch_max_wait_ms == 500


def test_a_fetch_wait_out_of_range_fails_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "pfi.yaml"
    path.write_text("kafka:\n  fetch_max_wait_ms: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kafka\.fetch_max_wait_ms"):
        load_settings(path, environ={})
