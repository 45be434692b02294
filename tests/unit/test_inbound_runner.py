"""The engine's mailbox poller: keeps polling after a failed poll, stops promptly."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from pfi.inbound.runner import InboundRunner
from pfi.inbound.service import PollSummary


class _Integrator:
    """Stands in for InboundIntegrator: fails once, then counts polls."""

    def __init__(self) -> None:
        self.cfg = SimpleNamespace(
            poll_interval_s=0.01,
            imap=SimpleNamespace(mailbox="INBOX"),
            dpi=SimpleNamespace(host="127.0.0.1", port=1),
        )
        self.calls = 0
        self.third = threading.Event()

    def poll_once(self) -> PollSummary:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("database gone")
        if self.calls >= 3:
            self.third.set()
        return PollSummary()


def test_a_failed_poll_is_counted_and_the_next_one_runs():
    integrator = _Integrator()
    runner = InboundRunner(integrator)  # type: ignore[arg-type]
    runner.start()
    try:
        assert integrator.third.wait(5)
        assert runner.failures == 1 and runner.alive()
    finally:
        runner.stop(5)
    assert not runner.alive()


def test_stop_interrupts_the_wait_between_polls():
    integrator = _Integrator()
    runner = InboundRunner(integrator, interval_s=3600)  # type: ignore[arg-type]
    runner.start()
    deadline = time.monotonic() + 5
    while runner.polls < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    runner.stop(5)
    assert time.monotonic() - started < 1 and not runner.alive()
