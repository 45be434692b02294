"""The MSSanté simulator of these tests: one per module (a module may define its own
`sim`, e.g. over TLS), reset before each test by `mss`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pfi.simulators.mssante import MssSimulator
from tests.support.mss import APP, APP_PASSWORD


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
