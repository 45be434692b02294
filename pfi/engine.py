"""One running engine: store, bus, stages, listeners, HTTP; and its graceful drain.

Roles (`pfi run --role`):
- `all` (default): the front door (MLLP intake, HTTP) and the broker side (embedded
  Tansu or a cluster, topics, re-publication), plus the workers (outbox relay and
  stages) in a child process, or in threads when `engine.worker_process` is false.
- `intake`: the front door only, for deployments that scale workers separately.
- `workers`: the relay and the stages only (what the child process runs).

Start order follows the data: the store first (migrations), then the bus, then the
doors. Stop order is the reverse: close the doors and answer what was received, let the
workers finish and commit their batch and publish what the outbox holds, stop the
broker. SIGTERM and SIGINT both drain, within `engine.shutdown_timeout_s` (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import uvicorn
from prometheus_client import CollectorRegistry

from pfi.adapters.dmp.sender import DmpSender
from pfi.adapters.mllp.server import MllpListener
from pfi.adapters.mssante.sender import mss_sender_of
from pfi.bus.runtime import BrokerSupervisor, WorkerRuntime, topic_consumers
from pfi.bus.stage import Stage
from pfi.bus.worker_process import (
    BOOTSTRAP_ENV,
    WorkerProcess,
    announce_ready,
    lower_priority,
    notifications_to,
)
from pfi.config import ConfigError
from pfi.config.model import Settings
from pfi.console.app import create_app
from pfi.delivery.hl7_replies import replies_on_outcome, replies_on_report
from pfi.delivery.hl7_sender import Hl7ReplySender, hl7_reply_sender
from pfi.delivery.mss_readback import no_reply_hook, readback_runner_of
from pfi.delivery.registry import delivery_stages
from pfi.delivery.sender import DeliverySender
from pfi.documents.stage import DocumentsStage
from pfi.identity.stage import IdentityStage
from pfi.inbound.config import InboundConfig
from pfi.inbound.runner import InboundRunner
from pfi.inbound.service import InboundIntegrator
from pfi.intake.service import IntakeOutcome, IntakeService
from pfi.observability import metrics, multiprocess
from pfi.observability.certificates import certificate_expiries
from pfi.observability.health import Readiness
from pfi.observability.logs import configure_logging
from pfi.observability.metrics import register_store_gauges
from pfi.observability.store_snapshot import store_snapshot_provider
from pfi.routes import Routes
from pfi.routes.loader import configured_routes
from pfi.routes.release_stage import HoldReleaseStage
from pfi.routes.router import Router, recipient_resolver_of
from pfi.routes.stage import RoutingStage
from pfi.store import Database
from pfi.store.migrate import current_revision, head_revision, upgrade

log = logging.getLogger("pfi.engine")

Role = Literal["all", "intake", "workers"]


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        role: Role = "all",
        config_path: Path | None = None,
        stages: Sequence[Stage] | None = None,
    ) -> None:
        if role == "intake" and settings.embedded_broker:
            raise ValueError(
                "--role intake needs kafka.bootstrap_servers: the embedded broker "
                "lives with --role all"
            )
        self.settings = settings
        self.role = role
        self.config_path = config_path
        self.db = Database(
            settings.database_url,
            # The ACK promise is the front door's: its commits reach the disk before the
            # AA. Workers only derive state from what is already durable and apply it
            # idempotently, so a commit of theirs lost to a power cut is simply redone.
            sqlite_synchronous="NORMAL"
            if role == "workers"
            else settings.database.sqlite_synchronous,
            pool_size=settings.database.pool_size,
            # SQLite: the front door polls for the write lock more often than the workers
            lock_poll_s=0.002 if role == "workers" else 0.0005,
            checkpoint_in_background=role != "workers",
        )
        self.router = Router(load_routes_of(settings), recipient_resolver_of(settings))
        self.stages = (
            list(stages)
            if stages is not None
            else build_stages(settings, self.db, router=self.router)
        )
        self.supervisor: BrokerSupervisor | None = None
        self.workers: WorkerRuntime | None = None
        #: ZAM and masking ORUs to the hospital, sent where the delivery workers run
        self.hl7_replies: Hl7ReplySender | None = None
        self.worker_process: WorkerProcess | None = None
        self.readiness = Readiness()
        self.readiness.add("database", self.db.ping)
        self.intake: IntakeService | None = None
        self.listeners: list[MllpListener] = []
        # Documents received by MSSanté: polled by the front door (one poller per
        # engine; several engines share the work safely, see pfi/inbound/integration).
        inbound = InboundConfig.of(settings) if role != "workers" else None
        self.inbound = InboundIntegrator(self.db, inbound) if inbound is not None else None
        self.inbound_runner: InboundRunner | None = None
        # DSN / MDN read back from the application mailbox: by the front door too
        self.mss_readback = (
            readback_runner_of(
                self.db,
                settings,
                on_outcome=replies_on_report(settings.outbound) or no_reply_hook,
            )
            if role != "workers"
            else None
        )
        self._http: _HttpServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- running -------------------------------------------------------------------
    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.role == "workers":
            loop.add_signal_handler(signal.SIGUSR1, self._rewind_workers)
        starting = asyncio.create_task(self.start(), name="start")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal while still starting (a broker that never came)
            log.info("signal received during start-up: stopping")
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            await self.shutdown()
            return 0
        if (exc := starting.exception()) is not None:
            stopping.cancel()
            log.error("engine failed to start: %s: %s", type(exc).__name__, exc)
            log.debug("start failure", exc_info=exc)
            await self.shutdown()
            return 1
        if self.role == "workers":
            log.info("PFI workers ready: %s", ", ".join(s.name for s in self.stages) or "relay")
        else:
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
        log.info("engine stopped" if self.role != "workers" else "workers stopped")
        return 0

    async def start(self) -> None:
        self.settings.engine.data_dir.mkdir(parents=True, exist_ok=True)
        if self.role == "workers":
            if BOOTSTRAP_ENV in os.environ:  # spawned by the engine: the front door comes first
                lower_priority()
            await asyncio.to_thread(self._wait_for_schema)
            await asyncio.to_thread(self._start_workers_here, self._worker_bootstrap())
            if BOOTSTRAP_ENV not in os.environ:  # standalone: health and metrics of its own
                await self._start_http()
            return
        await asyncio.to_thread(upgrade, self.db)
        self.supervisor = BrokerSupervisor(
            self.settings,
            self.db,
            topic_consumers(self.stages),
            on_broker_restarted=self._rewind_workers,
        )
        await asyncio.to_thread(self.supervisor.start)
        self.readiness.add("broker", self.supervisor.reachable)
        if self.role == "all":
            if self.settings.engine.worker_process:
                self.worker_process = WorkerProcess(
                    self.config_path,
                    self.supervisor.bootstrap,
                    self.settings.engine.data_dir / "logs" / "workers.log",
                )
                self.worker_process.start()  # the front door does not wait for it
                self.readiness.add("workers", self.worker_process.ready, required=False)
            else:
                await asyncio.to_thread(self._start_workers_here, self.supervisor.bootstrap)
        await self._start_http()
        await self._start_intake()

    def _worker_bootstrap(self) -> str:
        bootstrap = os.environ.get(BOOTSTRAP_ENV) or self.settings.kafka.bootstrap_servers
        if not bootstrap:
            raise ValueError(
                "--role workers needs kafka.bootstrap_servers (or to be started "
                "by `pfi run`, which passes its embedded broker's address)"
            )
        return bootstrap

    def _wait_for_schema(self, timeout_s: float = 60.0) -> None:
        """Workers never migrate: the front door does, once; they wait for it."""
        head = head_revision(self.db)
        deadline = time.monotonic() + timeout_s
        while current_revision(self.db) != head:
            if time.monotonic() > deadline:
                raise RuntimeError(f"database schema is not at {head}; run `pfi migrate`")
            time.sleep(0.5)

    def _start_workers_here(self, bootstrap: str) -> None:
        self.workers = WorkerRuntime(
            self.settings,
            self.db,
            self.stages,
            bootstrap,
            on_record=metrics.observe_stage_duration,
            on_lag=metrics.set_consumer_lag,
        )
        self.workers.start()
        self.hl7_replies = hl7_reply_sender(self.settings.outbound, self.db)
        if self.hl7_replies is not None:
            self.hl7_replies.start()
        self.readiness.add("workers", self.workers.alive, required=False)
        notifications_to(self.workers.notify)
        announce_ready()

    def _rewind_workers(self) -> None:
        if self.workers is not None:
            self.workers.rewind()
        if self.worker_process is not None:
            self.worker_process.rewind()

    def _outbox_committed(self) -> None:
        if self.workers is not None:
            self.workers.notify()
        if self.worker_process is not None:
            self.worker_process.notify()

    async def _start_http(self) -> None:
        http = self.settings.http
        config = uvicorn.Config(
            create_app(
                self.readiness,
                self._metrics_registry(),
                db=self.db,
                router=self.router,
                on_outbox_committed=self._outbox_committed,
                inbound=self.inbound,
            ),
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

    async def _checkpoint_wal(self) -> None:
        """SQLite: keep the WAL short, off the ACK path (see Database.checkpoint)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await asyncio.to_thread(self.db.checkpoint)
            except Exception:
                log.debug("WAL checkpoint failed; will retry", exc_info=True)

    def _metrics_registry(self) -> CollectorRegistry:
        """What /metrics serves: every process's values when the workers run apart, and
        the gauges whose truth is in the store (read at most every refresh interval)."""
        if multiprocess.enabled():
            registry = multiprocess.serving_registry()
        else:  # this engine's own registry: several engines may live in one test process
            registry = CollectorRegistry()
            registry.register(metrics.forwarding_collector(metrics.REGISTRY))
        if self.role != "workers":
            refresh = self.settings.observability.store_gauges_refresh.total_seconds()
            register_store_gauges(
                store_snapshot_provider(self.db),
                registry=registry,
                min_interval_s=refresh,
                max_staleness_s=max(refresh * 10, 300.0),
            )
        return registry

    async def _probe_health(self) -> None:
        """Broker and database up/down as gauges, for the alert rules (every 5 s)."""
        while True:
            ok_db = await asyncio.to_thread(self.db.ping)
            metrics.set_database_up(ok_db)
            if self.supervisor is not None:
                metrics.set_broker_up(await asyncio.to_thread(self.supervisor.reachable))
            await asyncio.sleep(5.0)

    async def _start_intake(self) -> None:
        if self.db.is_sqlite:
            self._checkpointer = asyncio.create_task(self._checkpoint_wal(), name="checkpoint")
        for name, source in self.settings.sources.items():
            metrics.prime_feed(name, source.allowed_message_types)
        for name, not_after in certificate_expiries(self.settings).items():
            metrics.set_certificate_expiry(name, not_after)
        self._tasks.append(asyncio.create_task(self._probe_health(), name="health-gauges"))
        self.intake = IntakeService(
            self.db,
            self.settings.sources,
            on_committed=self._outbox_committed,
            on_stored=record_intake_metrics,
        )
        self.intake.start()
        for name, source in self.settings.sources.items():
            listener = MllpListener(name, source, self.intake.submit)
            await listener.start()
            self.listeners.append(listener)
        if self.inbound is not None:
            self.inbound_runner = InboundRunner(self.inbound)
            self.inbound_runner.start()
            self.readiness.add("mss_inbound", self.inbound_runner.alive, required=False)
        if self.mss_readback is not None:
            self.mss_readback.start()

    async def shutdown(self) -> None:
        deadline = time.monotonic() + self.settings.engine.shutdown_timeout_s - 0.5
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        for task in self._tasks:
            task.cancel()
        for listener in self.listeners:
            await listener.stop(timeout_s=2.0)
        if self.intake is not None:
            await self.intake.drain(timeout_s=2.0)
        if self.inbound_runner is not None:
            await asyncio.to_thread(
                self.inbound_runner.stop, max(0.5, deadline - time.monotonic() - 2.0)
            )
        if self.mss_readback is not None:
            await asyncio.to_thread(
                self.mss_readback.stop, max(0.5, deadline - time.monotonic() - 2.0)
            )
        if self.worker_process is not None:
            await asyncio.to_thread(self.worker_process.stop, deadline - 1.0)
        if self.workers is not None:
            await asyncio.to_thread(self.workers.stop, deadline - 1.0)
        if self.hl7_replies is not None:
            await asyncio.to_thread(
                self.hl7_replies.stop, max(0.1, deadline - time.monotonic() - 0.5)
            )
        if self.supervisor is not None:
            await asyncio.to_thread(self.supervisor.stop, deadline)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, max(0.1, deadline - time.monotonic()))
        self.db.dispose()


