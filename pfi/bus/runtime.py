"""The running bus: broker (embedded or not), topics, outbox relay, stage runners.

It also watches the embedded broker: Tansu keeps everything in memory, so when it dies
the runtime starts a new one on the same port, recreates the topics, marks every
unfinished outbox record for re-publication and makes each stage read from the start.
Inbox de-duplication makes that safe.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from pfi.bus.broker import EmbeddedBroker
from pfi.bus.kafka import ensure_topics, make_consumer, make_producer
from pfi.bus.outbox import OutboxRelay, mark_completed, prune, reset_unfinished
from pfi.bus.stage import BatchOutcome, Stage, StageRunner, consumers_by_topic
from pfi.bus.topics import ALL_TOPICS
from pfi.config.model import Settings
from pfi.store.db import Database

log = logging.getLogger(__name__)


class BusRuntime:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        stages: Sequence[Stage],
        *,
        on_batch: Callable[[str, BatchOutcome, float], None] | None = None,
        on_published: Callable[[int], None] | None = None,
        housekeeping_interval_s: float = 2.0,
        retention: timedelta = timedelta(days=3),
    ) -> None:
        self.settings = settings
        self.db = db
        self.stages = list(stages)
        self._on_batch = on_batch
        self._on_published = on_published
        self._housekeeping_interval_s = housekeeping_interval_s
        self._retention = retention
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = settings.kafka.bootstrap_servers or ""
        self.relay: OutboxRelay | None = None
        self.runners: list[StageRunner] = []
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self._consumers = {t.name: [] for t in ALL_TOPICS} | consumers_by_topic(self.stages)
        self.broker_restarts = 0

    @property
    def embedded(self) -> bool:
        return self.settings.embedded_broker

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        kafka = self.settings.kafka
        if self.embedded:
            log_file = self.settings.engine.data_dir / "logs" / "tansu.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self.broker = EmbeddedBroker(log_file=log_file)
            self.broker.start()
            self.bootstrap = self.broker.bootstrap
        self._ensure_topics()
        policy = kafka.republish_on_start
        if policy == "auto":
            policy = "unfinished" if self.embedded else "unpublished"
        if policy == "unfinished":
            self.republish_unfinished()
        self.relay = OutboxRelay(
            self.db,
            lambda: make_producer(kafka, self.bootstrap),
            kafka.topic_prefix,
            on_published=self._on_published,
        )
        self.relay.start()
        assign = kafka.group_mode == "assign" or (kafka.group_mode == "auto" and self.embedded)
        for stage in self.stages:
            runner = StageRunner(
                stage,
                self.db,
                lambda group: make_consumer(kafka, self.bootstrap, f"{kafka.topic_prefix}.{group}"),
                kafka.topic_prefix,
                assign_partitions=assign,
                on_emitted=self.relay.notify,
                on_batch=self._on_batch,
            )
            runner.start()
            self.runners.append(runner)
        self._watch = threading.Thread(
            target=self._housekeeping, name="bus-housekeeping", daemon=True
        )
        self._watch.start()

    def stop(self, deadline: float) -> None:
        """Stop within `deadline` (a time.monotonic() value): stages first, relay, broker."""
        self._stop.set()
        for runner in self.runners:
            runner.stop(timeout_s=max(0.1, deadline - time.monotonic() - 2.0))
        if self.relay is not None:
            self.relay.stop(timeout_s=max(0.1, deadline - time.monotonic() - 1.0))
        if self._watch is not None:
            self._watch.join(timeout=max(0.1, deadline - time.monotonic() - 0.5))
        if self.broker is not None:
            self.broker.stop(timeout_s=max(0.1, deadline - time.monotonic()))

    # -- recovery ------------------------------------------------------------------
    def republish_unfinished(self) -> int:
        """Mark what no consumer has finished as unpublished, for the relay to send again."""
        mark_completed(self.db, self._consumers, limit=1_000_000)
        count = reset_unfinished(self.db)
        if count:
            log.info("re-publishing %d unfinished outbox records", count)
        return count

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

    def _restart_embedded_broker(self) -> None:
        assert self.broker is not None
        log.error(
            "embedded broker died; restarting it on %s and re-publishing unfinished records",
            self.bootstrap,
        )
        self.broker.start()
        self._ensure_topics()
        self.republish_unfinished()
        for runner in self.runners:
            runner.rewind()
        if self.relay is not None:
            self.relay.notify()
        self.broker_restarts += 1

    def _housekeeping(self) -> None:
        last_prune = 0.0
        while not self._stop.wait(self._housekeeping_interval_s):
            try:
                if self.broker is not None and not self.broker.alive():
                    self._restart_embedded_broker()
                mark_completed(self.db, self._consumers)
                if time.monotonic() - last_prune > 3600:
                    prune(self.db, self._retention)
                    last_prune = time.monotonic()
            except Exception:
                log.exception("bus housekeeping failed; will retry")

    # -- health --------------------------------------------------------------------
    def broker_reachable(self) -> bool:
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

    def lag(self) -> dict[str, int]:
        return {r.stage.name: r.lag for r in self.runners}
