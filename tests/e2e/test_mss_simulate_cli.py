"""`pfi simulate mss` runs the simulator as its own process, reachable over SMTP and HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pfi.adapters.mssante.smtp import MssSmtpSender, OutcomeKind
from pfi.config.mssante import MssSmtpSettings
from tests.support.mss import APP, pro_message

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_simulate_mss_command_serves_smtp_and_http_until_interrupted():
    smtp, imap, http = _free_port(), _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pfi.cli import main; main()",
            "simulate",
            "mss",
            "--smtp-port",
            str(smtp),
            "--imap-port",
            str(imap),
            "--http-port",
            str(http),
            "--mailbox",
            f"{APP}:pw",
            "--unknown",
            "gone@ch-b.mssante.fr",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        stats = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                stats = httpx.get(f"http://127.0.0.1:{http}/_sim/stats", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert stats is not None, (
            proc.stdout.read().decode() if proc.poll() is not None else "no answer"
        )
        assert stats["unknown"] == ["gone@ch-b.mssante.fr"]
        sender = MssSmtpSender(MssSmtpSettings(host="127.0.0.1", port=smtp, tls_mode="none"))
        (outcome,) = sender.send(pro_message(["dr@ch-b.mssante.fr"]))
        sender.close()
        assert outcome.kind is OutcomeKind.ACCEPTED
        received = httpx.get(
            f"http://127.0.0.1:{http}/_sim/messages", params={"to": "dr@ch-b.mssante.fr"}
        ).json()
        assert len(received) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, proc.stdout.read().decode()
