"""`pfi run --with-simulators`: the worker process gets the MSSanté section the demo made
(through PFI_SIMULATED_MSS), password included, and the configured section's own choices
(mailbox, templates, recipients) survive the redirection to the simulator."""

from __future__ import annotations

import pytest

from pfi.config import Settings
from pfi.config.mssante import MssanteSettings
from pfi.simulators.demo import (
    SIMULATED_MSS_ENV,
    apply_simulated_settings,
    mss_settings_json,
    simulated_mss_settings,
)
from pfi.simulators.mssante import MssSimulator


def test_the_demo_section_points_at_the_simulator_in_plain_text_and_keeps_the_rest() -> None:
    base = MssanteSettings(
        application_mailbox="bal@ch-demo.mssante.fr",
        organisation_name="CH démo",
        smtp={"host": "smtp.example.org", "username": "u", "password": "p"},
        recipients={"attending": True},
    )
    sim = MssSimulator(smtp_port=40001, imap_port=40002, http_port=40003)  # not started
    mss = simulated_mss_settings(base, sim, "s3cret")
    assert mss.enabled and mss.inbound is None
    assert (mss.smtp.host, mss.smtp.port, mss.smtp.tls_mode) == ("127.0.0.1", 40001, "none")
    assert mss.smtp.username is None and mss.smtp.password is None
    assert (mss.imap.port, mss.imap.tls_mode, mss.imap.username) == (
        40002,
        "none",
        "bal@ch-demo.mssante.fr",
    )
    assert mss.imap.password is not None and mss.imap.password.get_secret_value() == "s3cret"
    assert mss.organisation_name == "CH démo" and mss.recipients.attending


def test_a_worker_reads_the_demo_section_from_its_environment_with_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = MssSimulator(smtp_port=40001, imap_port=40002, http_port=40003)
    mss = simulated_mss_settings(MssanteSettings(), sim, "s3cret")
    monkeypatch.setenv(SIMULATED_MSS_ENV, mss_settings_json(mss))
    monkeypatch.delenv("PFI_SIMULATED_DMP", raising=False)
    settings = Settings()
    assert settings.mssante is None or not settings.mssante.enabled
    assert apply_simulated_settings(settings)
    assert settings.mssante == mss
    assert settings.mssante.imap.password.get_secret_value() == "s3cret"
