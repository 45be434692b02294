"""MLLP framing survives garbage, split reads, pipelining and oversize frames (fuzzed)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pfi.adapters.mllp.framing import KEEP_OF_OVERSIZE, MllpFrameReader, frame

payloads = st.binary(min_size=1, max_size=2000).map(
    lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"") or b"x"
)


def feed_in_chunks(reader: MllpFrameReader, data: bytes, cuts: list[int]) -> list[bytes]:
    out = []
    positions = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(positions):
        out += [f.payload for f in reader.feed(data[a:b])]
    return out


@given(st.lists(payloads, min_size=1, max_size=8), st.lists(st.integers(0, 10**6), max_size=20))
@settings(max_examples=200, deadline=None)
def test_pipelined_frames_come_out_whole_however_the_bytes_are_split(messages, cuts) -> None:
    stream = b"".join(frame(m) for m in messages)
    assert feed_in_chunks(MllpFrameReader(1 << 20), stream, cuts) == messages


@given(st.lists(st.tuples(st.binary(max_size=50), payloads), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_garbage_between_frames_is_skipped(pairs) -> None:
    clean = [(g.replace(b"\x0b", b""), m) for g, m in pairs]
    stream = b"".join(g + frame(m) for g, m in clean)
    reader = MllpFrameReader(1 << 20)
    assert [f.payload for f in reader.feed(stream)] == [m for _, m in clean]


def test_a_frame_that_never_ends_is_dropped_at_the_next_start() -> None:
    reader = MllpFrameReader(1 << 20)
    frames = reader.feed(b"\x0bMSH|truncated..." + frame(b"MSH|good"))
    assert [f.payload for f in frames] == [b"MSH|good"]


def test_oversize_frame_is_cut_but_the_stream_stays_in_sync() -> None:
    reader = MllpFrameReader(100_000)
    big = b"MSH|^~\\&|" + b"A" * 300_000
    frames = []
    data = frame(big) + frame(b"MSH|next")
    for i in range(0, len(data), 7000):
        frames += reader.feed(data[i : i + 7000])
    assert len(frames) == 2
    assert frames[0].truncated and frames[0].size == len(big)
    assert frames[0].payload == big[:KEEP_OF_OVERSIZE]
    assert frames[1].payload == b"MSH|next" and not frames[1].truncated


def test_ten_megabyte_frame_passes_within_the_limit() -> None:
    reader = MllpFrameReader(16 * 1024 * 1024)
    big = b"MSH|" + b"B" * (10 * 1024 * 1024)
    data = frame(big)
    frames = []
    for i in range(0, len(data), 256 * 1024):
        frames += reader.feed(data[i : i + 256 * 1024])
    assert [f.payload for f in frames] == [big]


@given(st.binary(max_size=5000))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    reader = MllpFrameReader(1000)
    reader.feed(data)
    reader.feed(data[::-1])
