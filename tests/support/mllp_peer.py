"""A hospital MLLP listener for tests of what PFI sends: it records every message and
answers as the test says (AA, AE with a text, or nothing at all), on loopback."""

from __future__ import annotations

import socket
import socketserver
import threading
from dataclasses import dataclass, field

from pfi.adapters.mllp.framing import MllpFrameReader, frame


def control_id(message: bytes) -> str:
    msh = message.split(b"\r", 1)[0].decode("latin-1")
    return msh.split("|")[9] if msh.count("|") >= 9 else ""


@dataclass
class MllpPeer:
    """`answers`: what to answer, in turn ("AA", "AE:<text>", "AR:<text>", "hang");
    the last one repeats."""

    answers: list[str] = field(default_factory=lambda: ["AA"])
    received: list[bytes] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def answer_next(self, *answers: str) -> None:
        with self._lock:
            self.answers = list(answers)

    def _answer(self, message: bytes) -> bytes | None:
        with self._lock:
            self.received.append(message)
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "hang":
            return None
        code, _, text = answer.partition(":")
        msa = f"MSA|{code}|{control_id(message)}" + (f"|{text}" if text else "")
        return f"MSH|^~\\&|PEER|HOSP|PFI||20240308103000||ACK|A1|P|2.5\r{msa}\r".encode()

    def __enter__(self) -> MllpPeer:
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                reader = MllpFrameReader(10 * 1024 * 1024)
                sock: socket.socket = self.request
                sock.settimeout(10)
                while True:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    for f in reader.feed(data):
                        reply = peer._answer(f.payload)
                        if reply is not None:
                            sock.sendall(frame(reply))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
