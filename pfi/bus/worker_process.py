"""The worker process: relay and stages in a process of their own, supervised by the engine.

Python runs one thread at a time per process. Stages (identity, documents, routing) are
CPU-bound; in the engine's process they would steal the front door's time and the MLLP
ACK latency would follow the downstream load. In a child process they get the second
core, and the front door keeps its own.

The child is tied to the engine (PR_SET_PDEATHSIG): a kill -9 of the engine takes it
along, and the outbox makes that harmless. The engine tells it about new outbox records
through a pipe (one byte per commit batch), about a restarted embedded broker with
SIGUSR1, and asks it to drain with SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pfi.bus.broker import die_with_parent
from pfi.observability.multiprocess import mark_process_dead

log = logging.getLogger(__name__)

#: Environment variables the engine passes to its worker process.
BOOTSTRAP_ENV = "PFI_WORKER_BOOTSTRAP"
NOTIFY_FD_ENV = "PFI_WORKER_NOTIFY_FD"
READY_FD_ENV = "PFI_WORKER_READY_FD"


class WorkerProcess:
    """Spawn, watch, notify and stop the `pfi run --role workers` child."""

    def __init__(
        self,
        config_path: Path | None,
        bootstrap: str,
        log_file: Path,
        *,
        restart_backoff_s: float = 1.0,
    ) -> None:
        self.config_path = config_path
        self.bootstrap = bootstrap
        self.log_file = log_file
        self._restart_backoff_s = restart_backoff_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._notify_w: int | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        self._watch = threading.Thread(target=self._watch_loop, name="worker-watch", daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        ready_r, ready_w = os.pipe()
        self._ready.clear()
        env = {
            **os.environ,
            BOOTSTRAP_ENV: self.bootstrap,
            NOTIFY_FD_ENV: str(read_fd),
            READY_FD_ENV: str(ready_w),
        }
        cmd = [sys.executable, "-m", "pfi.cli", "run", "--role", "workers"]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(read_fd, ready_w),
                preexec_fn=die_with_parent,
            )
        os.close(read_fd)
        os.close(ready_w)
        threading.Thread(
            target=self._await_ready, args=(ready_r,), name="worker-ready", daemon=True
        ).start()
        old, self._notify_w = self._notify_w, write_fd
        if old is not None:
            os.close(old)
        log.info("worker process started (pid %d)", self._proc.pid)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ready(self) -> bool:
        """Started, connected, stages running (it said so on the ready pipe)."""
        return self._ready.is_set() and self.alive()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def _await_ready(self, fd: int) -> None:
        try:
            if os.read(fd, 1):
                self._ready.set()
        finally:
            os.close(fd)

    def notify(self) -> None:
        """New outbox records: wake the relay (never blocks; a full pipe already woke it)."""
        if self._notify_w is None:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(self._notify_w, b"!")

    def rewind(self) -> None:
        if self.alive():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGUSR1)

    def stop(self, deadline: float) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker process did not drain in time; killing it")
                proc.kill()
                proc.wait()
        if self._notify_w is not None:
            os.close(self._notify_w)
            self._notify_w = None

    def _watch_loop(self) -> None:
        while not self._stop.wait(0.5):
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            if self._stop.is_set():
                return
            mark_process_dead(proc.pid)
            log.error(
                "worker process exited with %s; restarting it (see %s)",
                proc.returncode,
                self.log_file,
            )
            self._stop.wait(self._restart_backoff_s)
            if not self._stop.is_set():
                self._spawn()
                self.restarts += 1


#: Niceness of the worker process: when both compete for the CPU, the front door (MLLP
#: ACKs) wins and the stages lag a little, never the other way round.
WORKER_NICENESS = 10


def lower_priority() -> None:
    """In the worker: yield the CPU to the engine's front door under contention."""
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        log.debug("could not lower the worker's priority", exc_info=True)


def announce_ready() -> None:
    """In the worker: tell the engine we are up (once)."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd:
        os.write(int(fd), b"R")
        os.close(int(fd))


def notifications_to(callback: object) -> threading.Thread | None:
    """In the worker: call `callback()` whenever the engine writes to the notify pipe."""
    fd = os.environ.get(NOTIFY_FD_ENV)
    if not fd:
        return None
    read_fd = int(fd)

    def pump() -> None:
        while True:
            try:
                data = os.read(read_fd, 4096)
            except OSError:
                return
            if not data:
                return  # the engine closed its end
            callback()  # type: ignore[operator]

    thread = threading.Thread(target=pump, name="worker-notify", daemon=True)
    thread.start()
    return thread
