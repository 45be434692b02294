"""MssanteSettings: unknown keys and half-given pairs are errors, not silent defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pfi.config import load_settings
from pfi.config.mssante import MssanteSettings


def test_defaults_are_usable_and_patient_domain_is_mon_espace_sante():
    settings = MssanteSettings()
    assert settings.patient_domain == "patient.mssante.fr"
    assert settings.smtp.tls_mode == "starttls" and settings.imap.tls_mode == "implicit"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"smtp": {"hots": "relay"}}, "smtp.hots"),
        ({"application_mailbox": "not-an-address"}, "application_mailbox"),
        ({"smtp": {"tls": {"certfile": "client.pem"}}}, "smtp.tls"),
        ({"imap": {"username": "pfi"}}, "imap"),
        ({"smtp": {"tls_mode": "ssl"}}, "smtp.tls_mode"),
        ({"patient_domain": "patient mssante"}, "patient_domain"),
    ],
)
def test_mistakes_are_reported_at_their_key(data, where):
    with pytest.raises(ValidationError) as error:
        MssanteSettings.model_validate(data)
    locations = [".".join(str(p) for p in e["loc"]) for e in error.value.errors()]
    assert any(loc.startswith(where) for loc in locations), locations


def test_commented_mssante_example_of_the_shipped_configuration_is_valid(tmp_path: Path) -> None:
    """config/pfi.yaml documents the mssante section in comments: uncommented, it loads."""
    repo = Path(__file__).resolve().parents[3]
    lines = (repo / "config" / "pfi.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("# mssante:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    path = tmp_path / "pfi.yaml"
    path.write_text("\n".join(block) + "\n", encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.mssante is not None and settings.mssante.enabled
    assert settings.mssante.recipients.several_mailboxes == "personal"
    assert settings.mssante.xdm.source_id == "1.2.250.1.213.4.5.9.9"
    assert settings.mssante.imap.poll_interval_s == 30
