"""Metrics across the engine's processes (front door + workers), one `/metrics`.

prometheus-client's multiprocess mode: each process writes its metric values to
memory-mapped files in a shared directory and the process serving `/metrics` aggregates
them. It must be switched on before any metric object exists, i.e. before
`pfi.observability.metrics` is imported: `pfi run` does it first thing, and the worker
process inherits the directory through the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable(directory: Path, *, clear: bool) -> None:
    if "pfi.observability.metrics" in sys.modules:
        raise RuntimeError("multiprocess metrics must be enabled before metrics are created")
    directory.mkdir(parents=True, exist_ok=True)
    if clear:  # files of a previous run would add up with this one's
        for stale in directory.glob("*.db"):
            stale.unlink()
    os.environ[DIR_ENV] = str(directory.resolve())
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def enabled() -> bool:
    return bool(os.environ.get(DIR_ENV))


def serving_registry() -> CollectorRegistry:
    """A registry that aggregates every process's values (plus this process's runtime)."""
    from prometheus_client import multiprocess

    from pfi.observability.metrics import build_info_collector, runtime_collectors

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    runtime_collectors(registry)
    registry.register(build_info_collector())
    return registry


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (its counters keep counting in the total)."""
    if enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
