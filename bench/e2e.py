"""End to end: lab ORU over MLLP → CR-BIO accepted by the DMP simulator, at a steady rate.

What it measures (issue 6): the engine runs as a subprocess (`pfi run`, embedded broker,
SQLite), the DMP simulator in this process on loopback with every check on (VIHF and
XAdES signatures, XSD of the CDA, hashes...). K patients are qualified by an ADT (PID-32
VALI); then plain lab ORUs (each its own order, so its own CR-BIO) are offered over MLLP
at `--rate` per second for `--duration` seconds (`--rate 0`: all at once, to find the
ceiling). Per document, the end-to-end latency is from the moment its ORU was written to
the socket to the simulator's `received_at` of the registered entry (matched by the order
number inside the CDA); the bench prints p50/p95/p99, the offered and achieved rates and
the engine's own `pfi_end_to_end_duration_seconds` (intake → acceptance) mean.

Baseline, same process, same documents: the CDAs the simulator received are submitted
again (simulator reset) straight from one DmpClient, one after the other, then from
`delivery.concurrency` threads; the ratio end-to-end / direct shows what the pipeline
(intake, identity, documents, routing, delivery and their ledgers) costs on top of the DMP
call. Document checks: `--schematron off` (default: XSD only, ~1-2 ms a CR-BIO) or
`required` (XSD + CI-SIS schematrons in one validation process, 140-500 ms a CR-BIO and a
one-time compile; see docs/documents.md). The mode is printed.

Bounded: at most rate × duration documents (≤ 2000), at most `--max-wait` seconds of
waiting for them after the last send. Default run (5/s × 20 s, XSD only) < 1 minute.

Figures and what limits them: docs/delivery.md, "Performance". 2-core machine, XSD only,
2026-11-25: 5/s steady gives p50 0.14 s, p95 0.17 s, p99 0.25 s; the ceiling (`--rate 0
--count 200`) is ~13 documents/s with engine, broker and simulator sharing the two cores.
The worker process is the limit: one interpreter at one full core, ~65 ms of Python per
document over its stages, relay and Kafka clients, against 10 ms per document, all
included, for 200/s on 2 cores; the DMP round trip alone is ~15 ms of CPU (building and
signing the request ~6.5 ms, the simulator's checks ~8 ms). The 200 reports/s target is
out of reach on 2 cores by an order of magnitude (by three with the schematrons,
140-500 ms a CR-BIO).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.adapters.dmp import DmpClient  # noqa: E402
from pfi.adapters.mllp import MllpClient  # noqa: E402
from pfi.simulators.dmp import DmpSimulatorServer, SimulatorOptions  # noqa: E402
from pfi.simulators.dmp.registry import StoredEntry  # noqa: E402
from pfi.simulators.dmp.server import load_certificates  # noqa: E402
from tests.support.dmp_fixtures import dmp_settings  # noqa: E402
from tests.support.dmp_pki import make_pki  # noqa: E402
from tests.support.engine import EngineProcess  # noqa: E402
from tests.support.hl7 import adt_a01, encode  # noqa: E402

MAX_DOCUMENTS = 2000
WARM_UP = 9000  # ORU numbers of the warm-up documents (not measured)
ORU = (ROOT / "tests/fixtures/hl7/oru/01_numeric_biochemistry.hl7").read_bytes()
FIXTURE_INS = b"279035121518989"
#: the ORU's order numbers as the CDA carries them (not inside the Base64 of the PDF)
ORDER = re.compile(rb"(?<![A-Za-z0-9+/])(?:CMD|F)(5\d{4})(?![A-Za-z0-9+/])")
ROUTES = """
routes:
  - name: lab to the DMP
    from: {source: SGL, document: CR-BIO}
    to: [dmp]
