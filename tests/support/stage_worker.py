"""A stage process for kill tests: outbox relay + one counting stage, until SIGTERM.

python -m tests.support.stage_worker DB_URL BOOTSTRAP PREFIX DELAY_S
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from pfi.bus.kafka import make_consumer, make_producer
from pfi.bus.outbox import OutboxRelay
from pfi.bus.stage import StageRunner
from pfi.config.model import KafkaSettings
from pfi.store.db import Database
from tests.support.counting import CountingStage


def main() -> None:
    url, bootstrap, prefix, delay = sys.argv[1:5]
    db = Database(url)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    relay = OutboxRelay(db, lambda: make_producer(kafka, bootstrap), prefix)
    relay.start()
    runner = StageRunner(
        CountingStage(delay_s=float(delay)),
        db,
        lambda group: make_consumer(kafka, bootstrap, f"{prefix}.{group}"),
        prefix,
        assign_partitions=True,
        on_emitted=relay.notify,
        max_batch=200,
    )
    runner.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("worker ready", flush=True)
    while not stop.wait(0.2):
        pass
    runner.stop()
    relay.stop()
    time.sleep(0.1)


if __name__ == "__main__":
    main()
