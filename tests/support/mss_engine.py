"""The engine as a subprocess mailing through an MSSanté simulator on loopback: the
operator's CLI against its store, the annuaire of the ORU fixtures' prescriber, and what
the simulator received."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx

from tests.support.dmp_engine import INS, wait_for
from tests.support.engine import REPO, EngineProcess

ANNUAIRE = REPO / "tests/fixtures/mssante/annuaire_lab.txt"
PRESCRIBER = "paul.martin@medecin.mssante.fr"  # RPPS 10003456789 (OBR-16 of the ORU fixtures)
PATIENT = f"{INS}@patient.mssante.fr"


def pfi_cli(engine: EngineProcess, *args: str, timeout_s: float = 60) -> str:
    """`pfi ARGS --config <the engine's pfi.yaml>`, as an operator runs it; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "pfi.cli", *args, "--config", str(engine.config_path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=engine.workdir,
        env=engine.env,
    )
    assert done.returncode == 0, f"pfi {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def import_annuaire(engine: EngineProcess) -> None:
    """The engine's store migrated and the fixtures' annuaire imported, before its start."""
    pfi_cli(engine, "migrate")
    pfi_cli(engine, "annuaire", "import", str(ANNUAIRE))


def mail_to(sim_url: str, address: str) -> list[dict[str, Any]]:
    """What the simulator at `sim_url` delivered to `address` (headers, attachments, XDM)."""
    response = httpx.get(f"{sim_url}/_sim/messages", params={"to": address}, timeout=5)
    response.raise_for_status()
    return list(response.json())


def wait_for_mails(
    engine: EngineProcess, sim_url: str, address: str, count: int, timeout_s: float
) -> None:
    """Until `address` holds `count` mails in the simulator; else fail with the engine's
    log tail (what it did with the document)."""
    assert wait_for(lambda: len(mail_to(sim_url, address)) == count, timeout_s), engine.logs()[
        -4000:
    ]


def xdm_of(mail: dict[str, Any]) -> dict[str, Any]:
    """The simulator's reading of the mail's IHE_XDM.zip (files, documents, problems)."""
    (xdm,) = [a["xdm"] for a in mail["attachments"] if a["filename"] == "IHE_XDM.zip"]
    return xdm
