"""The runner's optional stage hooks: `prepare` runs before the batch transaction, only
for records the stage's inbox does not hold; `open`/`close` frame the runner's thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from pfi.bus.kafka import ensure_topics, make_consumer, make_producer
from pfi.bus.outbox import OutboxRelay, OutgoingRecord, add_to_outbox
from pfi.bus.stage import Record, StageContext, StageRunner
from pfi.bus.topics import INBOUND
from pfi.config.model import KafkaSettings
from pfi.store import Database
from pfi.store.models import OutboxEvent
from tests.support import counting
from tests.support.counting import CountingStage, inbound_record

pytestmark = pytest.mark.slow


class PreparingStage(CountingStage):
    def __init__(self, db: Database) -> None:
        super().__init__(name="preparing")
        self.db = db
        self.prepared: list[int] = []
        self.handled_prepared: list[bool] = []
        self.write_lock_free: list[bool] = []
        self.opened = threading.Event()
        self.closed = threading.Event()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        self.closed.set()

    def prepare(self, records: list[Record]) -> None:
        started = time.monotonic()
        with self.db.transaction():  # SQLite: would wait if the runner held the write lock
            pass
        self.write_lock_free.append(time.monotonic() - started < 1.0)
        self.prepared += [r.event_id for r in records if r.event_id is not None]

    def handle(self, record: Record, ctx: StageContext) -> None:
        self.handled_prepared.append(record.event_id in self.prepared)
        super().handle(record, ctx)


@pytest.fixture
def runner_of(db: Database, kafka_settings: KafkaSettings) -> Iterator:
    counting.create_table(db)
    bootstrap = kafka_settings.bootstrap_servers or ""
    ensure_topics(kafka_settings, bootstrap)
    relay = OutboxRelay(
        db,
        lambda: make_producer(kafka_settings, bootstrap),
        kafka_settings.topic_prefix,
        poll_interval_s=0.05,
    )
    relay.start()
    runners: list[StageRunner] = []

    prefix = kafka_settings.topic_prefix

    def start(stage: PreparingStage) -> tuple[StageRunner, OutboxRelay]:
        runner = StageRunner(
            stage,
            db,
            lambda g: make_consumer(kafka_settings, bootstrap, f"{prefix}.{g}"),
            kafka_settings.topic_prefix,
            assign_partitions=True,
            on_emitted=relay.notify,
        )
        runner.start()
        runners.append(runner)
        return runner, relay

    yield start
    for runner in runners:
        runner.stop()
    relay.stop()


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_prepare_sees_each_new_record_before_handle_and_no_record_twice(
    db: Database, runner_of
) -> None:
    with db.transaction() as s:
        add_to_outbox(
            s,
            [
                OutgoingRecord(INBOUND, b"k", inbound_record(i, b"MSH|x"), f"c{i}")
                for i in range(50)
            ],
        )
    stage = PreparingStage(db)
    runner, relay = runner_of(stage)
    assert stage.opened.wait(30)
    assert wait_for(lambda: counting.count(db, "preparing") == (50, 50), 60)
    assert all(stage.handled_prepared) and len(stage.handled_prepared) == 50
    assert all(stage.write_lock_free)
    assert len(stage.prepared) == len(set(stage.prepared)) == 50
    # everything published again (a lost broker): re-read, skipped, never prepared again
    with db.transaction() as s:
        s.execute(update(OutboxEvent).values(published_at=None))
    relay.notify()
    assert wait_for(lambda: runner.processed_total >= 100, 60), runner.processed_total
    assert len(stage.prepared) == 50
    assert counting.count(db, "preparing") == (50, 50)
    runner.stop()
    assert stage.closed.is_set()
