"""The running bus, in two parts that may live in different processes.

`BrokerSupervisor` owns the broker side: it starts the embedded Tansu broker when no
cluster is configured, creates the topics, decides what to re-publish at start, and
watches the embedded broker. Tansu keeps everything in memory, so when it dies the
supervisor starts a new one on the same port, recreates the topics, marks every
unfinished outbox record for re-publication and asks the workers to read from the start
(inbox de-duplication makes that safe).

`WorkerRuntime` does the work: the outbox relay, the stage runners, and the bookkeeping
that marks outbox records finished and prunes old ones. The engine runs it in a worker
process (so that the MLLP front door keeps a core of its own) or in its own threads.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from pfi.bus.broker import EmbeddedBroker
from pfi.bus.kafka import ensure_topics, make_consumer, make_producer
from pfi.bus.outbox import OutboxRelay, mark_completed, prune, reset_unfinished
from pfi.bus.stage import BatchOutcome, Stage, StageRunner, consumers_by_topic
from pfi.bus.topics import ALL_TOPICS
from pfi.config.model import Settings
from pfi.store.db import Database

log = logging.getLogger(__name__)


def topic_consumers(stages: Sequence[Stage]) -> dict[str, list[str]]:
    """Every topic with the consumer groups that must apply its records (maybe none)."""
    return {t.name: [] for t in ALL_TOPICS} | consumers_by_topic(stages)


class BrokerSupervisor:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        consumers: Mapping[str, Sequence[str]],
        *,
        on_broker_restarted: Callable[[], None] | None = None,
        watch_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self._consumers = consumers
        self.on_broker_restarted = on_broker_restarted
        self._watch_interval_s = watch_interval_s
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = settings.kafka.bootstrap_servers or ""
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self.restarts = 0

    @property
    def embedded(self) -> bool:
        return self.settings.embedded_broker

    def start(self) -> None:
        if self.embedded:
            log_file = self.settings.engine.data_dir / "logs" / "tansu.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self.broker = EmbeddedBroker(log_file=log_file)
            self.broker.start()
            self.bootstrap = self.broker.bootstrap
            self._watch = threading.Thread(
                target=self._watch_broker, name="broker-watch", daemon=True
            )
            self._watch.start()
        self._ensure_topics()
        policy = self.settings.kafka.republish_on_start
        if policy == "auto":
            policy = "unfinished" if self.embedded else "unpublished"
        if policy == "unfinished":
            self.republish_unfinished()

    def stop(self, deadline: float) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(timeout=max(0.1, deadline - time.monotonic()))
        if self.broker is not None:
            self.broker.stop(timeout_s=max(0.1, deadline - time.monotonic()))

    def republish_unfinished(self) -> int:
        """Mark what no consumer has finished as unpublished, for the relay to send again."""
        mark_completed(self.db, self._consumers)
        count = reset_unfinished(self.db)
        if count:
            log.info("re-publishing %d unfinished outbox records", count)
        return count

    def reachable(self) -> bool:
        if self.broker is not None and not self.broker.alive():
            return False
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0).close()
                return True
            except (OSError, ValueError):
                continue
        return False

    def _ensure_topics(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                created = ensure_topics(self.settings.kafka, self.bootstrap)
                if created:
                    log.info("created topics: %s", ", ".join(created))
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("broker %s not ready (%s); retrying", self.bootstrap, exc)
                time.sleep(1.0)

    def _watch_broker(self) -> None:
        while not self._stop.wait(self._watch_interval_s):
            if self.broker is None or self.broker.alive():
                continue
            try:
                log.error(
                    "embedded broker died; restarting it on %s and re-publishing "
                    "unfinished records",
                    self.bootstrap,
                )
                self.broker.start()
                self._ensure_topics()
                self.republish_unfinished()
                self.restarts += 1
                if self.on_broker_restarted is not None:
                    self.on_broker_restarted()
            except Exception:
                log.exception("embedded broker restart failed; will retry")


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        stages: Sequence[Stage],
        bootstrap: str,
        *,
        on_batch: Callable[[str, BatchOutcome, float], None] | None = None,
        on_record: Callable[[str, float], None] | None = None,
        on_lag: Callable[[str, int], None] | None = None,
        on_published: Callable[[int], None] | None = None,
        housekeeping_interval_s: float = 2.0,
        retention: timedelta = timedelta(days=3),
        relay_poll_interval_s: float = 0.25,
    ) -> None:
        self.settings = settings
        self.db = db
        self.stages = list(stages)
        self.bootstrap = bootstrap
        self._on_batch = on_batch
        self._on_record = on_record
        self._on_lag = on_lag
        self._on_published = on_published
        self._housekeeping_interval_s = housekeeping_interval_s
        self._retention = retention
        self._relay_poll_interval_s = relay_poll_interval_s
        self.relay: OutboxRelay | None = None
        self.runners: list[StageRunner] = []
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._consumers = topic_consumers(self.stages)

    def start(self) -> None:
        kafka = self.settings.kafka
        self.relay = OutboxRelay(
            self.db,
            lambda: make_producer(kafka, self.bootstrap),
            kafka.topic_prefix,
            on_published=self._on_published,
            poll_interval_s=self._relay_poll_interval_s,
        )
        self.relay.start()
        embedded = self.settings.embedded_broker
        assign = kafka.group_mode == "assign" or (kafka.group_mode == "auto" and embedded)
        # SQLite has one write lock: hold it briefly so the front door never waits long
        budget = 0.005 if self.db.is_sqlite else 0.5
        for stage in self.stages:
            runner = StageRunner(
                stage,
                self.db,
                lambda group: make_consumer(kafka, self.bootstrap, f"{kafka.topic_prefix}.{group}"),
                kafka.topic_prefix,
                assign_partitions=assign,
                on_emitted=self.relay.notify,
                on_batch=self._on_batch,
                on_record=self._on_record,
                max_transaction_s=budget,
                # a stage doing network I/O per record (delivery) takes smaller polls
                max_batch=getattr(stage, "max_batch", 500),
            )
            runner.start()
            self.runners.append(runner)
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="bus-housekeeping", daemon=True
        )
        self._housekeeper.start()

    def notify(self) -> None:
        """New outbox records were committed (by intake): publish them now."""
        if self.relay is not None:
            self.relay.notify()

    def rewind(self) -> None:
        """The embedded broker restarted: every stage reads its topic from the start."""
        for runner in self.runners:
            runner.rewind()
        self.notify()

    def stop(self, deadline: float) -> None:
        """Stages finish and commit their batch; the relay publishes what is pending."""
        self._stop.set()
        for runner in self.runners:
            runner.stop(timeout_s=max(0.1, deadline - time.monotonic() - 1.5))
        if self.relay is not None:
            self.relay.stop(timeout_s=max(0.1, deadline - time.monotonic() - 0.5))
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=max(0.1, deadline - time.monotonic()))

    def alive(self) -> bool:
        return all(r.alive for r in self.runners)

    def lag(self) -> dict[str, int]:
        return {r.stage.name: r.lag for r in self.runners}

    def _housekeeping(self) -> None:
        last_prune = 0.0
        while not self._stop.wait(self._housekeeping_interval_s):
            try:
                if self._on_lag is not None:
                    for runner in self.runners:
                        self._on_lag(runner.stage.name, runner.lag)
                mark_completed(self.db, self._consumers)
                if time.monotonic() - last_prune > 3600:
                    prune(self.db, self._retention)
                    last_prune = time.monotonic()
            except Exception:
                log.exception("bus housekeeping failed; will retry")
