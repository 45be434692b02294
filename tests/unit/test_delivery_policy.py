"""Backoff, circuit breaker and the topic registry of the delivery stages (pure logic)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS
from pfi.config.delivery import DeliverySettings
from pfi.delivery.backoff import Backoff
from pfi.delivery.breaker import BreakerState, CircuitBreaker
from pfi.delivery.registry import delivery_stages
from pfi.delivery.sender import DeliveryJob, SendResult
from pfi.store import Database


def test_backoff_doubles_per_attempt_up_to_the_maximum() -> None:
    backoff = Backoff(base_s=5, maximum_s=60, jitter=0)

    assert [backoff.delay_s(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_backoff_jitter_stays_within_its_fraction() -> None:
    backoff = Backoff(base_s=10, maximum_s=1000, jitter=0.2)
    rand = random.Random(1)

    delays = [backoff.delay_s(3, rand) for _ in range(200)]

    assert all(32 <= d <= 48 for d in delays)
    assert max(delays) - min(delays) > 10  # spread, not constant


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_n_consecutive_failures_then_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    breaker.success()  # not consecutive any more
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()

    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_in_s() == 30
    clock.t += 30
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failure()  # the trial failed: open again for a full cool-down
    assert breaker.state is BreakerState.OPEN and breaker.retry_in_s() == 30
    clock.t += 31
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


class NullSender:
    def __init__(self, *destinations: str) -> None:
        self.destinations = frozenset(destinations)

    def send(self, job: DeliveryJob) -> SendResult:
        return SendResult.transient("not a real sender")

    def close(self) -> None:
        pass


def test_registry_consumes_only_the_topics_some_sender_serves(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    settings = DeliverySettings()

    only_dmp = delivery_stages([NullSender("dmp")], db, settings)
    both = delivery_stages([NullSender("mss_pro", "mss_patient"), NullSender("dmp")], db, settings)

    assert [(s.name, s.input) for s in only_dmp] == [("delivery_dmp", DELIVER_DMP)]
    assert [(s.name, s.input, s.destinations) for s in both] == [
        ("delivery_dmp", DELIVER_DMP, frozenset({"dmp"})),
        ("delivery_mss", DELIVER_MSS, frozenset({"mss_pro", "mss_patient"})),
    ]
    with pytest.raises(ValueError, match="unknown destination"):
        delivery_stages([NullSender("fax")], db, settings)
    with pytest.raises(ValueError, match="two senders"):
        delivery_stages([NullSender("dmp"), NullSender("dmp")], db, settings)
    db.dispose()


def test_delivery_settings_refuse_a_maximum_below_the_base() -> None:
    with pytest.raises(ValueError, match="backoff_max_s"):
        DeliverySettings(backoff_base_s=10, backoff_max_s=5)
    with pytest.raises(ValueError, match="Extra inputs"):
        DeliverySettings.model_validate({"max_attempt": 3})
