"""An MLLP client: sends messages and reads their ACKs (for `pfi send`, outbound feeds
to the DPI, and tests). One connection, reused; messages may be pipelined."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable

from pfi.adapters.mllp.framing import MllpFrameReader, frame


class MllpError(ConnectionError):
    pass


class MllpClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        max_ack_bytes: int = 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None
        self._reader = MllpFrameReader(max_ack_bytes)
        self._ready: list[bytes] = []

    def __enter__(self) -> MllpClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except OSError as exc:
            raise MllpError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, message: bytes) -> bytes:
        """Send one message and wait for its acknowledgement."""
        self.send_only(message)
        return self.receive()

    def send_many(self, messages: Iterable[bytes]) -> list[bytes]:
        """Pipeline: write all messages, then read one ACK per message, in order."""
        count = 0
        for message in messages:
            self.send_only(message)
            count += 1
        return [self.receive() for _ in range(count)]

    def send_only(self, message: bytes) -> None:
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(frame(message))
        except OSError as exc:
            raise MllpError(f"send to {self.host}:{self.port} failed: {exc}") from exc

    def receive(self) -> bytes:
        """The next frame from the server (an ACK)."""
        assert self._sock is not None
        while not self._ready:
            try:
                data = self._sock.recv(65536)
            except TimeoutError as exc:
                raise MllpError(
                    f"no ACK from {self.host}:{self.port} within {self.timeout_s:.0f}s"
                ) from exc
            except OSError as exc:
                raise MllpError(f"receive from {self.host}:{self.port} failed: {exc}") from exc
            if not data:
                raise MllpError(f"{self.host}:{self.port} closed the connection")
            self._ready.extend(f.payload for f in self._reader.feed(data))
        return self._ready.pop(0)
