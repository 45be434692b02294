from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from pfi.adapters.dmp.sender import DmpSender
from pfi.bus.topics import DELIVER_DMP
from pfi.config.delivery import DeliverySettings
from pfi.delivery.sender import DeliverySender
from pfi.delivery.stage import DeliveryStage, OutcomeHook
from pfi.simulators.dmp import DmpSimulatorServer
from pfi.store import Database
from tests.support.delivery import Clock, DeliveryDriver, dmp_router
from tests.support.dmp_fixtures import dmp_settings
from tests.support.dmp_pki import TestPki


@pytest.fixture()
def clock() -> Clock:
    return Clock()


DriverFactory = Callable[..., DeliveryDriver]


@pytest.fixture()
def make_driver(
    db: Database, sim: DmpSimulatorServer, pki: TestPki, clock: Clock, tmp_path: Path
) -> Iterator[DriverFactory]:
    stages: list[DeliveryStage] = []

    def make(
        url: str | None = None,
        read_timeout_s: float = 5.0,
        on_outcome: Sequence[OutcomeHook] = (),
        wrap_sender: Callable[[DeliverySender], DeliverySender] | None = None,
        **delivery: object,
    ) -> DeliveryDriver:
        values: dict[str, object] = {
            "max_attempts": 4,
            "backoff_base_s": 10.0,
            "backoff_max_s": 300.0,
            "breaker_failures": 3,
            "breaker_cooldown_s": 60.0,
            "concurrency": 2,
        }
        values.update(delivery)
        settings = dmp_settings(
            url or sim.url,
            pki.signing_cert,
            pki.signing_key,
            read_timeout_s=read_timeout_s,
            connect_timeout_s=1.0,
        )
        sender: DeliverySender = DmpSender(settings)
        stage = DeliveryStage(
            DELIVER_DMP,
            [wrap_sender(sender) if wrap_sender else sender],
            db,
            DeliverySettings(**values),  # type: ignore[arg-type]
            clock=clock,
            rand=random.Random(7),
            on_outcome=on_outcome,
        )
        stages.append(stage)
        return DeliveryDriver(db, stage, dmp_router(tmp_path))

    yield make
    for stage in stages:
        stage.close()
