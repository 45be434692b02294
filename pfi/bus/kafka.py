"""kafka-python clients configured from `KafkaSettings`, and topic administration.

Timeouts follow what was measured against Tansu (DESIGN.md): group joins are slow with
the defaults, so sessions are short and heartbeats frequent.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pfi.bus.topics import ALL_TOPICS
from pfi.config.model import KafkaSettings

log = logging.getLogger(__name__)

#: HL7 messages up to 10 MB (an ORU carrying a PDF) plus envelope and headers.
MAX_RECORD_BYTES = 32 * 1024 * 1024


def client_options(settings: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.ssl_cafile:
        options["ssl_cafile"] = str(settings.ssl_cafile)
    if settings.ssl_certfile:
        options["ssl_certfile"] = str(settings.ssl_certfile)
    if settings.ssl_keyfile:
        options["ssl_keyfile"] = str(settings.ssl_keyfile)
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    return options


def make_producer(settings: KafkaSettings, bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        **client_options(settings, bootstrap),
        acks="all",
        linger_ms=2,
        batch_size=512 * 1024,
        max_request_size=MAX_RECORD_BYTES,
        request_timeout_ms=15000,
        max_block_ms=15000,
        retries=5,
    )


def make_consumer(settings: KafkaSettings, bootstrap: str, group_id: str) -> KafkaConsumer:
    return KafkaConsumer(
        **client_options(settings, bootstrap),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_RECORD_BYTES,
        fetch_max_bytes=2 * MAX_RECORD_BYTES,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=60000,
        request_timeout_ms=30000,
        allow_auto_create_topics=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )


def ensure_topics(settings: KafkaSettings, bootstrap: str) -> list[str]:
    """Create the topics that are missing, widen those with too few partitions.

    Returns the full names created. Existing topics are left as they are otherwise: an
    operator who tuned a topic on the cluster keeps their tuning.
    """
    admin = KafkaAdminClient(**client_options(settings, bootstrap), request_timeout_ms=15000)
    try:
        wanted = {t.full_name(settings.topic_prefix): t for t in ALL_TOPICS}
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"max.message.bytes": str(MAX_RECORD_BYTES)},
            )
            for name in wanted
            if name not in existing
        ]
        created: list[str] = []
        if missing:
            try:
                admin.create_topics(missing)
                created = [t.name for t in missing]
            except TopicAlreadyExistsError:  # another instance won the race
                pass
        for name in existing & wanted.keys():
            parts = partition_count(admin, name)
            if 0 < parts < settings.partitions:
                admin.create_partitions({name: NewPartitions(settings.partitions)})
                log.warning(
                    "topic %s widened from %d to %d partitions", name, parts, settings.partitions
                )
        return created
    finally:
        admin.close()


def partition_count(admin: KafkaAdminClient, topic: str) -> int:
    try:
        meta = admin.describe_topics([topic])
    except KafkaError:
        return 0
    return len(meta[0].get("partitions", [])) if meta else 0
