"""The MSSanté simulator of these tests: one per module (a module may define its own
`sim`, e.g. over TLS), reset before each test by `mss`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pfi.simulators.mssante import MssSimulator, SimulatorTls
from tests.support.dmp_pki import TestPki
from tests.support.mss import APP, APP_PASSWORD

#: the relay account of the TLS simulator (SMTP AUTH)
SMTP_USER, SMTP_PASSWORD = "pfi-relay", "relay-pass"


@pytest.fixture(scope="module")
def sim() -> Iterator[MssSimulator]:
    with MssSimulator(
        smtp_port=0, imap_port=0, http_port=0, mailboxes={APP: APP_PASSWORD}
    ) as simulator:
        yield simulator


@pytest.fixture
def mss(sim: MssSimulator) -> MssSimulator:
    sim.state.reset()
    sim.configure(unknown=[], opposed=[], unknown_mode="bounce")
    return sim


@contextmanager
def tls_simulator(pki: TestPki, **ports: int) -> Iterator[MssSimulator]:
    """A simulator that speaks TLS only to clients holding a certificate of the test CA
    and relays for `SMTP_USER` (extra listeners, e.g. smtps_port=0, in `ports`)."""
    tls = SimulatorTls(pki.server_cert, pki.server_key, pki.ca_cert, require_client_cert=True)
    with MssSimulator(
        smtp_port=0,
        imap_port=0,
        http_port=0,
        mailboxes={APP: APP_PASSWORD},
        smtp_credentials={SMTP_USER: SMTP_PASSWORD},
        tls=tls,
        **ports,
    ) as simulator:
        yield simulator
