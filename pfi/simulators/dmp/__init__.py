"""A strict stand-in for the DMP's XDS.b services (ITI-41 repository, ITI-57 registry).

It refuses what the real DMP would refuse (metadata, value sets, hash, size, CDA schema,
VIHF, XAdES), keeps documents per INS with versions and statuses, and can be told to fail
(`/_sim/fail`) so the delivery worker's retry and dead-letter paths can be exercised.
"""

from pfi.simulators.dmp.app import create_app
from pfi.simulators.dmp.server import DEFAULT_HOST, DEFAULT_PORT, DmpSimulatorServer
from pfi.simulators.dmp.service import SimulatorOptions

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DmpSimulatorServer", "SimulatorOptions", "create_app"]
