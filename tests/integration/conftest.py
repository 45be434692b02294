"""Fixtures shared by the integration tests: the DMP simulator on loopback (one per
session, emptied before each test), trusting the test PKI's seal certificate. The
MSSanté tests (tests/integration/mssante) have a `sim` of their own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pfi.simulators.dmp import DmpSimulatorServer, SimulatorOptions
from pfi.simulators.dmp.server import load_certificates
from tests.support.dmp_pki import TestPki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("dmp-pki"))


@pytest.fixture(scope="session")
def simulator(pki: TestPki) -> Iterator[DmpSimulatorServer]:
    options = SimulatorOptions(trusted_signers=load_certificates([pki.signing_cert]))
    server = DmpSimulatorServer("127.0.0.1", 0, options=options).start()
    yield server
    server.stop()


@pytest.fixture()
def sim(simulator: DmpSimulatorServer) -> Iterator[DmpSimulatorServer]:
    httpx.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    yield simulator
