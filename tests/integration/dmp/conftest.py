from __future__ import annotations

from collections.abc import Iterator

import pytest

from pfi.adapters.dmp import DmpClient
from pfi.simulators.dmp import DmpSimulatorServer
from tests.support.dmp_fixtures import dmp_settings
from tests.support.dmp_pki import TestPki


@pytest.fixture()
def client(sim: DmpSimulatorServer, pki: TestPki) -> Iterator[DmpClient]:
    settings = dmp_settings(sim.url, pki.signing_cert, pki.signing_key, read_timeout_s=5.0)
    with DmpClient(settings) as c:
        yield c
