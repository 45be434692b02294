"""One running engine: store, bus, stages, listeners, HTTP; and its graceful drain.

Start order follows the data: the store first (migrations), then the bus (broker,
topics, re-publication of what is unfinished, relay, stages), then the doors (HTTP,
MLLP). Stop order is the reverse: close the doors, let the stages finish and commit
their batch, publish what the outbox holds, stop the broker. SIGTERM and SIGINT both
drain; the whole drain is bounded by `engine.shutdown_timeout_s` (10 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator, Sequence

import uvicorn

from pfi.adapters.mllp.server import MllpListener
from pfi.bus.runtime import BusRuntime
from pfi.bus.stage import Stage
from pfi.config.model import Settings
from pfi.console.app import create_app
from pfi.identity.stage import IdentityStage
from pfi.intake.service import IntakeService
from pfi.observability.health import Readiness
from pfi.store import Database
from pfi.store.migrate import upgrade

log = logging.getLogger("pfi.engine")


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Engine:
    def __init__(self, settings: Settings, *, stages: Sequence[Stage] | None = None) -> None:
        self.settings = settings
        self.db = Database(
            settings.database_url,
            sqlite_synchronous=settings.database.sqlite_synchronous,
            pool_size=settings.database.pool_size,
        )
        self.stages = list(stages) if stages is not None else build_stages(settings, self.db)
        self.bus = BusRuntime(settings, self.db, self.stages)
        self.readiness = Readiness()
        self.readiness.add("database", self.db.ping)
        self.readiness.add("broker", self.bus.broker_reachable)
        self.intake: IntakeService | None = None
        self.listeners: list[MllpListener] = []
        self._http: _HttpServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
        except Exception:
            log.exception("engine failed to start")
            await self.shutdown()
            return 1
        log.info(
            "PFI engine %r ready: http://%s:%d",
            self.settings.engine.name,
            self.settings.http.host,
            self.settings.http.port,
        )
        await stop.wait()
        log.info(
            "signal received: draining (at most %.0fs)", self.settings.engine.shutdown_timeout_s
        )
        await self.shutdown()
        log.info("engine stopped")
        return 0

    async def start(self) -> None:
        self.settings.engine.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade, self.db)
        await asyncio.to_thread(self.bus.start)
        await self._start_http()
        await self._start_intake()
        self.started.set()

    async def _start_intake(self) -> None:
        self.intake = IntakeService(
            self.db, self.settings.sources, on_committed=self._outbox_committed
        )
        self.intake.start()
        for name, source in self.settings.sources.items():
            listener = MllpListener(name, source, self.intake.submit)
            await listener.start()
            self.listeners.append(listener)

    def _outbox_committed(self) -> None:
        if self.bus.relay is not None:
            self.bus.relay.notify()

    async def _start_http(self) -> None:
        http = self.settings.http
        config = uvicorn.Config(
            create_app(self.readiness, db=self.db),
            host=http.host,
            port=http.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        # Bind ourselves so that a taken port is a clear OSError, not uvicorn's exit(3).
        # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets
        # whose proto says TCP, and without it every response (head and body written
        # apart) waited ~40 ms for the client's delayed ACK.
        family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((http.host, http.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"HTTP port {http.host}:{http.port}: {exc.strerror}") from exc
        self._http = _HttpServer(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="http")
        while not self._http.started:
            if self._http_task.done():
                raise RuntimeError(f"HTTP server did not start on {http.host}:{http.port}")
            await asyncio.sleep(0.02)

    async def shutdown(self) -> None:
        deadline = time.monotonic() + self.settings.engine.shutdown_timeout_s - 0.5
        for listener in self.listeners:
            await listener.stop(timeout_s=2.0)
        if self.intake is not None:
            await self.intake.drain(timeout_s=2.0)
        await asyncio.to_thread(self.bus.stop, deadline)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, max(0.1, deadline - time.monotonic()))
        self.db.dispose()


def build_stages(settings: Settings, db: Database) -> list[Stage]:
    """The engine's stages, in flow order. Capabilities add theirs here."""
    del db
    return [IdentityStage(settings.identity)]


def configure_basic_logging(settings: Settings) -> None:
    log_dir = settings.engine.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.StreamHandler(),
        logging.FileHandler(settings.logging.file or log_dir / "pfi.log", encoding="utf-8"),
    ]
    logging.basicConfig(
        level=settings.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def run_engine(settings: Settings, *, with_simulators: bool = False) -> int:
    configure_basic_logging(settings)
    if with_simulators:
        log.info("simulators requested; none are available in this build yet")
    return asyncio.run(Engine(settings).serve())