"""


def ins(n: int) -> str:
    nir = 2790351215000 + n
    return f"{nir}{97 - nir % 97:02d}"


def oru(n: int, patient: int) -> bytes:
    return (
        ORU.replace(b"|M01|", f"|B{n:05d}|".encode())
        .replace(b"CMD1001", f"CMD{50000 + n}".encode())
        .replace(b"F1001", f"F{50000 + n}".encode())
        .replace(b"IPP101", f"IPPB{patient}".encode())
        .replace(FIXTURE_INS, ins(patient).encode())
    )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a measured latency)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def cdas_of(entries: list[StoredEntry]) -> dict[int, StoredEntry]:
    """Registered CR-BIO by ORU number (order CMD<50000+n> in the CDA); signatures skipped."""
    out: dict[int, StoredEntry] = {}
    for stored in entries:
        if not stored.set_id:  # the XAdES signature of a submission set (no CDA setId)
            continue
        match = ORDER.search(stored.content)
        if match:
            out[int(match.group(1)) - 50000] = stored
    return out


def measured(sim: DmpSimulatorServer) -> dict[int, StoredEntry]:
    return {n: e for n, e in cdas_of(list(sim.registry._entries.values())).items() if n < WARM_UP}


def engine_mean_s(url: str) -> tuple[float, int]:
    """Mean and count of the engine's pfi_end_to_end_duration_seconds{destination=dmp}."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("pfi_end_to_end_duration_seconds_sum") and 'dmp"' in line:
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("pfi_end_to_end_duration_seconds_count") and 'dmp"' in line:
            count = float(line.rsplit(" ", 1)[1])
    return (total / count if count else float("nan")), int(count)


def offer(port: int, messages: list[bytes], rate: float) -> tuple[list[float], list[bytes]]:
    """Write each ORU at its scheduled time (t0 + i/rate) on one MLLP connection while a
    thread reads the ACKs: a slow ACK never delays the next send. Wall-clock send times."""
    sent: list[float] = [0.0] * len(messages)
    acks: list[bytes] = []
    with MllpClient("127.0.0.1", port, timeout_s=120) as client:
        client.connect()
        reader = threading.Thread(
            target=lambda: acks.extend(client.receive() for _ in messages), daemon=True
        )
        reader.start()
        t0 = time.monotonic()
        for i, message in enumerate(messages):
            if rate > 0:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent[i] = time.time()
            client.send_only(message)
        reader.join(180)
    return sent, acks


def direct(settings: object, cdas: list[bytes], threads: int) -> tuple[int, float]:
    """(accepted, seconds) for the CDAs submitted straight from one DmpClient."""
    with DmpClient(settings) as dmp:  # type: ignore[arg-type]
        start = time.perf_counter()
        if threads == 1:
            outcomes = [dmp.submit(cda) for cda in cdas]
            refused = [o.reason for o in outcomes if not o.accepted]
            assert not refused, f"{len(refused)} refused; first: {refused[0]}"
            accepted = len(outcomes)
        else:
            with ThreadPoolExecutor(threads) as pool:
                accepted = sum(o.accepted for o in pool.map(dmp.submit, cdas))
        return accepted, time.perf_counter() - start


