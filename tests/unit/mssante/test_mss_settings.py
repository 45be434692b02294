"""MssanteSettings: unknown keys and half-given pairs are errors, not silent defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
