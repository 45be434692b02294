"""A DPI on loopback for the inbound MSSanté tests: a real MLLP listener that records
what it receives and answers AA, or AE with a text, as the test says."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType

from pfi.adapters.mllp.framing import MllpFrameReader, frame
from pfi.transforms.hl7.message import parse_message


class FakeDpi:
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.answer = "AA"
        self.error_text = ""
        self.close_after_each = False  # some DPIs take one message per connection
        self.connections = 0
        self._lock = threading.Lock()
        dpi = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with dpi._lock:
                    dpi.connections += 1
                reader = MllpFrameReader(64 * 1024 * 1024)
                self.request.settimeout(10)
                for _ in range(10_000):  # bounded: a test connection sends a few messages
                    try:
                        data = self.request.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    for f in reader.feed(data):
                        self.request.sendall(frame(dpi._ack(f.payload)))
                        if dpi.close_after_each:
                            return

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _ack(self, payload: bytes) -> bytes:
        with self._lock:
            self.received.append(payload)
            code, text = self.answer, self.error_text
        control_id = parse_message(payload, "UNICODE UTF-8", strict=False).header.control_id
        segments = [
            f"MSH|^~\\&|DPI||PFI||20261125100000||ACK^T02^ACK|ACK{control_id}|P|2.6",
            f"MSA|{code}|{control_id}",
        ]
        if code != "AA":
            segments.append(f"ERR|||204^Unknown key identifier^HL70357|E||||{text}")
        return ("\r".join(segments) + "\r").encode()

    def start(self) -> FakeDpi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeDpi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
