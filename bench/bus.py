"""Bus throughput: records through PFI's outbox relay and stage runner, against raw
kafka-python produce + consume of the same records, in the same run on the same
embedded broker.

The runner path does what the raw path does (produce with acks=all, consume, commit
offsets) plus what makes it reliable: reading the outbox, marking rows published,
decoding Avro, the inbox check and insert per batch, one database transaction per batch.

    python bench/bus.py [--records N] [--size BYTES] [--database URL]

Bounded: N records (default 20,000), each phase stops after 120 s at most.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pfi.bus.broker import EmbeddedBroker
from pfi.bus.kafka import ensure_topics, make_consumer, make_producer
from pfi.bus.outbox import OutboxRelay, OutgoingRecord, add_to_outbox
from pfi.bus.stage import Record, StageContext, StageRunner
from pfi.bus.topics import INBOUND
from pfi.config.model import KafkaSettings
from pfi.store import Database
from pfi.store.migrate import upgrade
from pfi.store.models import utcnow

PHASE_LIMIT_S = 120.0


class NoopStage:
    name = "bench"
    input = INBOUND

    def __init__(self) -> None:
        self.count = 0

    def handle(self, record: Record, ctx: StageContext) -> None:
        self.count += 1


def raw_baseline(bootstrap: str, records: list[tuple[bytes, bytes]], partitions: int) -> float:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("bench.raw", partitions, 1)])
    admin.close()
    started = time.perf_counter()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, batch_size=512 * 1024
    )
    for key, value in records:
        producer.send("bench.raw", key=key, value=value)
    producer.flush()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="bench.raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    consumer.assign([TopicPartition("bench.raw", p) for p in range(partitions)])
    seen = 0
    deadline = time.monotonic() + PHASE_LIMIT_S
    while seen < len(records) and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=200, max_records=500)
        seen += sum(len(v) for v in polled.values())
        if polled:
            consumer.commit()
    elapsed = time.perf_counter() - started
    producer.close()
    consumer.close()
    assert seen == len(records), f"raw path consumed {seen} of {len(records)}"
    return len(records) / elapsed


def runner_path(bootstrap: str, db: Database, count: int, size: int, partitions: int) -> float:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="bench", partitions=partitions)
    ensure_topics(kafka, bootstrap)
    now = utcnow()
    with db.transaction() as s:
        add_to_outbox(
            s,
            [
                OutgoingRecord(
                    INBOUND,
                    f"patient-{i % 500}".encode(),
                    {
                        "message_id": i,
                        "source": "SGL",
                        "sender": "LAB|SITE",
                        "control_id": str(i),
                        "message_type": "ORU^R01",
                        "version": "2.5",
                        "charset": "8859/1",
                        "patient_key": f"patient-{i % 500}",
                        "received_at": now,
                        "raw": b"M" * size,
                    },
                )
                for i in range(count)
            ],
        )
    stage = NoopStage()
    started = time.perf_counter()
    relay = OutboxRelay(db, lambda: make_producer(kafka, bootstrap), "bench")
    relay.start()
    runner = StageRunner(
        stage,
        db,
        lambda g: make_consumer(kafka, bootstrap, f"bench.{g}"),
        "bench",
        assign_partitions=True,
        on_emitted=relay.notify,
    )
    runner.start()
    deadline = time.monotonic() + PHASE_LIMIT_S
    while runner.processed_total < count and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    runner.stop()
    relay.stop()
    assert stage.count == count, f"runner applied {stage.count} of {count}"
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1000, help="payload bytes per record")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--database", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()
    count = min(args.records, 200_000)
    broker = EmbeddedBroker()
    broker.start()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(args.database or f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(db)
        try:
            records = [(f"patient-{i % 500}".encode(), b"M" * args.size) for i in range(count)]
            raw = raw_baseline(broker.bootstrap, records, args.partitions)
            runner = runner_path(broker.bootstrap, db, count, args.size, args.partitions)
        finally:
            db.dispose()
            broker.stop()
    backend = "PostgreSQL" if args.database else "SQLite"
    print(
        f"records: {count} x {args.size} B, {args.partitions} partitions, "
        f"embedded Tansu, store {backend}"
    )
    print(f"raw kafka-python produce+consume : {raw:10,.0f} records/s")
    print(f"PFI outbox relay + stage runner  : {runner:10,.0f} records/s")
    print(f"ratio runner/raw                 : {runner / raw:10.2f}  (target >= 0.80)")


if __name__ == "__main__":
    main()
