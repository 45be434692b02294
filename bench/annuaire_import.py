"""Lines/s of `pfi annuaire import` on a generated extract (default 200,000 lines).

Baseline: parsing the same file alone (`iter_annuaire`, no store), measured in the same
run; the ratio says what the store adds. Then a second import of the same file, which
also switches generations and deletes the first one's rows.

    .venv/bin/python bench/annuaire_import.py [--lines N] [--postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.annuaire.importer import import_annuaire  # noqa: E402
from pfi.store import Database  # noqa: E402
from pfi.store.migrate import upgrade  # noqa: E402
from pfi.transforms.mssante.annuaire import iter_annuaire  # noqa: E402
from tests.support.annuaire import write_extract  # noqa: E402
from tests.support.databases import fresh_postgres_database, sqlite_url  # noqa: E402

MAX_LINES = 2_000_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    count = min(args.lines, MAX_LINES)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        path = write_extract(Path(tmp) / "extract.txt", count)
        url = (
            stack.enter_context(fresh_postgres_database())
            if args.postgres
            else sqlite_url(Path(tmp))
        )
        db = Database(url)
        upgrade(db)
        t0 = time.perf_counter()
        with path.open(encoding="utf-8") as f:
            parsed = sum(1 for _ in iter_annuaire(f))
        parse_s = time.perf_counter() - t0
        timings = []
        for _ in range(2):
            t0 = time.perf_counter()
            with path.open(encoding="utf-8") as f:
                report = import_annuaire(db, f, source=str(path))
            timings.append(time.perf_counter() - t0)
        db.dispose()
    backend = "postgresql" if args.postgres else "sqlite"
    print(
        f"{count} lines ({parsed} rows), {report.professionals} professionals, "
        f"{report.mailboxes} mailboxes, {backend}"
    )
    print(f"parse only       {parse_s:6.2f}s  {count / parse_s:9.0f} lines/s (baseline)")
    for label, seconds in zip(("first import", "re-import"), timings, strict=True):
        print(
            f"{label:<16} {seconds:6.2f}s  {count / seconds:9.0f} lines/s  "
            f"x{seconds / parse_s:.1f} the parse"
        )


if __name__ == "__main__":
    main()
