"""Liveness and readiness, as the orchestrator and the load balancer ask for them.

Alive means the process answers. Ready means it can do its job right now: the database
and the broker both answer. A probe is a named callable so that later capabilities
(e.g. a destination's circuit breaker) can add theirs without touching this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Probe = Callable[[], bool]


@dataclass
class Readiness:
    probes: dict[str, Probe] = field(default_factory=dict)
    #: Probes shown in /readyz but not deciding it (e.g. the worker process: the front
    #: door accepts and stores messages while the workers start or restart).
    informational: set[str] = field(default_factory=set)

    def add(self, name: str, probe: Probe, *, required: bool = True) -> None:
        self.probes[name] = probe
        if not required:
            self.informational.add(name)

    def check(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, probe in self.probes.items():
            try:
                ok = probe()
            except Exception as exc:  # a probe that raises is a failed probe
                log.debug("readiness probe %s raised", name, exc_info=True)
                ok = False
                results[name] = f"down ({type(exc).__name__})"
                continue
            results[name] = "up" if ok else "down"
        ready = all(v == "up" for k, v in results.items() if k not in self.informational)
        return ready, results
