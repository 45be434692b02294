"""MLLP framing: an incremental decoder that survives garbage, truncation and 10 MB frames.

Bytes outside a frame are skipped (and counted), a frame larger than the limit is cut
to its first bytes (enough to read the MSH and answer) and the rest discarded up to its
end marker, so one bad sender can neither exhaust memory nor desynchronise the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c\x0d"
#: How much of an oversize frame is kept: enough to read MSH and answer the sender.
KEEP_OF_OVERSIZE = 64 * 1024


def frame(payload: bytes) -> bytes:
    return START + payload + END


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes
    truncated: bool = False
    size: int = 0  # the frame's real size (payload may be cut when truncated)


class MllpFrameReader:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._in_frame = False
        self._scan_from = 0
        self._truncated = False
        self._size = 0
        self.garbage_bytes = 0

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (the read time-out applies)."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        self._buf += data
        while True:
            if not self._in_frame:
                start = self._buf.find(START)
                if start < 0:
                    self.garbage_bytes += len(self._buf)
                    self._buf.clear()
                    return frames
                self.garbage_bytes += start
                del self._buf[: start + 1]
                self._in_frame = True
                self._scan_from = 0
                self._truncated = False
                self._size = 0
            end = self._buf.find(END, self._scan_from)
            if end < 0:
                if self._truncated:
                    # keep only a possible partial end marker after the kept prefix
                    self._size += len(self._buf) - KEEP_OF_OVERSIZE - 1
                    del self._buf[KEEP_OF_OVERSIZE:-1]
                    self._scan_from = KEEP_OF_OVERSIZE
                elif len(self._buf) > self.max_bytes:
                    self._truncated = True
                    self._size = len(self._buf) - KEEP_OF_OVERSIZE - 1
                    del self._buf[KEEP_OF_OVERSIZE:-1]
                    self._scan_from = KEEP_OF_OVERSIZE
                else:
                    self._scan_from = max(0, len(self._buf) - 1)
                return frames
            payload = bytes(self._buf[: min(end, KEEP_OF_OVERSIZE) if self._truncated else end])
            size = self._size + end if self._truncated else end
            # a START inside a frame means the previous frame never ended: resync on it
            restart = payload.rfind(START)
            if restart >= 0 and not self._truncated:
                self.garbage_bytes += restart + 1
                payload = payload[restart + 1 :]
                size = len(payload)
            frames.append(Frame(payload, self._truncated, size))
            del self._buf[: end + len(END)]
            self._in_frame = False
