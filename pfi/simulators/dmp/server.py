"""Run the DMP simulator: in the foreground (`pfi simulate dmp`) or in a background thread
for tests (`DmpSimulatorServer(host, port).start()` ... `.stop()`)."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import uvicorn
from cryptography import x509

from pfi.simulators.dmp.app import create_app
from pfi.simulators.dmp.control import FailurePlan
from pfi.simulators.dmp.registry import DmpRegistry
from pfi.simulators.dmp.service import SimulatorOptions, cda_schema

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090


def load_certificates(paths: list[Path]) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificate(p.read_bytes()) for p in paths)


class DmpSimulatorServer:
    """A uvicorn server for the simulator on its own thread; port 0 picks a free port."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        options: SimulatorOptions | None = None,
        tls_certfile: Path | None = None,
        tls_keyfile: Path | None = None,
        tls_client_cafile: Path | None = None,
    ) -> None:
        self.registry = DmpRegistry()
        self.failures = FailurePlan()
        self.app = create_app(self.registry, options, self.failures)
        cda_schema()  # compile the XSD before the first request, not during it
        tls: dict[str, object] = {}
        if tls_certfile and tls_keyfile:
            tls = {"ssl_certfile": str(tls_certfile), "ssl_keyfile": str(tls_keyfile)}
            if tls_client_cafile:
                tls |= {"ssl_ca_certs": str(tls_client_cafile), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        self._scheme = "https" if tls else "http"
        self._config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            lifespan="off",
            **tls,  # type: ignore[arg-type]
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> DmpSimulatorServer:
        self._thread = threading.Thread(target=self._server.run, name="dmp-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the DMP simulator could not start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the DMP simulator did not start within {timeout_s}s")
            time.sleep(0.01)
        sockets = self._server.servers[0].sockets if self._server.servers else []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> DmpSimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the calling thread until SIGINT/SIGTERM (uvicorn handles the signals)."""
        self._server.run()
