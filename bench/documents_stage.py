"""Does document validation hold the other stages up? The documents stage with its
validator in worker processes (`validation_processes: 1`, the default) against the same
validator in the stage's own thread (`0`), in the same run.

Each round (and a baseline without documents): a real in-process engine (SQLite,
embedded broker), validator warmed up with one document; then a burst of lab ORU
(CR-BIO built + XSD + schematron) and, right behind it, ADT messages for new patients.
Printed: how long the identity stage took to apply the ADTs (what other stages feel) and
the documents stage to finish the burst.
Bounded in count and time.

Run: .venv/bin/python bench/documents_stage.py [--documents N] [--adts M]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from pfi.store.models import ProcessedEvent  # noqa: E402
from tests.support.databases import sqlite_url  # noqa: E402
from tests.support.documents import (  # noqa: E402
    db_of,
    documents_engine_settings,
    oru,
    send,
    wait_for_documents_stage,
)
from tests.support.hl7 import adt_a01, encode  # noqa: E402
from tests.support.inprocess import RunningEngine  # noqa: E402

NAMES = ["01_numeric_biochemistry", "02_hematology_blood_count", "07_embedded_lab_pdf",
         "12_latin1_names", "14_minimal", "16_comments", "17_copy_recipients"]  # fmt: skip
TIMEOUT_S = 600.0


def applied(engine: RunningEngine, consumer: str) -> int:
    with db_of(engine).reader() as s:
        return int(s.scalar(select(func.count()).where(ProcessedEvent.consumer == consumer)) or 0)


def round_trip(processes: int, documents: int, adts: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="pfi-bench-docs-") as tmp:
        settings = documents_engine_settings(Path(tmp), sqlite_url(Path(tmp)))
        settings.documents.validation_processes = processes
        with RunningEngine(settings) as engine:
            send(engine, "SGL", oru("14_minimal", "WARM"))  # compile + warm the validator
            wait_for_documents_stage(engine, timeout_s=TIMEOUT_S)
            identity_before = applied(engine, "identity")
            # every document a new request, so that each one is built and validated
            burst = [
                oru(NAMES[i % len(NAMES)], f"D{i}").replace(b"F10", f"R{i:03d}".encode())
                for i in range(documents)
            ]
            started = time.monotonic()
            send(engine, "SGL", *burst)
            send(
                engine,
                "DPI",
                *(encode(adt_a01(f"A{i}", f"IPP-B{i}", family=f"BENCH{i}")) for i in range(adts)),
            )
            deadline = started + TIMEOUT_S
            identity_s = documents_s = None
            while time.monotonic() < deadline and (identity_s is None or documents_s is None):
                now = time.monotonic() - started
                # identity reads every inbound record (the ORU too, which it skips)
                target = identity_before + documents + adts
                if identity_s is None and applied(engine, "identity") >= target:
                    identity_s = now
                if documents_s is None and applied(engine, "documents") >= documents + adts + 1:
                    documents_s = now
                time.sleep(0.05)
            assert identity_s is not None and documents_s is not None, "round timed out"
            return identity_s, documents_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--adts", type=int, default=20)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rounds = (
        (1, 0, "baseline: no documents"),
        (1, args.documents, "validator in a worker process"),
        (0, args.documents, "validator in the stage"),
    )
    for processes, documents, label in rounds:
        identity_s, documents_s = round_trip(processes, documents, args.adts)
        print(
            f"{label:30s} {args.adts} ADT applied by identity in {identity_s:6.2f} s | "
            f"{documents} CR-BIO built + validated in {documents_s:6.2f} s"
        )


if __name__ == "__main__":
    main()
