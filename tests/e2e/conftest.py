"""Fixtures of the end-to-end tests: a DMP simulator in the test process, trusting the
test PKI's seal certificate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pfi.simulators.dmp import DmpSimulatorServer, SimulatorOptions
from pfi.simulators.dmp.server import load_certificates
from tests.support.dmp_pki import TestPki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("e2e-dmp-pki"))


@pytest.fixture()
def sim(pki: TestPki) -> Iterator[DmpSimulatorServer]:
    options = SimulatorOptions(trusted_signers=load_certificates([pki.signing_cert]))
    server = DmpSimulatorServer("127.0.0.1", 0, options=options).start()
    yield server
    server.stop()
