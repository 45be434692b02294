"""Requests/s of the authenticated ops API against a whole in-process engine, over loopback.

Phases, each bounded by MAX_REQUESTS and MAX_SECONDS, one keep-alive client per thread:
- baseline: GET /healthz (open; no database);
- refused: GET /api/messages with a well-formed token whose secret is wrong (the cost
  an unauthenticated caller can impose: one indexed read, no write);
- patient read: GET /api/patients/{ipp} as a viewer (token check, patient read with
  identifiers and history, audit entry committed before the answer);
- message search: GET /api/messages?limit=50 (50 rows, audited with their ids).
Ratios are against the baseline measured in the same run. Also counted: UPDATEs of
api_tokens (last-used bookkeeping), which must stay at one per token per minute.

    .venv/bin/python bench/api_auth.py [--postgres]   (server: PFI_TEST_POSTGRES or
    postgresql+psycopg://postgres@127.0.0.1:5432/test, as the tests use)
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import event, func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.adapters.mllp import MllpClient  # noqa: E402
from pfi.console import accounts  # noqa: E402
from pfi.console.roles import Role  # noqa: E402
from pfi.store.models import Patient  # noqa: E402
from tests.support.databases import fresh_postgres_database, sqlite_url  # noqa: E402
from tests.support.hl7 import adt_a01, encode  # noqa: E402
from tests.support.inprocess import RunningEngine, engine_settings  # noqa: E402

MAX_REQUESTS = 2000
MAX_SECONDS = 10.0
THREADS = (1, 4)
POSTGRES = "--postgres" in sys.argv


def run_phase(base: str, path: str, headers: dict[str, str], expect: int, threads: int) -> float:
    """Requests/s with `threads` clients sharing the request budget and the time limit."""
    per_thread = MAX_REQUESTS // threads
    done = [0] * threads
    deadline = time.monotonic() + MAX_SECONDS

    def worker(i: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            client.get(path)  # connect outside the measurement
            for _ in range(per_thread):
                if time.monotonic() > deadline:
                    break
                response = client.get(path)
                assert response.status_code == expect, (path, response.status_code)
                done[i] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(MAX_SECONDS + 30)
    return sum(done) / (time.perf_counter() - start)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pfi-bench-api-"))
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database()) if POSTGRES else sqlite_url(tmp)
        running = stack.enter_context(RunningEngine(engine_settings(tmp, url)))
        assert running.engine is not None
        db = running.engine.db
        with MllpClient("127.0.0.1", running.port("DPI")) as client:
            for i in range(60):
                client.send(encode(adt_a01(f"B{i}", f"IPP-B{i % 3}", trigger="A08")))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.reader() as s:
                if s.scalar(select(func.count()).select_from(Patient)) == 3:
                    break
            time.sleep(0.1)
        with db.transaction() as s:
            token = accounts.add_user(s, "bench", Role.viewer).token
        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        touches = [0]

        def count(conn, cursor, statement, *args: object) -> None:
            touches[0] += statement.lstrip().upper().startswith("UPDATE API_TOKENS")

        event.listen(db.engine, "before_cursor_execute", count)
        base = f"http://127.0.0.1:{running.settings.http.port}"
        bearer = {"Authorization": f"Bearer {token}"}
        phases: list[tuple[str, Callable[[int], float]]] = [
            ("healthz (baseline)", lambda t: run_phase(base, "/healthz", {}, 200, t)),
            (
                "refused (wrong secret)",
                lambda t: run_phase(
                    base, "/api/messages", {"Authorization": f"Bearer {wrong}"}, 401, t
                ),
            ),
            (
                "patient read (audited)",
                lambda t: run_phase(base, "/api/patients/IPP-B1", bearer, 200, t),
            ),
            (
                "message search 50 (audited)",
                lambda t: run_phase(base, "/api/messages?limit=50", bearer, 200, t),
            ),
        ]
        backend = "PostgreSQL" if POSTGRES else "SQLite"
        print(f"ops API on {backend}, in-process engine, loopback, keep-alive clients")
        for threads in THREADS:
            baseline = None
            for name, phase in phases:
                rate = phase(threads)
                baseline = baseline or rate
                print(
                    f"  {threads} client(s)  {name:<28} {rate:8.0f} req/s"
                    f"   ratio to baseline {rate / baseline:5.2f}"
                )
        print(f"  api_tokens last-used UPDATEs during the run: {touches[0]}")


if __name__ == "__main__":
    main()
