"""Routing stage work per document: decision vs decision + ledger writes, on SQLite (and
PostgreSQL when reachable at 127.0.0.1:5432).

Phases, each bounded in count and time, in one process; the versions (with a 300 KB
CDA, as a CR-BIO with its PDF weighs) are stored beforehand and only routing is timed:
- baseline: `decide` alone (pure), for a qualified patient's CR-BIO with prescriber,
  copy and patient mail (4 destinations);
- `Router.route_version`: what the routing stage does per DOCUMENTS event — reads
  (version, patient FOR UPDATE, earlier deliveries), the decision, the routings row, 4
  deliveries and 4 delivery requests — one document per transaction, as the stage's
  SQLite time budget gives in practice;
- the same with 50 documents per transaction (a PostgreSQL batch);
- `release_for_patient` on a patient with 20 identity-held documents.

Prints documents/s and the ratio to the baseline.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402
import os  # noqa: E402

from pfi.routes import RoutingInput, decide, load_routes  # noqa: E402
from pfi.routes.inputs import PatientFacts  # noqa: E402
from pfi.routes.router import DocumentEvent, Router  # noqa: E402
from pfi.store import Database  # noqa: E402
from pfi.store.migrate import upgrade  # noqa: E402
from pfi.store.models import Document, Patient  # noqa: E402
from tests.support.databases import (  # noqa: E402
    fresh_postgres_database,
    postgres_unavailable_reason,
)
from tests.support.routing_documents import (  # noqa: E402
    add_patient,
    event,
    lab_meta,
    store_version,
)

MAX_DOCUMENTS = 2000
MAX_SECONDS = 8.0
INS = "279035121518989"


def timed(label: str, work: Callable[[int], int], baseline: float | None) -> float:
    started = time.perf_counter()
    done = 0
    while done < MAX_DOCUMENTS and time.perf_counter() - started < MAX_SECONDS:
        done += work(done)
    elapsed = time.perf_counter() - started
    rate = done / elapsed
    ratio = f"  ({baseline / rate:5.1f}x the baseline's time)" if baseline else ""
    print(f"  {label:<48} {rate:9.0f} documents/s  ({done} in {elapsed:.2f}s){ratio}")
    return rate


def run(url: str, label: str) -> None:
    logging.disable(logging.WARNING)  # SQLite long-lock reports would flood the output
    db = Database(url)
    upgrade(db)
    router = Router(load_routes(ROOT / "config" / "routes.yaml"))
    meta = lab_meta()
    facts = PatientFacts(ins_qualified=True, ins=INS)
    routing_input = RoutingInput(
        source="SGL",
        document_kind="CR-BIO",
        patient=facts,
        recipients=meta.routing_recipients,
    )
    with db.transaction() as s:
        patient_id = add_patient(s, ins=INS, qualified=True).id
        held_id = add_patient(s).id
    print(f"{label}:")

    def decide_one(_: int) -> int:
        decide(router.routes, routing_input)
        return 1

    baseline = timed("decide (pure, baseline)", decide_one, None)
    counter = iter(range(10**9))
    cda = bytes(int(os.environ.get("BENCH_CDA_KB", "300")) * 1024)  # CR-BIO with its PDF

    def prepared(pid: int, count: int) -> list[DocumentEvent]:
        """Versions stored beforehand (the documents stage's work, not timed)."""
        events = []
        with db.transaction() as s:
            for _ in range(count):
                n = next(counter)
                version = store_version(s, patient_id=pid, set_id=f"B-{n}", meta=meta, emit=False)
                version.cda = cda
                document = s.get(Document, version.document_id)
                assert document is not None
                events.append(DocumentEvent.from_record(event(document, version)))
        return events

    def route_batch(size: int, pid: int) -> Callable[[int], int]:
        def work(_: int) -> int:
            events = prepared(pid, size)
            started = time.perf_counter()
            with db.transaction() as s:
                for e in events:
                    router.route_version(s, e)
            spent.append(time.perf_counter() - started)
            return size

        return work

    for title, size, pid in (
        ("route_version, 1 document per transaction", 1, patient_id),
        ("route_version, 50 documents per transaction", 50, patient_id),
        ("route_version, identity-held (2 holds each)", 1, held_id),
    ):
        spent: list[float] = []
        done = 0
        deadline = time.perf_counter() + MAX_SECONDS
        while done < MAX_DOCUMENTS // 4 and time.perf_counter() < deadline:
            done += route_batch(size, pid)(done)
        rate = done / sum(spent)
        print(
            f"  {title:<48} {rate:9.0f} documents/s  ({done} in {sum(spent):.2f}s)"
            f"  ({baseline / rate:5.1f}x the baseline's time)"
        )

    spent = []

    def release(_: int) -> int:
        with db.transaction() as s:
            pid = add_patient(s).id
        events = prepared(pid, 20)
        with db.transaction() as s:
            for e in events:
                router.route_version(s, e)
        started = time.perf_counter()
        with db.transaction() as s:
            p = s.get(Patient, pid)
            assert p is not None
            p.ins, p.qualified = INS, True
            router.release_for_patient(s, p)
        spent.append(time.perf_counter() - started)
        return 20

    done = 0
    deadline = time.perf_counter() + MAX_SECONDS
    while done < MAX_DOCUMENTS // 4 and time.perf_counter() < deadline:
        done += release(done)
    rate = done / sum(spent)
    print(
        f"  {'held documents released by one ADT (20 each)':<48} {rate:9.0f} documents/s  "
        f"({done} in {sum(spent):.2f}s)  ({baseline / rate:5.1f}x the baseline's time)"
    )
    db.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite")
    reason = postgres_unavailable_reason()
    if reason:
        print(f"PostgreSQL skipped: {reason}")
        return
    with fresh_postgres_database() as url:
        run(url, "PostgreSQL")


if __name__ == "__main__":
    main()