def record_intake_metrics(outcome: IntakeOutcome) -> None:
    for source, message_type, _status, ack_code, size in outcome.items:
        metrics.record_message_received(source, message_type, size_bytes=size)
        metrics.record_message_acknowledged(source, message_type, ack_code)


def load_routes_of(settings: Settings) -> Routes:
    """The routes file `routing.routes_file` names (see `routes_path`); `ConfigError`
    (file:line) if bad."""
    path, routes = configured_routes(settings.routing.routes_file, settings.sources)
    log.info(
        "routes: %s (%d routes, %d release triggers)",
        path,
        len(routes.routes),
        len(routes.release_triggers),
    )
    return routes


def build_stages(settings: Settings, db: Database, *, router: Router | None = None) -> list[Stage]:
    """The engine's stages, in flow order. Capabilities add theirs here."""
    router = router or Router(load_routes_of(settings), recipient_resolver_of(settings))
    stages: list[Stage] = [
        IdentityStage(settings.identity, on_patient_changed=router.patient_changed),
        DocumentsStage(settings, db),
        RoutingStage(router),
    ]
    if router.routes.release_triggers:
        stages.append(HoldReleaseStage(router))
    stages.extend(
        delivery_stages(
            delivery_senders(settings),
            db,
            settings.delivery,
            on_outcome=replies_on_outcome(settings.outbound),
        )
    )
    return stages


