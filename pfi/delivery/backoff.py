"""When to try a failed delivery again: exponential backoff with jitter, capped.

Attempt n (1 for the first) failed: wait base·2^(n-1), at most `maximum`, spread by
± `jitter` so that the rows failed by one outage do not all come back in the same second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    maximum_s: float
    jitter: float = 0.2

    def delay_s(self, attempt: int, rand: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt, 1) - 1, 60)
        delay = min(self.base_s * (2.0**exponent), self.maximum_s)
        if self.jitter:
            r = (rand or random).uniform(-self.jitter, self.jitter)
            delay = delay * (1.0 + r)
        return max(0.0, min(delay, self.maximum_s * (1.0 + self.jitter)))
