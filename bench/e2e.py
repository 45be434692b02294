"""Documents/s from a lab ORU over MLLP to an entry accepted by the DMP simulator.

The engine runs as a subprocess (`pfi run`, embedded broker, SQLite, XSD-only document
checks), the DMP simulator in this process on loopback with every check on. K patients
are qualified by an ADT (PID-32 VALI), then N plain lab ORUs (each its own order, so its
own CR-BIO) are pipelined over MLLP; the clock stops when the simulator holds N entries.
Baseline measured in the same run: the same number of CR-BIO submitted straight from a
DmpClient to the simulator, so the ratio shows what the whole pipeline (intake, identity,
documents with XSD validation, routing, delivery with its ledger) costs on top of the DMP
call itself. Bounded: at most N documents and T seconds of waiting.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfi.adapters.dmp import DmpClient  # noqa: E402
from pfi.adapters.mllp import MllpClient  # noqa: E402
from pfi.simulators.dmp import DmpSimulatorServer, SimulatorOptions  # noqa: E402
from pfi.simulators.dmp.server import load_certificates  # noqa: E402
from tests.support.dmp_fixtures import CR_BIO, dmp_settings  # noqa: E402
from tests.support.dmp_pki import make_pki  # noqa: E402
from tests.support.engine import EngineProcess  # noqa: E402
from tests.support.hl7 import adt_a01, encode  # noqa: E402

DOCUMENTS = 60
PATIENTS = 6
MAX_WAIT_S = 180.0
ORU = (ROOT / "tests/fixtures/hl7/oru/01_numeric_biochemistry.hl7").read_bytes()
FIXTURE_INS = b"279035121518989"
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
        ORU.replace(b"|M01|", f"|B{n:04d}|".encode())
        .replace(b"CMD1001", f"CMD{5000 + n}".encode())
        .replace(b"F1001", f"F{5000 + n}".encode())
        .replace(b"IPP101", f"IPPB{patient}".encode())
        .replace(FIXTURE_INS, ins(patient).encode())
    )


def held(url: str) -> int:
    stats = httpx.get(f"{url}/_sim/stats", timeout=5).json()
    return int(stats["entries"]) // 2  # each submission: the CDA and its XAdES signature


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pfi-bench-e2e-"))
    pki = make_pki(tmp / "pki")
    options = SimulatorOptions(trusted_signers=load_certificates([pki.signing_cert]))
    sim = DmpSimulatorServer("127.0.0.1", 0, options=options).start()
    routes = tmp / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    engine = EngineProcess(
        tmp / "engine",
        config={
            "routing": {"routes_file": str(routes)},
            "documents": {"loinc_dir": str(ROOT / "config/loinc")},
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
            "logging": {"level": "WARNING"},
        },
    )
    try:
        engine.start(wait_ready_s=90)
        with MllpClient("127.0.0.1", engine.ports["SGL"], timeout_s=30) as client:
            adts = [
                encode(adt_a01(f"BADT{p}", f"IPPB{p}", ins=ins(p), status="VALI"))
                for p in range(PATIENTS)
            ]
            client.send_many(adts)
            time.sleep(2)  # identities applied before the results arrive
            messages = [oru(n, n % PATIENTS) for n in range(DOCUMENTS)]
            start = time.perf_counter()
            acks = client.send_many(messages)
        acked_s = time.perf_counter() - start
        assert all(b"MSA|AA" in a or b"MSA|CA" in a for a in acks), acks[:2]
        deadline = time.monotonic() + MAX_WAIT_S
        while held(sim.url) < DOCUMENTS and time.monotonic() < deadline:
            time.sleep(0.2)
        e2e_s = time.perf_counter() - start
        done = held(sim.url)
    finally:
        engine.stop()

    # baseline: the same number of CR-BIO straight to the simulator from a client
    settings = dmp_settings(sim.url, pki.signing_cert, pki.signing_key)
    original = b'<id root="1.2.250.1.213.1.1.1.55.2024.9.1"/>'
    cdas = [
        CR_BIO.read_bytes().replace(original, f'<id root="1.2.250.1.999.88.{i}"/>'.encode())
        for i in range(DOCUMENTS)
    ]
    with DmpClient(settings) as dmp:
        start = time.perf_counter()
        accepted = sum(dmp.submit(cda).accepted for cda in cdas)
        direct_s = time.perf_counter() - start
    sim.stop()

    e2e_rate = done / e2e_s
    direct_rate = accepted / direct_s
    print(f"{DOCUMENTS} lab ORU for {PATIENTS} patients, MLLP -> engine -> DMP simulator")
    print(f"MLLP acknowledged: {DOCUMENTS} in {acked_s:.2f}s")
    print(f"in the DMP: {done}/{DOCUMENTS} in {e2e_s:.2f}s = {e2e_rate:.1f} docs/s")
    print(f"baseline (DmpClient -> simulator): {accepted} in {direct_s:.2f}s = {direct_rate:.1f}/s")
    print(f"ratio end-to-end / direct DMP submission: {e2e_rate / direct_rate:.2f}")


if __name__ == "__main__":
    main()
