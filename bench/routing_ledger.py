"""Routing stage work per document: decision vs decision + ledger writes, on SQLite (and
PostgreSQL when reachable at 127.0.0.1:5432).

Phases, each bounded in count and time, in one process, on the same documents:
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
from tests.support.routing_documents import add_patient, event, lab_meta, store_version  # noqa: E402

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

    def route_batch(size: int, pid: int) -> Callable[[int], int]:
        def work(_: int) -> int:
            with db.transaction() as s:
                for _ in range(size):
                    n = next(counter)
                    version = store_version(
                        s, patient_id=pid, set_id=f"B-{n}", meta=meta, emit=False
                    )
                    document = s.get(Document, version.document_id)
                    assert document is not None
                    router.route_version(s, DocumentEvent.from_record(event(document, version)))
            return size

        return work

    timed("route_version, 1 document per transaction", route_batch(1, patient_id), baseline)
    timed("route_version, 50 documents per transaction", route_batch(50, patient_id), baseline)
    timed("route_version, identity-held (2 holds each)", route_batch(1, held_id), baseline)

    def release(_: int) -> int:
        with db.transaction() as s:
            pid = add_patient(s).id
        route_batch(20, pid)(0)
        with db.transaction() as s:
            p = s.get(Patient, pid)
            assert p is not None
            p.ins, p.qualified = INS, True
            router.release_for_patient(s, p)
        return 20

    timed("held documents released by one ADT (20 each)", release, baseline)
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
