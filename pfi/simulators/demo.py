"""`pfi run --with-simulators`: the DMP and MSSanté simulators on loopback, and the engine
pointed at them.

For a demo out of the box (`make run`): a throwaway seal certificate is generated under
`<data_dir>/simulators/pki/` (kept between runs, regenerated when it expires), the DMP
simulator trusts exactly that certificate, and the engine's `dmp:` section is replaced
by one naming the simulator's URL and that certificate.

The MSSanté simulator listens on 127.0.0.1 (SMTP 2525, IMAP 1143, HTTP 8091; a free port
for any that is busy) in plain text: it is loopback only, and the simulator, unlike a real
operator, accepts mail without STARTTLS when it is given no certificate. The engine's
`mssante:` section is enabled and pointed at it (SMTP and IMAP `tls_mode: none`, the
application mailbox with a password made for this run); everything else in the section
(mailbox address, templates, recipients...) is kept. Inbound integration stays as
configured: it needs a DPI endpoint, which a demo does not have unless pfi.yaml names one.

The worker process reads its configuration from the file again: the demo settings reach
it through the environment (`PFI_SIMULATED_DMP`, `PFI_SIMULATED_MSS`, each section as
JSON), which `apply_simulated_settings` reads. Never for production: the certificate is
self-made, the identity is a demo one and the mail is not encrypted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from pfi.config.dmp import DmpIdentitySettings, DmpSettings
from pfi.config.model import Settings
from pfi.config.mssante import MssanteSettings
from pfi.simulators.dmp.server import DEFAULT_PORT, DmpSimulatorServer
from pfi.simulators.dmp.service import SimulatorOptions
from pfi.simulators.mssante import MssSimulator

log = logging.getLogger(__name__)

SIMULATED_DMP_ENV = "PFI_SIMULATED_DMP"
SIMULATED_MSS_ENV = "PFI_SIMULATED_MSS"

#: The MSSanté simulator's usual ports (`pfi simulate mss` uses the same).
MSS_SMTP_PORT, MSS_IMAP_PORT, MSS_HTTP_PORT = 2525, 1143, 8091
#: How often the demo engine reads its application mailbox (DSN, MDN, auto-replies).
DEMO_IMAP_POLL_S = 5.0

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
        self.mss: MssSimulator | None = None

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
        try:
            self._start_mss()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_mss(self) -> None:
        base = self._settings.mssante or MssanteSettings()
        password = secrets.token_urlsafe(12)
        mailbox = base.application_mailbox
        ports = [_free_or_any(p) for p in (MSS_SMTP_PORT, MSS_IMAP_PORT, MSS_HTTP_PORT)]
        if ports != [MSS_SMTP_PORT, MSS_IMAP_PORT, MSS_HTTP_PORT]:
            log.warning("MSSanté simulator: a usual port is busy, it takes a free one instead")
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: every command
        try:
            self.mss = self._mss_simulator(ports, base.patient_domain, mailbox, password)
        except (RuntimeError, TimeoutError):  # taken between the probe and the bind
            log.warning("MSSanté simulator: a port was taken meanwhile, it takes free ones")
            self.mss = self._mss_simulator([0, 0, 0], base.patient_domain, mailbox, password)
        mss = simulated_mss_settings(base, self.mss, password)
        self._settings.mssante = mss
        os.environ[SIMULATED_MSS_ENV] = mss_settings_json(mss)
        log.info(
            "MSSanté simulator on smtp://127.0.0.1:%d (IMAP %d, application mailbox %s); "
            "messages: %s/_sim/messages?to=ADDRESS",
            self.mss.smtp_port,
            self.mss.imap_port,
            mailbox,
            self.mss.http_url,
        )

    @staticmethod
    def _mss_simulator(
        ports: list[int], patient_domain: str, mailbox: str, password: str
    ) -> MssSimulator:
        return MssSimulator(
            host="127.0.0.1",
            smtp_port=ports[0],
            imap_port=ports[1],
            http_port=ports[2],
            patient_domain=patient_domain,
            mailboxes={mailbox: password},
        ).start()

    def stop(self) -> None:
        os.environ.pop(SIMULATED_DMP_ENV, None)
        os.environ.pop(SIMULATED_MSS_ENV, None)
        if self.mss is not None:
            self.mss.stop()
            self.mss = None
        self.dmp.stop()


def _free_or_any(port: int) -> int:
    """`port` when nothing listens on it on 127.0.0.1, else 0 (the system picks one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def simulated_mss_settings(
    base: MssanteSettings, sim: MssSimulator, password: str
) -> MssanteSettings:
    """`base` (the configured section, or the defaults) enabled and sending through `sim`
    in plain text, reading the application mailbox back from it."""
    smtp = base.smtp.model_copy(
        update={
            "host": sim.host,
            "port": sim.smtp_port,
            "tls_mode": "none",
            "username": None,
            "password": None,
        }
    )
    imap = base.imap.model_copy(
        update={
            "host": sim.host,
            "port": sim.imap_port,
            "tls_mode": "none",
            "username": base.application_mailbox,
            "password": SecretStr(password),
            "mailbox": "INBOX",
            "poll_interval_s": min(base.imap.poll_interval_s, DEMO_IMAP_POLL_S),
        }
    )
    # the demo's own XDS sourceId unless the configuration names one
    xdm = base.xdm.model_copy(update={"source_id": base.xdm.source_id or DEMO_IDENTITY.source_id})
    return base.model_copy(update={"enabled": True, "smtp": smtp, "imap": imap, "xdm": xdm})


def mss_settings_json(mss: MssanteSettings) -> str:
    """The section as JSON with its secrets in clear (pydantic masks them): for the
    environment of the worker process only."""
    data = mss.model_dump(mode="json")
    for side, settings in (("smtp", mss.smtp), ("imap", mss.imap)):
        if settings.password is not None:
            data[side]["password"] = settings.password.get_secret_value()
    return json.dumps(data)


def apply_simulated_settings(settings: Settings) -> bool:
    """In a worker process started by `pfi run --with-simulators`: use the simulators."""
    applied = False
    raw = os.environ.get(SIMULATED_DMP_ENV)
    if raw:
        settings.dmp = DmpSettings.model_validate_json(raw)
        applied = True
    raw = os.environ.get(SIMULATED_MSS_ENV)
    if raw:
        settings.mssante = MssanteSettings.model_validate_json(raw)
        applied = True
    return applied
