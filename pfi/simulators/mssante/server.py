"""The MSSanté simulator: SMTP relay + IMAP store + HTTP inspection, in one asyncio loop.

`MssSimulator(...).start()` runs it in a background thread (tests, `pfi demo`);
`pfi simulate mss` runs it in the foreground. Ports default to 2525 (SMTP), 1143 (IMAP)
and 8091 (HTTP) on 127.0.0.1; pass 0 to get free ports (read them back after start()).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn

from pfi.simulators.mssante.http_api import build_app
from pfi.simulators.mssante.imap import serve_imap
from pfi.simulators.mssante.smtp import DsnSMTP, MssSmtpHandler
from pfi.simulators.mssante.state import SimulatorState, StoredMessage, UnknownMode


@dataclass(frozen=True, slots=True)
class SimulatorTls:
    """Server certificate, and the CA whose client certificates are accepted."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    require_client_cert: bool = False
    require_starttls: bool = True  # SMTP: refuse MAIL before STARTTLS
    imap_implicit: bool = False  # IMAP: TLS from the first byte instead of STARTTLS

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.certfile), str(self.keyfile))
        if self.cafile is not None:
            context.load_verify_locations(cafile=str(self.cafile))
            context.verify_mode = (
                ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
            )
        return context


class MssSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        smtp_port: int = 2525,
        imap_port: int = 1143,
        http_port: int = 8091,
        hostname: str = "mssante.simulator",
        patient_domain: str = "patient.mssante.fr",
        mailboxes: dict[str, str] | None = None,
        smtp_credentials: dict[str, str] | None = None,
        tls: SimulatorTls | None = None,
        unknown: list[str] | None = None,
        opposed: list[str] | None = None,
        unknown_mode: UnknownMode = "bounce",
        smtp_idle_timeout_s: float = 300.0,
        smtps_port: int | None = None,
    ) -> None:
        self.host = host
        self.smtp_port = smtp_port
        self.imap_port = imap_port
        self.http_port = http_port
        self.hostname = hostname
        self.tls = tls
        self.smtp_credentials = dict(smtp_credentials or {})
        self.smtp_idle_timeout_s = smtp_idle_timeout_s
        self.smtps_port = smtps_port  # implicit TLS (SMTPS) listener, when tls is given
        self.state = SimulatorState(mailboxes or {"pfi@hopital.mssante.fr": "pfi"}, patient_domain)
        self.state.configure(
            unknown=unknown or [], opposed=opposed or [], unknown_mode=unknown_mode
        )
        self.handler = MssSmtpHandler(self.state, hostname, self.smtp_credentials)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> MssSimulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._thread = threading.Thread(target=self._run_thread, name="mss-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"MSSanté simulator did not start within {timeout_s}s")
        if self._error is not None:
            raise RuntimeError(f"MSSanté simulator failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> MssSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Foreground mode (CLI): run until interrupted."""
        asyncio.run(self._main(install_signals=True))

    def _run_thread(self) -> None:
        try:
            asyncio.run(self._main(install_signals=False))
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self, install_signals: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tls_context = self.tls.server_context() if self.tls else None

        def smtp_factory(implicit: bool) -> DsnSMTP:
            with warnings.catch_warnings():
                # On the SMTPS port the transport is TLS from the first byte, which aiosmtpd
                # cannot see: its "AUTH without TLS" warning does not apply.
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
                return _smtp_protocol(implicit)

        def _smtp_protocol(implicit: bool) -> DsnSMTP:
            return DsnSMTP(
                self.handler,
                hostname=self.hostname,
                tls_context=None if implicit else tls_context,
                require_starttls=bool(self.tls and self.tls.require_starttls and not implicit),
                authenticator=self.handler.authenticate if self.smtp_credentials else None,
                auth_required=bool(self.smtp_credentials),
                auth_require_tls=bool(self.tls) and not implicit,
                data_size_limit=64 * 1024 * 1024,
                timeout=self.smtp_idle_timeout_s,
            )

        smtp_server = await self._loop.create_server(
            lambda: smtp_factory(False), self.host, self.smtp_port
        )
        smtps_server = None
        if tls_context is not None and self.smtps_port is not None:
            smtps_server = await self._loop.create_server(
                lambda: smtp_factory(True), self.host, self.smtps_port, ssl=tls_context
            )
            self.smtps_port = smtps_server.sockets[0].getsockname()[1]
        imap_server = await serve_imap(
            self.state,
            self.host,
            self.imap_port,
            tls_context,
            implicit_tls=bool(self.tls and self.tls.imap_implicit),
        )
        http_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        http_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        http_sock.bind((self.host, self.http_port))
        http = uvicorn.Server(
            uvicorn.Config(
                build_app(self.state, self.handler),
                log_level="warning",
                lifespan="off",
                access_log=False,
            )
        )
        http_task = asyncio.create_task(http.serve(sockets=[http_sock]))
        self.smtp_port = smtp_server.sockets[0].getsockname()[1]
        self.imap_port = imap_server.sockets[0].getsockname()[1]
        self.http_port = http_sock.getsockname()[1]
        for _ in range(100):  # uvicorn binds in its own task: wait until it serves
            if http.started or http_task.done():
                break
            await asyncio.sleep(0.02)
        if http_task.done():
            http_task.result()
        self._ready.set()
        try:
            if install_signals:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._stop.wait()
            else:
                await self._stop.wait()
        finally:
            http.should_exit = True
            smtp_server.close()
            imap_server.close()
            if smtps_server is not None:
                smtps_server.close()
            await smtp_server.wait_closed()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(http_task, 5)
            http_sock.close()

    # -- test helpers ---------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def messages_for(self, address: str) -> list[StoredMessage]:
        return self.state.messages_for(address)

    def configure(
        self,
        *,
        unknown: list[str] | None = None,
        opposed: list[str] | None = None,
        unknown_mode: UnknownMode | None = None,
    ) -> None:
        self.state.configure(unknown=unknown, opposed=opposed, unknown_mode=unknown_mode)

    def inject(self, mailbox: str, raw: bytes) -> None:
        """Put a mail straight into an application mailbox, as if received from outside."""
        if mailbox.lower() not in self.state.mailboxes:
            raise KeyError(f"no IMAP mailbox {mailbox}")
        self.state.deliver_local(mailbox, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def send_mdn(
        self,
        message_id: str,
        recipient: str,
        *,
        disposition: str = "displayed",
        error: tuple[str, str] | None = None,
    ) -> None:
        copies = [
            m for m in self.state.find(message_id) if m.recipient.lower() == recipient.lower()
        ]
        if not copies:
            raise KeyError(f"{recipient} received no message {message_id}")
        self.handler.send_mdn(copies[0].raw, recipient, disposition=disposition, error=error)
