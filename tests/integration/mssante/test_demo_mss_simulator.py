"""`pfi run --with-simulators`' MSSanté side, in process: with its usual SMTP port taken the
simulator takes a free one, the engine's settings follow it, and the application mailbox
they name answers over IMAP with the password made for the run."""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
from pathlib import Path

import pytest

from pfi.config import Settings
from pfi.simulators import demo
from pfi.simulators.demo import SIMULATED_MSS_ENV, DemoSimulators


def test_busy_smtp_port_gives_a_free_one_and_the_settings_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(demo, "MSS_SMTP_PORT", busy)
        monkeypatch.setattr(demo, "MSS_IMAP_PORT", 0)
        monkeypatch.setattr(demo, "MSS_HTTP_PORT", 0)
        settings = Settings(engine={"data_dir": str(tmp_path / "var")})
        sims = DemoSimulators(settings, port=0).start()
        try:
            assert sims.mss is not None
            mss = settings.mssante
            assert mss is not None and mss.enabled
            assert mss.smtp.port == sims.mss.smtp_port != busy
            assert SIMULATED_MSS_ENV in os.environ
            with smtplib.SMTP(mss.smtp.host, mss.smtp.port, timeout=5) as smtp:
                assert smtp.noop()[0] == 250
            assert mss.imap.username and mss.imap.password
            imap = imaplib.IMAP4(mss.imap.host, mss.imap.port, timeout=5)
            try:
                assert (
                    imap.login(mss.imap.username, mss.imap.password.get_secret_value())[0] == "OK"
                )
                assert imap.select("INBOX")[0] == "OK"
            finally:
                imap.logout()
        finally:
            sims.stop()
        assert SIMULATED_MSS_ENV not in os.environ and sims.mss is None
