"""Failures the simulator can be told to inject, for tests and demos (`/_sim/fail`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

FailureMode = Literal["http_500", "hang", "refuse", "soap_fault"]


@dataclass(frozen=True)
class PlannedFailure:
    mode: FailureMode
    seconds: float = 0.0
    error_code: str = "XDSRegistryError"
    code_context: str = "failure injected by the simulator"
    status_code: int = 500


class FailurePlan:
    """A queue of failures applied to the next requests, one per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[PlannedFailure] = []

    def add(self, failure: PlannedFailure, count: int) -> None:
        with self._lock:
            self._queue.extend([failure] * count)

    def take(self) -> PlannedFailure | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
