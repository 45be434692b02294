"""The engine running inside the test process (its own event loop thread): faster than a
subprocess, and the test can read the store directly. The subprocess form is in engine.py.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from pfi.bus.broker import free_port
from pfi.config.model import Settings, SourceSettings
from pfi.engine import Engine


def distinct_free_ports(count: int) -> list[int]:
    """`count` free loopback ports, all different (the OS may hand a just-freed one out
    again), with a bounded number of tries."""
    ports: list[int] = []
    for _ in range(count * 20):
        port = free_port()
        if port not in ports:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} distinct free ports")


def engine_settings(tmp_path: Path, db_url: str, **sources: dict[str, Any]) -> Settings:
    settings = Settings()
    settings.engine.data_dir = tmp_path / "var"
    settings.engine.shutdown_timeout_s = 5
    settings.engine.worker_process = False  # stages as threads: the test reads their effects
    settings.database.url = db_url
    ports = distinct_free_ports(4)  # one port given twice would fail validation
    settings.http.port = ports.pop()
    # documents checked against the XSD only, in the stage's thread: no schematron
    # compile (1.2 GB, 15+ s of CPU) in tests that are not about documents (those set
    # documents.schematron: required themselves, see tests/support/documents.py)
    settings.documents.schematron = "off"
    settings.documents.validation_processes = 0
    defaults = {
        "DPI": ["ADT", "ORU^R01", "MDM"],
        "SGL": ["ORU^R01", "ADT"],
        "RIS": ["ORU^R01", "MDM", "ADT"],
    }
    settings.sources = {
        name: SourceSettings(port=ports.pop(), allowed_message_types=types, **sources.get(name, {}))
        for name, types in defaults.items()
    }
    return settings


class RunningEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def port(self, source: str) -> int:
        return self.settings.sources[source].port

    def __enter__(self) -> RunningEngine:
        self._thread = threading.Thread(target=self._run, name="test-engine", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise TimeoutError("engine did not start within 30s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the test by __enter__
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.engine = Engine(self.settings)
        try:
            await self.engine.start()
        except BaseException:
            await self.engine.shutdown()
            raise
        self._started.set()
        await self._stop.wait()
        await self.engine.shutdown()
