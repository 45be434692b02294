"""The Kafka-protocol broker the integration tests share.

A real Apache Kafka from testcontainers when a Docker engine answers; otherwise the same
embedded Tansu the engine uses. Tests isolate themselves with a topic prefix of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pfi.bus.broker import EmbeddedBroker

log = logging.getLogger(__name__)


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return None
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}); using embedded Tansu"


@contextmanager
def shared_broker() -> Iterator[str]:
    """Yield a bootstrap address for the session."""
    if docker_unavailable_reason() is None:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