def empty_database(url: str) -> None:
    """A PostgreSQL store starts empty, as the SQLite file does (the ORUs reuse numbers)."""
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5.0, help="ORUs/s offered; 0: all at once")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of offered load")
    parser.add_argument("--count", type=int, default=0, help="ORUs (overrides rate × duration)")
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--schematron", choices=("off", "required"), default="off")
    parser.add_argument(
        "--document-processes",
        type=int,
        default=1,
        help="documents.validation_processes (1, the default: CDA build and checks off the "
        "workers' interpreter; 0: in the documents stage's thread)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="delivery.concurrency")
    parser.add_argument("--max-batch", type=int, default=50, help="delivery.max_batch")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds after the last send")
    parser.add_argument(
        "--database-url",
        default=None,
        help="the engine's store, EMPTIED first (default: SQLite in the tmp dir)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--log-level", default="WARNING", help="the engine's (log in the tmp dir)")
    args = parser.parse_args()
    count = args.count or round(args.rate * args.duration) or 60
    count = min(count, MAX_DOCUMENTS)

    if args.database_url:
        empty_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="pfi-bench-e2e-"))
    pki = make_pki(tmp / "pki")
    options = SimulatorOptions(trusted_signers=load_certificates([pki.signing_cert]))
    sim = DmpSimulatorServer("127.0.0.1", 0, options=options).start()
    routes = tmp / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    documents: dict[str, object] = {
        "loinc_dir": str(ROOT / "config/loinc"),
        "schematron": args.schematron,
        "validation_processes": args.document_processes,
    }
    engine = EngineProcess(
        tmp / "engine",
        config={
            "routing": {"routes_file": str(routes)},
            "documents": documents,
            "delivery": {"concurrency": args.concurrency, "max_batch": args.max_batch},
            "dmp": {
                "url": sim.url,
                "signing_certfile": str(pki.signing_cert),
                "signing_keyfile": str(pki.signing_key),
                "identity": {
                    "structure_id": "10B0123456",
                    "structure_name": "CH de bench",
                    "subject_name_id": "PFI-AUTOMATE/bench",
                    "source_id": "1.2.250.1.999.1.1",
                },
            },
            "logging": {"level": args.log_level},
        }
        | ({"database": {"url": args.database_url}} if args.database_url else {}),
    )
    try:
        engine.start(wait_ready_s=300 if args.schematron == "required" else 90)
        with MllpClient("127.0.0.1", engine.ports["SGL"], timeout_s=30) as client:
            client.send_many(
                [
                    encode(adt_a01(f"BADT{p}", f"IPPB{p}", ins=ins(p), status="VALI"))
                    for p in range(args.patients)
                ]
            )
        # warm-up, one ORU per patient, not measured: the worker process is ready (it
        # starts seconds after the front door), the identities applied, connections open
        warm = {WARM_UP + p: oru(WARM_UP + p, p) for p in range(args.patients)}
        offer(engine.ports["SGL"], list(warm.values()), 0)
        deadline = time.monotonic() + args.max_wait
        while not set(warm) <= set(cdas_of(list(sim.registry._entries.values()))):
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm-up documents not in the DMP in {args.max_wait}s")
            time.sleep(0.1)
        messages = [oru(n, n % args.patients) for n in range(count)]
        start = time.time()
        sent, acks = offer(engine.ports["SGL"], messages, args.rate)
        send_s = time.time() - start
        assert len(acks) == count and all(b"MSA|AA" in a or b"MSA|CA" in a for a in acks), (
            f"{len(acks)} ACKs of {count}: {acks[:2]}"
        )
        deadline = time.monotonic() + args.max_wait
        while len(measured(sim)) < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        registered = measured(sim)
        engine_mean, engine_count = engine_mean_s(engine.url)
    finally:
        engine.stop()

    latencies = [
        datetime.fromisoformat(stored.received_at).timestamp() - sent[n]
        for n, stored in registered.items()
    ]
    last = max(
        (datetime.fromisoformat(s.received_at).timestamp() for s in registered.values()),
        default=start,
    )
    done = len(registered)
    e2e_rate = done / (last - start) if done else 0.0
    mode = "XSD only" if args.schematron == "off" else "XSD + CI-SIS schematrons"
    offered = f"{args.rate:g}/s for {count / args.rate:.0f}s" if args.rate else "all at once"
    print(f"e2e: {count} lab ORU for {args.patients} patients, MLLP -> engine -> DMP simulator")
    print(
        f"mode: documents.schematron={args.schematron} ({mode}); delivery.concurrency="
        f"{args.concurrency}, max_batch={args.max_batch}; offered {offered}"
    )
    print(f"MLLP: {count} ORUs written and acknowledged in {send_s:.2f}s")
    print(f"in the DMP: {done}/{count}, achieved {e2e_rate:.1f} docs/s (first send -> last entry)")
    if latencies:
        print(
            "latency ORU sent -> entry registered: "
            f"p50 {percentile(latencies, 50):.3f}s  p95 {percentile(latencies, 95):.3f}s  "
            f"p99 {percentile(latencies, 99):.3f}s  max {max(latencies):.3f}s  "
            f"mean {statistics.fmean(latencies):.3f}s"
        )
    print(f"engine pfi_end_to_end_duration_seconds: mean {engine_mean:.3f}s over {engine_count}")
    print(f"engine log: {engine.log_path}")
    if args.no_baseline or not registered:
        sim.stop()
        return
    cdas = [registered[n].content for n in sorted(registered)]
    settings = dmp_settings(sim.url, pki.signing_cert, pki.signing_key)
    sim.registry.reset()
    ok1, s1 = direct(settings, cdas, 1)
    sim.registry.reset()
    okn, sn = direct(settings, cdas, args.concurrency)
    sim.stop()
    print(f"baseline, DmpClient -> simulator, same {len(cdas)} CDAs: sequential {ok1 / s1:.1f}/s")
    print(f"baseline, {args.concurrency} threads: {okn / sn:.1f}/s")
    note = "" if not args.rate else " (offered below capacity: the ratio of --rate 0 compares)"
    print(f"ratio end-to-end / direct sequential: {e2e_rate / (ok1 / s1):.2f}{note}")


if __name__ == "__main__":
    main()
