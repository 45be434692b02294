"""The engine as a subprocess delivering to the DMP simulator (in this process, on
loopback): a lab ORU sent over MLLP ends as one entry in the DMP, and a kill -9 while DMP
calls are in flight loses nothing and registers nothing twice."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pfi.adapters.mllp import MllpClient
from pfi.simulators.dmp import DmpSimulatorServer, SimulatorOptions
from pfi.simulators.dmp.server import load_certificates
from pfi.store import Database
from pfi.store.models import Delivery
from pfi.transforms.xds.xades import SIGNATURE_CLASS
from tests.support.dmp_pki import TestPki, make_pki
from tests.support.engine import REPO, EngineProcess
from tests.support.hl7 import adt_a01, encode

pytestmark = pytest.mark.slow

INS = "279035121518989"  # the patient of the ORU fixtures (PID-3 INS, PID-32 VALI)
ORU = (REPO / "tests/fixtures/hl7/oru/01_numeric_biochemistry.hl7").read_bytes()
ROUTES = """
routes:
  - name: lab to the DMP
    from: {source: SGL, document: CR-BIO}
    to: [dmp]
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("e2e-dmp-pki"))


@pytest.fixture()
def sim(pki: TestPki) -> Iterator[DmpSimulatorServer]:
    options = SimulatorOptions(trusted_signers=load_certificates([pki.signing_cert]))
    server = DmpSimulatorServer("127.0.0.1", 0, options=options).start()
    yield server
    server.stop()


def engine_for(tmp_path: Path, sim: DmpSimulatorServer, pki: TestPki) -> EngineProcess:
    routes = tmp_path / "routes.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    routes.write_text(ROUTES, encoding="utf-8")
    return EngineProcess(
        tmp_path / "engine",
        config={
            "routing": {"routes_file": str(routes)},
            "documents": {"loinc_dir": str(REPO / "config/loinc")},
            "dmp": {
                "url": sim.url,
                "signing_certfile": str(pki.signing_cert),
                "signing_keyfile": str(pki.signing_key),
                "read_timeout_s": 30,
                "identity": {
                    "structure_id": "10B0123456",
                    "structure_name": "CH de test",
                    "structure_finess": "750000001",
                    "subject_name_id": "PFI-AUTOMATE/ops",
                    "source_id": "1.2.250.1.999.1.1",
                },
            },
            "delivery": {"backoff_base_s": 0.5, "backoff_max_s": 2, "retry_poll_s": 0.2},
        },
    )


