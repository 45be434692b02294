"""`pfi run --with-simulators`: the DMP simulator on loopback, and the engine pointed at it.

For a demo out of the box (`make run`): a throwaway seal certificate is generated under
`<data_dir>/simulators/pki/` (kept between runs, regenerated when it expires), the
simulator trusts exactly that certificate, and the engine's `dmp:` section is replaced
by one naming the simulator's URL and that certificate. The worker process reads its
configuration from the file again: the demo settings reach it through the environment
(`PFI_SIMULATED_DMP`, the DmpSettings as JSON), which `apply_simulated_settings` reads.
Never for production: the certificate is self-made and the identity is a demo one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pfi.config.dmp import DmpIdentitySettings, DmpSettings
from pfi.config.model import Settings
from pfi.simulators.dmp.server import DEFAULT_PORT, DmpSimulatorServer
from pfi.simulators.dmp.service import SimulatorOptions

log = logging.getLogger(__name__)

SIMULATED_DMP_ENV = "PFI_SIMULATED_DMP"

DEMO_IDENTITY = DmpIdentitySettings(
    structure_id="10B0000000",
    structure_name="Établissement de démonstration PFI",
    structure_finess="920008059",
    subject_name_id="PFI-DEMO/automate",
    source_id="1.2.250.1.999.42.1",
)


@dataclass(frozen=True)
class DemoSeal:
    certfile: Path
    keyfile: Path


def demo_seal(directory: Path) -> DemoSeal:
    """A self-signed seal certificate for the demo (made once, kept while valid)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "demo-seal.pem", directory / "demo-seal.key"
    now = dt.datetime.now(dt.UTC)
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > now + dt.timedelta(days=1):
            return DemoSeal(cert_path, key_path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PFI demo (not for production)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "PFI DEMO CACHET DMP"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return DemoSeal(cert_path, key_path)


class DemoSimulators:
    """The simulators `pfi run --with-simulators` starts, and the settings that use them."""

    def __init__(self, settings: Settings, *, port: int = DEFAULT_PORT) -> None:
        self.seal = demo_seal(settings.engine.data_dir.resolve() / "simulators" / "pki")
        trusted = (x509.load_pem_x509_certificate(self.seal.certfile.read_bytes()),)
        self._options = SimulatorOptions(trusted_signers=trusted)
        self._port = port
        self.dmp = DmpSimulatorServer("127.0.0.1", port, options=self._options)
        self._settings = settings

    def start(self) -> DemoSimulators:
        try:
            self.dmp.start()
        except (RuntimeError, SystemExit):  # the usual port is taken: any free one
            log.warning("port %d is busy: the DMP simulator takes a free port", self._port)
            self.dmp = DmpSimulatorServer("127.0.0.1", 0, options=self._options)
            self.dmp.start()
        identity = self._settings.dmp.identity if self._settings.dmp else DEMO_IDENTITY
        dmp = DmpSettings(
            url=self.dmp.url,
            signing_certfile=self.seal.certfile,
            signing_keyfile=self.seal.keyfile,
            identity=identity,
        )
        self._settings.dmp = dmp
        os.environ[SIMULATED_DMP_ENV] = dmp.model_dump_json()
        log.info("DMP simulator on %s (documents: %s/_sim/documents?ins=...)", dmp.url, dmp.url)
        return self

    def stop(self) -> None:
        os.environ.pop(SIMULATED_DMP_ENV, None)
        self.dmp.stop()


def apply_simulated_settings(settings: Settings) -> bool:
    """In a worker process started by `pfi run --with-simulators`: use the simulator."""
    raw = os.environ.get(SIMULATED_DMP_ENV)
    if not raw:
        return False
    settings.dmp = DmpSettings.model_validate_json(raw)
    return True
