"""MLLP listener: one per source, many connections, pipelined messages, bounded waits.

Each connection has a reader (frames in, handed to the intake) and a writer (ACKs out,
in the order the messages came). The reader never waits for storage, so a sender that
pipelines gets its messages stored in the same batch. A connection is closed when it
stays idle past the idle time-out, when a started frame does not complete within the
read time-out, or when the peer goes away; other connections are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from pfi.adapters.mllp.framing import MllpFrameReader, frame
from pfi.config.model import SourceSettings, TlsSettings

log = logging.getLogger(__name__)

#: submit(source, raw, peer=..., truncated=..., size=...) -> future of the ACK bytes
Submit = Callable[..., "asyncio.Future[bytes | None]"]

#: Frames received but not yet answered, per connection, before the reader waits.
MAX_IN_FLIGHT = 256


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.certfile, tls.keyfile)
    if tls.cafile is not None:
        ctx.load_verify_locations(tls.cafile)
    ctx.verify_mode = (
        ssl.CERT_REQUIRED
        if tls.require_client_cert
        else (ssl.CERT_OPTIONAL if tls.cafile else ssl.CERT_NONE)
    )
    return ctx


class MllpListener:
    def __init__(self, name: str, settings: SourceSettings, submit: Submit) -> None:
        self.name = name
        self.settings = settings
        self._submit = submit
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False
        self.connections_total = 0
        self.garbage_bytes_total = 0

    async def start(self) -> None:
        tls = server_ssl_context(self.settings.tls) if self.settings.tls else None
        self._server = await asyncio.start_server(
            self._on_connection,
            self.settings.host,
            self.settings.port,
            ssl=tls,
            limit=1024 * 1024,
            reuse_address=True,
        )
        log.info(
            "MLLP listener %s on %s:%d%s",
            self.name,
            self.settings.host,
            self.settings.port,
            " (TLS)" if tls else "",
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, timeout_s: float) -> None:
        """Stop accepting, answer what was received, then close the connections."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=timeout_s)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections_total += 1
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else None
        in_flight: asyncio.Queue[asyncio.Future[bytes | None] | None] = asyncio.Queue(MAX_IN_FLIGHT)
        ack_writer = asyncio.create_task(self._write_acks(writer, in_flight, peer))
        frames = MllpFrameReader(self.settings.max_message_bytes)
        try:
            await self._read_frames(reader, frames, in_flight, peer)
        except asyncio.CancelledError:
            pass  # engine stopping: answer what we have, then close
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("%s: connection from %s lost: %s", self.name, peer, exc)
        finally:
            self.garbage_bytes_total += frames.garbage_bytes
            with contextlib.suppress(asyncio.QueueFull):
                in_flight.put_nowait(None)
            if in_flight.full():  # the writer makes room as it answers
                await asyncio.shield(in_flight.put(None))
            with contextlib.suppress(Exception):
                await asyncio.shield(ack_writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            self._connections.discard(task)

    async def _read_frames(
        self,
        reader: asyncio.StreamReader,
        frames: MllpFrameReader,
        in_flight: asyncio.Queue[asyncio.Future[bytes | None] | None],
        peer: str | None,
    ) -> None:
        while not self._closing:
            timeout = (
                self.settings.read_timeout_s if frames.in_frame else (self.settings.idle_timeout_s)
            )
            try:
                data = await asyncio.wait_for(reader.read(256 * 1024), timeout)
            except TimeoutError:
                what = "read (incomplete frame)" if frames.in_frame else "idle"
                log.info(
                    "%s: closing connection from %s: %s time-out after %.0fs",
                    self.name,
                    peer,
                    what,
                    timeout,
                )
                return
            if not data:
                return
            for f in frames.feed(data):
                future = self._submit(
                    self.name, f.payload, peer=peer, truncated=f.truncated, size=f.size
                )
                await in_flight.put(future)

    async def _write_acks(
        self,
        writer: asyncio.StreamWriter,
        in_flight: asyncio.Queue[asyncio.Future[bytes | None] | None],
        peer: str | None,
    ) -> None:
        broken = False
        while True:
            future = await in_flight.get()
            if future is None:
                return
            ack = await future
            if ack is None or broken:
                continue
            try:
                writer.write(frame(ack))
                await writer.drain()
            except (ConnectionError, ssl.SSLError) as exc:
                # the message is stored; the sender will resend and get AA (duplicate)
                log.info("%s: could not send ACK to %s: %s", self.name, peer, exc)
                broken = True