def entries(sim: DmpSimulatorServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{sim.url}/_sim/documents", params={"ins": INS}, timeout=5)
    response.raise_for_status()
    return [d for d in response.json() if d["classCode"] != SIGNATURE_CLASS.code]


def iti41_requests(sim: DmpSimulatorServer) -> int:
    return int(httpx.get(f"{sim.url}/_sim/stats", timeout=5).json()["requests"]["iti41"])


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def lab_oru(n: int) -> bytes:
    """The fixture ORU as request n: its own control id and order numbers (own document)."""
    return (
        ORU.replace(b"|M01|", f"|M{n:02d}|".encode())
        .replace(b"CMD1001", f"CMD{1000 + n}".encode())
        .replace(b"F1001", f"F{1000 + n}".encode())
    )


def qualify_patient(engine: EngineProcess) -> None:
    adt = adt_a01("ADT-1", "IPP101", ins=INS, status="VALI", family="PAT-TROIS")
    with MllpClient("127.0.0.1", engine.ports["SGL"], timeout_s=10) as client:
        assert b"MSA|AA" in client.send(encode(adt))


def send(engine: EngineProcess, messages: list[bytes]) -> None:
    with MllpClient("127.0.0.1", engine.ports["SGL"], timeout_s=30) as client:
        for ack in client.send_many(messages):
            assert b"MSA|AA" in ack or b"MSA|CA" in ack, ack


def test_lab_oru_over_mllp_ends_as_one_entry_in_the_dmp(
    tmp_path: Path, sim: DmpSimulatorServer, pki: TestPki
) -> None:
    engine = engine_for(tmp_path, sim, pki)
    engine.start()
    try:
        qualify_patient(engine)
        send(engine, [lab_oru(1)])

        assert wait_for(lambda: len(entries(sim)) == 1, 60), engine.logs()[-4000:]
        (entry,) = entries(sim)
        assert entry["status"] == "Approved" and entry["typeCode"] == "11502-2"
        metrics = httpx.get(f"{engine.url}/metrics", timeout=5).text
        assert (
            'pfi_deliveries_total{destination="dmp",document_type="CR-BIO",outcome="delivered"} 1.0'
            in metrics
        )
        assert 'pfi_end_to_end_duration_seconds_count{destination="dmp"} 1.0' in metrics
    finally:
        assert engine.stop() == 0


def test_kill_9_during_dmp_calls_then_restart_registers_every_document_once(
    tmp_path: Path, sim: DmpSimulatorServer, pki: TestPki
) -> None:
    count = 6
    engine = engine_for(tmp_path, sim, pki)
    engine.start()
    qualify_patient(engine)
    # the DMP answers slowly: calls are in flight when the engine dies (it registers each
    # document once its 3 s are over, whether the caller is still there or not)
    httpx.post(
        f"{sim.url}/_sim/fail", json={"mode": "hang", "seconds": 3, "count": 3}, timeout=5
    ).raise_for_status()
    send(engine, [lab_oru(n) for n in range(1, count + 1)])
    assert wait_for(lambda: iti41_requests(sim) >= 1, 60), engine.logs()[-4000:]
    engine.kill9()

    engine.start()
    try:
        assert wait_for(lambda: len(entries(sim)) >= count, 90), engine.logs()[-4000:]
        time.sleep(2)  # any duplicate on its way lands now
        found = entries(sim)
        per_document = Counter(e["setId"] for e in found)
        assert len(per_document) == count and set(per_document.values()) == {1}, found
        assert all(e["status"] == "Approved" for e in found)
        db = Database(f"sqlite:///{engine.workdir / 'var' / 'pfi.db'}")
        with db.reader() as session:
            rows = session.scalars(select(Delivery)).all()
            statuses = Counter(r.status for r in rows)
            resumed = [r.id for r in rows if "earlier attempt" in str(r.request)]
        db.dispose()
        assert statuses == {"delivered": count}
        assert resumed, "no call was in flight at the kill: the test proved nothing"
    finally:
        assert engine.stop() == 0


def test_run_with_simulators_delivers_to_its_own_dmp_simulator_out_of_the_box(
    tmp_path: Path,
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    engine = EngineProcess(
        tmp_path / "engine",
        config={
            "routing": {"routes_file": str(routes)},
            "documents": {"loinc_dir": str(REPO / "config/loinc")},
        },
        args=("--with-simulators",),
    )
    engine.start()
    try:
        found = re.search(r"DMP simulator on (http://127\.0\.0\.1:\d+)", engine.logs())
        assert found, engine.logs()[-3000:]
        url = found.group(1)
        qualify_patient(engine)
        send(engine, [lab_oru(7)])

        def held() -> list[dict[str, Any]]:
            response = httpx.get(f"{url}/_sim/documents", params={"ins": INS}, timeout=5)
            return [d for d in response.json() if d["classCode"] != SIGNATURE_CLASS.code]

        assert wait_for(lambda: len(held()) == 1, 60), engine.logs()[-4000:]
        assert (engine.workdir / "var/simulators/pki/demo-seal.pem").is_file()
    finally:
        assert engine.stop() == 0


def test_lab_correction_replaces_and_cancellation_deletes_the_dmp_entry(
    tmp_path: Path, sim: DmpSimulatorServer, pki: TestPki
) -> None:
    oru_dir = REPO / "tests/fixtures/hl7/oru"
    engine = engine_for(tmp_path, sim, pki)
    engine.start()
    try:
        qualify_patient(engine)
        send(engine, [ORU])
        assert wait_for(lambda: len(entries(sim)) == 1, 60), engine.logs()[-4000:]
        (first,) = entries(sim)

        send(engine, [(oru_dir / "08_correction.hl7").read_bytes()])
        assert wait_for(lambda: len(entries(sim)) == 2, 60), engine.logs()[-4000:]
        by_version = {e["version"]: e for e in entries(sim)}
        assert by_version["1"]["status"] == "Deprecated"
        assert by_version["1"]["replacedBy"] == by_version["2"]["entryUUID"]
        assert by_version["2"]["status"] == "Approved"
        assert by_version["2"]["setId"] == first["setId"]

        send(engine, [(oru_dir / "09_cancellation.hl7").read_bytes()])
        assert wait_for(
            lambda: {e["version"]: e["status"] for e in entries(sim)}.get("2") == "Deleted", 60
        ), engine.logs()[-4000:]
    finally:
        assert engine.stop() == 0
