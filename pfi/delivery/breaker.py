"""A circuit breaker per destination: after N consecutive transient failures, stop
calling for a cool-down, then let one trial call through.

Why: when the DMP is down, every pending row would otherwise spend its own timeout on
it (tens of seconds each) and burn one of its attempts; with the breaker open the rows
wait as failed, without an attempt counted, until the cool-down ends. One success
closes the breaker; a failed trial opens it again for another cool-down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Thread-safe; the delivery stage's sending threads share one per destination."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go now? In half-open, only one trial call at a time."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_out:
                self._trial_out = True
                return True
            return False

    def retry_in_s(self) -> float:
        """Seconds until the breaker lets a call through again (0 when closed)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def success(self) -> None:
        with self._lock:
            changed = self._opened_at is not None
            self._consecutive = 0
            self._opened_at = None
            self._trial_out = False
        if changed and self._on_change is not None:
            self._on_change(BreakerState.CLOSED)

    def failure(self) -> None:
        opened = False
        with self._lock:
            self._consecutive += 1
            if self._trial_out or (self._opened_at is None and self._consecutive >= self.failures):
                opened = True
                self._opened_at = self._clock()
            self._trial_out = False
        if opened and self._on_change is not None:
            self._on_change(BreakerState.OPEN)
