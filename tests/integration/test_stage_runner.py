"""The bus end to end on a real broker and real databases: outbox → topic → stage.

Proves at-least-once delivery made exactly-once in effect: a record stored in the outbox
ends applied once, whether the relay publishes it twice, the stage dies mid-batch, or a
record is poison (dead-lettered with its error and original bytes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import select, update

from pfi.bus import codec
from pfi.bus.kafka import ensure_topics, make_consumer, make_producer
from pfi.bus.outbox import OutboxRelay, OutgoingRecord, add_to_outbox, mark_completed
from pfi.bus.stage import StageRunner, consumers_by_topic
from pfi.bus.topics import DEADLETTER, DOCUMENTS, INBOUND
from pfi.config.model import KafkaSettings
from pfi.store import Database
from pfi.store.models import DeadLetter, OutboxEvent
from tests.support import counting
from tests.support.counting import CountingStage, inbound_record

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout_s: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def enqueue(db: Database, ids: range, raw: bytes = b"MSH|test") -> None:
    with db.transaction() as s:
        add_to_outbox(
            s,
            [
                OutgoingRecord(INBOUND, f"k{i % 7}".encode(), inbound_record(i, raw), f"c{i}")
                for i in ids
            ],
        )


@pytest.fixture
def bus(db: Database, kafka_settings: KafkaSettings) -> Iterator[dict]:
    counting.create_table(db)
    ensure_topics(kafka_settings, kafka_settings.bootstrap_servers or "")
    started: dict = {"runners": [], "relay": None}

    def start(stage: CountingStage, **options: object) -> StageRunner:
        if started["relay"] is None:
            relay = OutboxRelay(
                db,
                lambda: make_producer(kafka_settings, kafka_settings.bootstrap_servers or ""),
                kafka_settings.topic_prefix,
                poll_interval_s=0.05,
            )
            relay.start()
            started["relay"] = relay
        runner = StageRunner(
            stage,
            db,
            lambda g: make_consumer(
                kafka_settings,
                kafka_settings.bootstrap_servers or "",
                f"{kafka_settings.topic_prefix}.{g}",
            ),
            kafka_settings.topic_prefix,
            assign_partitions=True,
            on_emitted=started["relay"].notify,
            **options,  # type: ignore[arg-type]
        )
        runner.start()
        started["runners"].append(runner)
        return runner

    started["start"] = start
    yield started
    for runner in started["runners"]:
        runner.stop()
    if started["relay"] is not None:
        started["relay"].stop()


def test_stored_records_are_published_and_applied_once(db: Database, bus: dict) -> None:
    enqueue(db, range(1, 301))
    bus["start"](CountingStage(emit=True))
    assert wait_for(lambda: counting.count(db) == (300, 300), 30), counting.count(db)
    # what the stage emitted went through the outbox too
    with db.reader() as s:
        emitted = s.scalar(select(OutboxEvent.id).where(OutboxEvent.topic == DOCUMENTS.name))
    assert emitted is not None
    time.sleep(0.5)
    assert counting.count(db) == (300, 300)


def test_lag_counts_the_polled_records_not_applied_yet(db: Database, bus: dict) -> None:
    """The consumer's position is past the whole polled batch at once; the lag ops watch
    must still show the backlog the stage is working through, then drop to zero."""
    enqueue(db, range(1, 61))
    runner = bus["start"](CountingStage(delay_s=0.05), max_transaction_s=0.001)
    assert wait_for(lambda: counting.count(db)[0] >= 10, 30), counting.count(db)
    applied, _ = counting.count(db)
    lag = runner.lag
    assert 60 - applied - 5 <= lag <= 60 - applied + 1, (lag, applied)
    assert wait_for(lambda: counting.count(db) == (60, 60), 30), counting.count(db)
    assert wait_for(lambda: runner.lag == 0, 5), runner.lag


def test_republished_records_are_skipped_by_the_inbox(db: Database, bus: dict) -> None:
    enqueue(db, range(1, 101))
    runner = bus["start"](CountingStage())
    assert wait_for(lambda: counting.count(db) == (100, 100), 30)
    with db.transaction() as s:  # as after a broker loss: everything goes out again
        s.execute(update(OutboxEvent).values(published_at=None))
    bus["relay"].notify()
    assert wait_for(lambda: runner.processed_total >= 200, 30), runner.processed_total
    assert counting.count(db) == (100, 100)


def test_completed_records_are_flagged_once_every_consumer_applied_them(
    db: Database, bus: dict
) -> None:
    enqueue(db, range(1, 51))
    first = CountingStage("counting")
    second = CountingStage("second")
    bus["start"](first)
    assert wait_for(lambda: counting.count(db) == (50, 50), 30)
    consumers = consumers_by_topic([first, second])
    assert mark_completed(db, consumers) == 0  # "second" has not applied them yet
    bus["start"](second)
    assert wait_for(lambda: counting.count(db, "second") == (50, 50), 30)
    assert mark_completed(db, consumers) == 50


def test_poison_record_is_dead_lettered_with_error_and_original_bytes(
    db: Database, bus: dict, kafka_settings: KafkaSettings
) -> None:
    enqueue(db, range(1, 11))
    enqueue(db, range(11, 12), raw=b"poison")
    enqueue(db, range(12, 21))
    bus["start"](CountingStage())
    assert wait_for(lambda: counting.count(db) == (19, 19), 30), counting.count(db)
    with db.reader() as s:
        dead = s.scalars(select(DeadLetter)).all()
    assert len(dead) == 1
    assert dead[0].stage == "counting" and dead[0].error_type == "ValueError"
    assert "poison record cannot be applied" in dead[0].error
    assert codec.decode("inbound", dead[0].value)["raw"] == b"poison"
    # and the dead letter itself reaches the dead-letter topic
    topic = DEADLETTER.full_name(kafka_settings.topic_prefix)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    got = []
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            got += [codec.decode("deadletter", r.value) for r in recs]
    consumer.close()
    assert got and got[0]["error_type"] == "ValueError"
    assert codec.decode("inbound", got[0]["original_value"])["raw"] == b"poison"


def test_transient_failure_retries_the_batch_without_dead_letters(db: Database, bus: dict) -> None:
    enqueue(db, range(1, 21))
    bus["start"](CountingStage(fail_first=2))
    assert wait_for(lambda: counting.count(db) == (20, 20), 40), counting.count(db)
    with db.reader() as s:
        assert s.scalars(select(DeadLetter)).all() == []


def test_stage_killed_mid_batch_and_restarted_applies_every_record_once(
    db: Database, kafka_settings: KafkaSettings
) -> None:
    counting.create_table(db)
    bootstrap = kafka_settings.bootstrap_servers or ""
    ensure_topics(kafka_settings, bootstrap)
    total = 1500
    enqueue(db, range(1, total + 1))
    cmd = [
        sys.executable,
        "-m",
        "tests.support.stage_worker",
        db.url,
        bootstrap,
        kafka_settings.topic_prefix,
        "0.002",
    ]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    kills = 0
    for _ in range(3):  # kill -9 three times while batches are in flight
        worker = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        before = counting.count(db)[0]
        assert wait_for(lambda b=before: counting.count(db)[0] > b + 100, 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        kills += 1
        if counting.count(db)[0] >= total:
            break
    assert kills >= 1 and counting.count(db)[0] < total, "the kills must land mid-stream"
    worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: counting.count(db)[1] == total, 120), counting.count(db)
        time.sleep(1.0)
        assert counting.count(db) == (total, total)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(15)
