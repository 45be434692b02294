"""The engine as a subprocess delivering to a DMP simulator running in the test process,
on loopback: configuration, sending over MLLP, reading what the DMP holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pfi.adapters.mllp import MllpClient
from pfi.simulators.dmp import DmpSimulatorServer
from pfi.transforms.xds.xades import SIGNATURE_CLASS
from tests.support.dmp_pki import TestPki
from tests.support.engine import REPO, EngineProcess
from tests.support.hl7 import adt_a01, encode

INS = "279035121518989"  # the patient of the ORU fixtures (PID-3 INS, PID-32 VALI)
ORU = (REPO / "tests/fixtures/hl7/oru/01_numeric_biochemistry.hl7").read_bytes()
LAB_TO_DMP = """
routes:
  - name: lab to the DMP
    from: {source: SGL, document: CR-BIO}
    to: [dmp]
"""


def dmp_engine(
    tmp_path: Path,
    sim: DmpSimulatorServer,
    pki: TestPki,
    *,
    routes: str = LAB_TO_DMP,
    **sections: dict[str, Any],
) -> EngineProcess:
    """An engine delivering to `sim`, with `routes` and extra configuration sections."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(routes, encoding="utf-8")
    documents = {"loinc_dir": str(REPO / "config/loinc"), **sections.pop("documents", {})}
    return EngineProcess(
        tmp_path / "engine",
        config={
            "routing": {"routes_file": str(routes_file)},
            "documents": documents,
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
            **sections,
        },
    )


def dmp_entries(url: str, ins: str = INS) -> list[dict[str, Any]]:
    """The documents the DMP simulator at `url` holds for `ins` (signatures left out)."""
    response = httpx.get(f"{url}/_sim/documents", params={"ins": ins}, timeout=5)
    response.raise_for_status()
    return [d for d in response.json() if d["classCode"] != SIGNATURE_CLASS.code]


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


def identify_patient(
    engine: EngineProcess, *, status: str = "VALI", control_id: str = "ADT-1"
) -> None:
    """The fixtures' patient, with identity status `status` (VALI qualifies the INS)."""
    adt = adt_a01(control_id, "IPP101", ins=INS, status=status, family="PAT-TROIS")
    with MllpClient("127.0.0.1", engine.ports["SGL"], timeout_s=10) as client:
        assert b"MSA|AA" in client.send(encode(adt))


def send(engine: EngineProcess, messages: list[bytes], source: str = "SGL") -> None:
    with MllpClient("127.0.0.1", engine.ports[source], timeout_s=30) as client:
        for ack in client.send_many(messages):
            assert b"MSA|AA" in ack or b"MSA|CA" in ack, ack
