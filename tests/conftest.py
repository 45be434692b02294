"""Shared fixtures: databases (SQLite and PostgreSQL), the broker, settings, CDA checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

from pfi.config.model import KafkaSettings, Settings
from pfi.store import Database
from pfi.store.migrate import upgrade
from pfi.transforms.cda.reference_data import cda_xsd_path
from tests.support.broker import shared_broker
from tests.support.databases import (
    fresh_postgres_database,
    postgres_unavailable_reason,
    sqlite_url,
)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend."""
    database = Database(db_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    with shared_broker() as address:
        yield address


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_settings(bootstrap: str, topic_prefix: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, partitions=3)


@pytest.fixture
def settings(tmp_path: Path, kafka_settings: KafkaSettings) -> Settings:
    s = Settings()
    s.engine.data_dir = tmp_path / "var"
    s.kafka = kafka_settings
    return s


@pytest.fixture(scope="session")
def cda_xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(cda_xsd_path()))


@pytest.fixture(scope="session")
def validate(cda_xsd: etree.XMLSchema) -> Callable[[bytes], list[str]]:
    """Errors of a CDA (empty when valid), so tests read `assert validate(cda) == []`."""

    def run(cda: bytes) -> list[str]:
        doc = etree.fromstring(cda)
        if cda_xsd.validate(doc):
            return []
        return [f"line {e.line}: {e.message}" for e in cda_xsd.error_log]

    return run


@pytest.fixture(autouse=True)
def _no_engine_left_running() -> Iterator[None]:
    """Stop any `pfi run` subprocess a test started, whatever its outcome."""
    yield
    from tests.support.engine import EngineProcess

    while EngineProcess.started:
        EngineProcess.started.pop().stop()
