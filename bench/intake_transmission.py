"""What the transmission-volet check costs at intake: ACK latency with and without it.

The CI-SIS transmission messages (ORU/MDM, MSH-21 2.1^CISIS_CDA_HL7_V2) are decoded and
checked in intake's writer thread before the batch is stored (`check_transmission`), so
that a CDA PFI will not send is answered AE in the ACK. Baseline in the same run: the same
~290 KB message with the profile removed from MSH-21 (stored and ACKed, not checked).

Measured through `IntakeService` on a real SQLite database (synchronous=FULL, one fsync
per batch), without the MLLP socket: one message at a time (latency), then bursts of
`--window` messages in flight (the writer batches them). Bounded in count and time.

Run: .venv/bin/python bench/intake_transmission.py [--messages N] [--window W]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.config.model import SourceSettings  # noqa: E402
from pfi.intake.policy import assess, check_transmission  # noqa: E402
from pfi.intake.service import IntakeService  # noqa: E402
from pfi.store import Database  # noqa: E402
from pfi.store.migrate import upgrade  # noqa: E402
from tests.support.documents import ORU_INIT, with_control_id  # noqa: E402

SOURCE = SourceSettings(port=2575, allowed_message_types=["ORU^R01", "MDM", "ADT"])
MAX_SECONDS = 30.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(db: Database, raw: bytes, label: str, messages: int, window: int) -> None:
    service = IntakeService(db, {"DPI": SOURCE})
    service.start()
    single: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS
    for i in range(messages):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        ack = await service.submit("DPI", with_control_id(raw, f"{label}-s{i}"))
        single.append(time.perf_counter() - started)
        assert ack is not None and b"MSA|AA|" in ack, ack[:200]
    burst: list[float] = []
    bursts = 0
    deadline = time.monotonic() + MAX_SECONDS
    while bursts * window < messages and time.monotonic() < deadline:
        started = time.perf_counter()
        futures = [
            service.submit("DPI", with_control_id(raw, f"{label}-b{bursts}-{j}"))
            for j in range(window)
        ]
        for future in asyncio.as_completed(futures):
            await future
            burst.append(time.perf_counter() - started)
        bursts += 1
    await service.drain(5.0)
    print(
        f"{label:28s} one at a time: p50 {statistics.median(single) * 1000:6.1f} ms "
        f"p95 {percentile(single, 0.95) * 1000:6.1f} ms ({len(single)}) | "
        f"{window} in flight: p50 {statistics.median(burst) * 1000:6.1f} ms "
        f"p95 {percentile(burst, 0.95) * 1000:6.1f} ms ({len(burst)})"
    )


def check_cost(raw: bytes, rounds: int = 200) -> float:
    assessment = assess(raw, SOURCE, truncated=False, size=len(raw))
    started = time.process_time()
    for _ in range(rounds):
        result = check_transmission(assessment, raw)
    assert result.status == "accepted"
    return (time.process_time() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()
    raw = ORU_INIT.read_bytes()
    plain = raw.replace(b"2.1^CISIS_CDA_HL7_V2", b"", 1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"message {len(raw) // 1024} KiB; check_transmission alone: "
        f"{check_cost(raw) * 1000:.2f} ms CPU per message"
    )
    with tempfile.TemporaryDirectory(prefix="pfi-bench-intake-") as tmp:
        db = Database(f"sqlite:///{tmp}/pfi.db")
        upgrade(db)
        cases = (("plain ORU (no check)", plain), ("transmission ORU (checked)", raw))
        for label, message in cases:
            asyncio.run(run(db, message, label, args.messages, args.window))
        db.dispose()


if __name__ == "__main__":
    main()
