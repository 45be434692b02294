"""The engine as a subprocess delivering to the DMP simulator (in this process, on
loopback): a lab ORU sent over MLLP ends as one entry in the DMP, and a kill -9 while DMP
calls are in flight loses nothing and registers nothing twice."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pfi.simulators.dmp import DmpSimulatorServer
from pfi.store import Database
from pfi.store.models import Delivery
from tests.support.dmp_engine import (
    ORU,
    dmp_engine,
    dmp_entries,
    identify_patient,
    lab_oru,
    send,
    wait_for,
)
from tests.support.dmp_pki import TestPki
from tests.support.engine import REPO, EngineProcess
from tests.support.mss_engine import (
    PATIENT,
    PRESCRIBER,
    import_annuaire,
    mail_to,
    wait_for_mails,
    xdm_of,
)

pytestmark = pytest.mark.slow


def iti41_requests(sim: DmpSimulatorServer) -> int:
    return int(httpx.get(f"{sim.url}/_sim/stats", timeout=5).json()["requests"]["iti41"])


def test_lab_oru_over_mllp_ends_as_one_entry_in_the_dmp(
    tmp_path: Path, sim: DmpSimulatorServer, pki: TestPki
) -> None:
    engine = dmp_engine(tmp_path, sim, pki)
    engine.start()
    try:
        identify_patient(engine)
        send(engine, [lab_oru(1)])

        assert wait_for(lambda: len(dmp_entries(sim.url)) == 1, 60), engine.logs()[-4000:]
        (entry,) = dmp_entries(sim.url)
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
    engine = dmp_engine(tmp_path, sim, pki)
    engine.start()
    identify_patient(engine)
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
        assert wait_for(lambda: len(dmp_entries(sim.url)) >= count, 90), engine.logs()[-4000:]
        time.sleep(2)  # any duplicate on its way lands now
        found = dmp_entries(sim.url)
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


LAB_TO_DMP_AND_MAIL = """
routes:
  - name: lab to the DMP, the prescriber and the patient
    from: {source: SGL, document: CR-BIO}
    to: [dmp, mss_prescriber, mss_patient]
"""


def test_run_with_simulators_delivers_to_its_own_dmp_and_mssante_simulators_out_of_the_box(
    tmp_path: Path,
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(LAB_TO_DMP_AND_MAIL, encoding="utf-8")
    engine = EngineProcess(
        tmp_path / "engine",
        config={
            "routing": {"routes_file": str(routes)},
            "documents": {"loinc_dir": str(REPO / "config/loinc")},
        },
        args=("--with-simulators",),
    )
    import_annuaire(engine)
    engine.start()
    try:
        logs = engine.logs()
        found = re.search(r"DMP simulator on (http://127\.0\.0\.1:\d+)", logs)
        assert found, logs[-3000:]
        url = found.group(1)
        mss = re.search(
            r"MSSanté simulator on smtp://127\.0\.0\.1:\d+ .*messages: "
            r"(http://127\.0\.0\.1:\d+)/_sim/messages\?to=",
            logs,
        )
        assert mss, logs[-3000:]
        mss_url = mss.group(1)
        identify_patient(engine)
        send(engine, [lab_oru(7)])
        assert wait_for(lambda: len(dmp_entries(url)) == 1, 60), engine.logs()[-4000:]
        assert (engine.workdir / "var/simulators/pki/demo-seal.pem").is_file()

        wait_for_mails(engine, mss_url, PRESCRIBER, 1, 60)
        wait_for_mails(engine, mss_url, PATIENT, 1, 30)
        (mail,) = mail_to(mss_url, PRESCRIBER)
        xdm = xdm_of(mail)
        assert xdm["problems"] == [] and len(xdm["documents"]) == 1, xdm
        assert mail["recipient"] == PRESCRIBER and not mail["tls"]
    finally:
        assert engine.stop() == 0


def test_lab_correction_replaces_and_cancellation_deletes_the_dmp_entry(
    tmp_path: Path, sim: DmpSimulatorServer, pki: TestPki
) -> None:
    oru_dir = REPO / "tests/fixtures/hl7/oru"
    engine = dmp_engine(tmp_path, sim, pki)
    engine.start()
    try:
        identify_patient(engine)
        send(engine, [ORU])
        assert wait_for(lambda: len(dmp_entries(sim.url)) == 1, 60), engine.logs()[-4000:]
        (first,) = dmp_entries(sim.url)

        send(engine, [(oru_dir / "08_correction.hl7").read_bytes()])
        assert wait_for(lambda: len(dmp_entries(sim.url)) == 2, 60), engine.logs()[-4000:]
        by_version = {e["version"]: e for e in dmp_entries(sim.url)}
        assert by_version["1"]["status"] == "Deprecated"
        assert by_version["1"]["replacedBy"] == by_version["2"]["entryUUID"]
        assert by_version["2"]["status"] == "Approved"
        assert by_version["2"]["setId"] == first["setId"]

        send(engine, [(oru_dir / "09_cancellation.hl7").read_bytes()])
        assert wait_for(
            lambda: {e["version"]: e["status"] for e in dmp_entries(sim.url)}.get("2") == "Deleted",
            60,
        ), engine.logs()[-4000:]
    finally:
        assert engine.stop() == 0
