"""STARTTLS with a client certificate and authentication, as MSSanté operators require.

The test PKI (a CA, a server certificate for 127.0.0.1, a client certificate) is generated
with `cryptography` for each run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pfi.adapters.mssante.imap import MssImapPoller
from pfi.adapters.mssante.smtp import MssSmtpSender, OutcomeKind
from pfi.config.mssante import MssClientTls, MssImapSettings, MssSmtpSettings
from pfi.simulators.mssante import MssSimulator
from pfi.transforms.mssante.reports import RecipientStatus, parse_delivery_report
from tests.support import dmp_pki
from tests.support.dmp_pki import make_pki
from tests.support.mss import APP, APP_PASSWORD, pro_message

from .conftest import SMTP_PASSWORD, SMTP_USER, tls_simulator

DR = "dr.house@ch-b.mssante.fr"


@pytest.fixture(scope="module")
def sim(pki: dmp_pki.TestPki) -> Iterator[MssSimulator]:
    with tls_simulator(pki, smtps_port=0) as simulator:
        yield simulator


def _tls(pki: dmp_pki.TestPki, with_cert: bool = True) -> MssClientTls:
    return MssClientTls(
        cafile=pki.ca_cert,
        certfile=pki.client_cert if with_cert else None,
        keyfile=pki.client_key if with_cert else None,
    )


def _smtp(sim: MssSimulator, tls: MssClientTls, **extra: object) -> MssSmtpSender:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sim.smtp_port,
        "tls_mode": "starttls",
        "tls": tls,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "timeout_s": 5,
    }
    settings.update(extra)
    return MssSmtpSender(MssSmtpSettings(**settings))  # type: ignore[arg-type]


def test_starttls_with_client_certificate_and_login_delivers(sim, pki):
    sim.state.reset()
    with _smtp(sim, _tls(pki)) as sender:
        (outcome,) = sender.send(pro_message([DR], message_id="<tls-1@hopital.mssante.fr>"))
    assert outcome.kind is OutcomeKind.ACCEPTED, outcome
    (stored,) = sim.messages_for(DR)
    assert stored.tls
    assert "commonName=PFI client TLS" in stored.client_cert_subject
    assert stored.authenticated_as == SMTP_USER


def test_imap_starttls_with_client_certificate_reads_the_delivery_report(sim, pki):
    sim.state.reset()
    with _smtp(sim, _tls(pki)) as sender:
        sender.send(pro_message([DR], message_id="<tls-2@hopital.mssante.fr>"))
    settings = MssImapSettings(
        host="127.0.0.1",
        port=sim.imap_port,
        tls_mode="starttls",
        tls=_tls(pki),
        username=APP,
        password=APP_PASSWORD,  # type: ignore[arg-type]
    )
    with MssImapPoller(settings) as poller:
        (mail,) = poller.fetch_unseen()
    report = parse_delivery_report(mail.raw)
    assert report.original_message_id == "<tls-2@hopital.mssante.fr>"
    assert report.recipients[0].status is RecipientStatus.DELIVERED


def test_without_client_certificate_the_handshake_fails_as_transient(sim, pki):
    sim.state.reset()
    with _smtp(sim, _tls(pki, with_cert=False)) as sender:
        (outcome,) = sender.send(pro_message([DR]))
    assert outcome.kind is OutcomeKind.TRANSIENT
    # TLS 1.3: the relay checks the certificate after the client's handshake ends, and hangs
    # up; with TLS 1.2 the handshake itself fails. Either way nothing was delivered.
    assert outcome.code is None
    assert "SSL" in outcome.reply or "closed" in outcome.reply, outcome
    assert sim.messages_for(DR) == []


def test_server_not_signed_by_the_configured_ca_is_refused(sim, pki, tmp_path: Path):
    other = make_pki(tmp_path / "other")
    tls = MssClientTls(cafile=other.ca_cert, certfile=pki.client_cert, keyfile=pki.client_key)
    with _smtp(sim, tls) as sender:
        (outcome,) = sender.send(pro_message([DR]))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.reply


def test_clear_text_session_is_turned_away_before_any_recipient(sim):
    sim.state.reset()
    sender = MssSmtpSender(
        MssSmtpSettings(host="127.0.0.1", port=sim.smtp_port, tls_mode="none", timeout_s=5)
    )
    (outcome,) = sender.send(pro_message([DR]))
    assert outcome.kind is OutcomeKind.TRANSIENT  # our set-up is wrong, not the recipient
    assert outcome.code == 530 and "STARTTLS" in outcome.reply
    sender.close()
    assert sim.messages_for(DR) == []


def test_wrong_smtp_password_is_transient_with_the_server_reason(sim, pki):
    with _smtp(sim, _tls(pki), password="wrong") as sender:
        (outcome,) = sender.send(pro_message([DR]))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.code is None and "535" in outcome.reply


def test_implicit_tls_smtps_with_client_certificate_delivers(sim, pki):
    sim.state.reset()
    with _smtp(sim, _tls(pki), tls_mode="implicit", port=sim.smtps_port) as sender:
        (outcome,) = sender.send(pro_message([DR], message_id="<smtps@hopital.mssante.fr>"))
    assert outcome.kind is OutcomeKind.ACCEPTED, outcome
    (stored,) = sim.messages_for(DR)
    assert stored.tls and "commonName=PFI client TLS" in stored.client_cert_subject
    assert stored.authenticated_as == SMTP_USER