def delivery_senders(settings: Settings) -> list[DeliverySender]:
    """The destination adapters of this configuration. A topic no sender serves is not
    consumed (see `pfi.delivery.registry`)."""
    senders: list[DeliverySender] = []
    if settings.dmp is not None:
        senders.append(DmpSender(settings.dmp))
    if (mss := mss_sender_of(settings)) is not None:
        senders.append(mss)
    return senders


def configure_engine_logging(settings: Settings, *, role: Role = "all") -> None:
    """Text or JSON lines (logging.format) with the correlation id of the message or
    document being handled; to stderr and to <data_dir>/logs/pfi.log. A spawned worker's
    stderr already goes to workers.log."""
    spawned_worker = role == "workers" and BOOTSTRAP_ENV in os.environ
    log_file = None
    if not spawned_worker:
        log_file = settings.logging.file or settings.engine.data_dir / "logs" / "pfi.log"
        if not log_file.is_absolute() and settings.logging.file is not None:
            log_file = settings.engine.data_dir / log_file
    configure_logging(settings.logging.level, settings.logging.format, log_file)
    logging.getLogger("kafka").setLevel(logging.WARNING)


def run_engine(
    settings: Settings,
    *,
    role: Role = "all",
    config_path: Path | None = None,
    with_simulators: bool = False,
) -> int:
    configure_engine_logging(settings, role=role)
    simulators = None
    if with_simulators and role != "workers":
        from pfi.simulators.demo import DemoSimulators

        simulators = DemoSimulators(settings).start()
    elif role == "workers":
        from pfi.simulators.demo import apply_simulated_settings

        if apply_simulated_settings(settings):
            mss = settings.mssante
            log.info(
                "workers deliver to the simulators: DMP %s, MSSanté %s",
                settings.dmp and settings.dmp.url,
                f"smtp://{mss.smtp.host}:{mss.smtp.port}" if mss and mss.enabled else "-",
            )
    try:
        engine = Engine(settings, role=role, config_path=config_path)
    except ConfigError as exc:
        log.error("routes error:\n%s", "\n".join(f"  {p}" for p in exc.problems))
        if simulators is not None:
            simulators.stop()
        return 2
    except ValueError as exc:
        log.error("%s", exc)
        if simulators is not None:
            simulators.stop()
        return 2
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(engine.serve())
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()  # unlike asyncio.run, does not wait for busy executor threads
        if simulators is not None:
            simulators.stop()
    time.sleep(0.05)  # idle executor threads exit on their own
    # A thread stuck in a blocking call (a database that never answers...) must not keep
    # the process alive past its drain: the outbox has everything that was ACKed.
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]
    if stuck:
        log.warning("exiting with threads still busy: %s", ", ".join(stuck))
        logging.shutdown()
        os._exit(code)
    return code
