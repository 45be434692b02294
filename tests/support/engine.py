"""Run the real `pfi` engine as a subprocess, the way an operator does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from pfi.bus.broker import free_port

REPO = Path(__file__).resolve().parents[2]


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (from /proc), e.g. the embedded broker."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class EngineProcess:
    """A `pfi run` subprocess with its own config file, ports and data directory.

    Every started engine is remembered so that a failing test never leaves one running
    (tests/conftest.py stops them all after each test).
    """

    started: list[EngineProcess] = []  # noqa: RUF012 - process-wide registry on purpose

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.ports = {"DPI": free_port(), "SGL": free_port(), "RIS": free_port()}
        base: dict[str, Any] = {
            "engine": {"data_dir": str(workdir / "var")},
            "http": {"port": self.http_port},
            # XSD-only, in-thread document checks: no schematron compile per engine start
            "documents": {"schematron": "off", "validation_processes": 0},
            "sources": {
                "DPI": {
                    "port": self.ports["DPI"],
                    "allowed_message_types": ["ADT", "ORU^R01", "MDM"],
                },
                "SGL": {"port": self.ports["SGL"], "allowed_message_types": ["ORU^R01", "ADT"]},
                "RIS": {
                    "port": self.ports["RIS"],
                    "allowed_message_types": ["ORU^R01", "MDM", "ADT"],
                },
            },
        }
        for section, values in (config or {}).items():
            if isinstance(values, dict) and isinstance(base.get(section), dict):
                base[section] = {**base[section], **values}
            else:
                base[section] = values
        self.config = base
        self.config_path = workdir / "pfi.yaml"
        self.config_path.write_text(yaml.safe_dump(base))
        self.env = {**os.environ, **(env or {})}
        self.env.pop("PFI_DATA_DIR", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "engine.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, wait_ready_s: float = 60.0) -> float:
        """Start and wait for /readyz 200; returns the seconds it took."""
        started = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pfi.cli", "run", "--config", str(self.config_path), *self.args],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        EngineProcess.started.append(self)
        deadline = started + wait_ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"engine not ready within {wait_ready_s}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
