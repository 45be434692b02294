"""The KO worklist over real HTTP and through the `pfi inbound ko` command.

The operator's acts send the document to a real MLLP listener playing the DPI, and each
one leaves its audit entry (who, when, why); on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from pfi.console import accounts
from pfi.console.app import create_app
from pfi.console.roles import Role
from pfi.inbound.config import InboundConfig
from pfi.inbound.service import InboundIntegrator
from pfi.observability.health import Readiness
from pfi.simulators.mssante import MssSimulator
from pfi.store import Database
from pfi.store.models import AuditEntry, InboundDocumentRow
from pfi.transforms.hl7.message import parse_message
from tests.support.dpi import FakeDpi
from tests.support.http_app import serving
from tests.support.mss import APP, APP_PASSWORD
from tests.support.mss_inbound import add_patient, cda, document_mail, inbound_settings

UNKNOWN_INS = "180012345678901"


@dataclass
class Ops:
    db: Database
    db_url: str
    sim: MssSimulator
    dpi: FakeDpi
    integrator: InboundIntegrator
    base_url: str

    def token(self, role: Role) -> str:
        with self.db.transaction() as session:
            return accounts.add_user(session, f"u-{role}-{uuid.uuid4().hex[:6]}", role).token

    def ko_document(self, message_id: str = "<ko-1@cabinet.mssante.fr>") -> int:
        """A document whose INS nobody has: it lands in the KO worklist."""
        self.sim.inject(APP, document_mail(message_id, cda_bytes=cda(UNKNOWN_INS)))
        summary = self.integrator.poll_once()
        assert summary.ko == 1, summary
        with self.db.reader() as s:
            return s.scalars(
                select(InboundDocumentRow.id).order_by(InboundDocumentRow.id.desc())
            ).first()  # type: ignore[return-value]

    def row(self, document_id: int) -> InboundDocumentRow:
        with self.db.reader() as s:
            row = s.get(InboundDocumentRow, document_id)
        assert row is not None
        return row

    def audit(self, action: str) -> list[AuditEntry]:
        with self.db.reader() as s:
            return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))

    def post(self, path: str, token: str, body: dict[str, object]) -> httpx.Response:
        return httpx.post(
            self.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )

    def get(self, path: str, token: str) -> httpx.Response:
        return httpx.get(
            self.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )


@pytest.fixture
def ops(db: Database, db_url: str) -> Iterator[Ops]:
    with (
        MssSimulator(smtp_port=0, imap_port=0, http_port=0, mailboxes={APP: APP_PASSWORD}) as sim,
        FakeDpi() as dpi,
    ):
        cfg = InboundConfig.of(inbound_settings(sim.imap_port, dpi.port))
        assert cfg is not None
        integrator = InboundIntegrator(db, cfg)
        with serving(create_app(Readiness(), db=db, inbound=integrator)) as url:
            yield Ops(db, db_url, sim, dpi, integrator, url)


def test_operator_assigns_a_ko_document_over_http_and_it_reaches_the_dpi(ops: Ops) -> None:
    with ops.db.transaction() as s:
        patient_id = add_patient(s, "IPP-42", ins=None, qualified=False, birth_name="AUTRE")
    doc_id = ops.ko_document()
    viewer, operator = ops.token(Role.viewer), ops.token(Role.operator)

    listed = ops.get("/api/inbound/ko", viewer)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["id"] == doc_id and item["reason"].startswith(f"INS {UNKNOWN_INS} unknown")
    assert item["sender"] == "dr.martin@cabinet.mssante.fr"
    body = {"patient": "IPP-42", "reason": "même patiente, INS saisi avec une erreur"}
    assert ops.post(f"/api/inbound/ko/{doc_id}/assign", viewer, body).status_code == 403

    answer = ops.post(f"/api/inbound/ko/{doc_id}/assign", operator, body)

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["outcome"] == "integrated"
    assert result["document"]["patient_id"] == patient_id
    assert result["document"]["matched_by"] == "operator"
    [mdm] = ops.dpi.received
    assert parse_message(mdm, "UNICODE UTF-8").first("PID").get(3) == "IPP-42"
    [entry] = ops.audit("inbound_document.assign")
    assert entry.actor.startswith("u-operator-") and entry.target_id == str(doc_id)
    assert entry.reason == "même patiente, INS saisi avec une erreur"
    assert entry.details is not None and entry.details["patient_id"] == patient_id
    assert ops.get("/api/inbound/ko", viewer).json()["items"] == []
    integrated = ops.get("/api/inbound/ko?status=integrated", viewer).json()["items"]
    assert [i["id"] for i in integrated] == [doc_id]
    assert ops.audit("inbound_document.list")  # the reads are audited too


def test_assign_to_an_unknown_patient_is_refused_and_changes_nothing(ops: Ops) -> None:
    doc_id = ops.ko_document()
    operator = ops.token(Role.operator)

    answer = ops.post(
        f"/api/inbound/ko/{doc_id}/assign", operator, {"patient": "NOPE", "reason": "essai"}
    )

    assert answer.status_code == 422
    assert answer.json()["detail"] == "no patient has IPP or INS 'NOPE'"
    assert ops.row(doc_id).status == "ko" and ops.audit("inbound_document.assign") == []


def test_reject_needs_a_reason_is_audited_and_closes_the_document_once(ops: Ops) -> None:
    doc_id = ops.ko_document()
    operator = ops.token(Role.operator)
    url = f"/api/inbound/ko/{doc_id}/reject"

    assert ops.post(url, operator, {}).status_code == 422
    answer = ops.post(url, operator, {"reason": "pas pour notre établissement"})
    again = ops.post(url, operator, {"reason": "pas pour notre établissement"})

    assert answer.status_code == 200 and answer.json()["outcome"] == "rejected"
    row = ops.row(doc_id)
    assert (row.status, row.resolution) == ("rejected", "pas pour notre établissement")
    assert row.resolved_by is not None and row.resolved_by.startswith("u-operator-")
    assert again.status_code == 409
    assert [e.reason for e in ops.audit("inbound_document.reject")] == [
        "pas pour notre établissement"
    ]
    assert ops.dpi.received == []


def test_retry_after_the_patient_was_created_integrates_by_ins(ops: Ops) -> None:
    doc_id = ops.ko_document()
    with ops.db.transaction() as s:
        patient_id = add_patient(s, "IPP-7", ins=UNKNOWN_INS)
    operator = ops.token(Role.operator)

    answer = ops.post(
        f"/api/inbound/ko/{doc_id}/retry", operator, {"reason": "patiente créée par l'accueil"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "integrated"
    row = ops.row(doc_id)
    assert (row.patient_id, row.matched_by, row.status) == (patient_id, "ins", "integrated")
    assert len(ops.audit("inbound_document.retry")) == 1


def _cli(ops: Ops, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "pfi.yaml"
    if not config.exists():
        cfg = ops.integrator.cfg
        config.write_text(
            yaml.safe_dump(
                {
                    "database": {"url": ops.db_url},
                    "outbound": {"application": "PFI", "facility": "CHU-X"},
                    "mssante": {
                        "enabled": True,
                        "application_mailbox": APP,
                        "xdm": {"source_id": "1.2.250.1.999.1.1"},
                        "imap": {
                            "host": "127.0.0.1",
                            "port": cfg.imap.port,
                            "tls_mode": "none",
                            "username": APP,
                            "password": APP_PASSWORD,
                        },
                        "inbound": {"dpi": {"host": "127.0.0.1", "port": cfg.dpi.port}},
                    },
                }
            )
        )
    return subprocess.run(
        [sys.executable, "-m", "pfi.cli", "inbound", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_lists_shows_and_assigns_with_an_audited_reason(ops: Ops, tmp_path: Path) -> None:
    with ops.db.transaction() as s:
        patient_id = add_patient(s, "IPP-9", ins=None, qualified=False, birth_name="AUTRE")
    doc_id = ops.ko_document()

    listed = _cli(ops, tmp_path, "ko", "list", "--json")
    shown = _cli(ops, tmp_path, "ko", "show", str(doc_id))
    no_reason = _cli(ops, tmp_path, "ko", "assign", str(doc_id), "--patient", "IPP-9")
    assigned = _cli(
        ops, tmp_path, "ko", "assign", str(doc_id), "--patient", "IPP-9", "--reason", "vu au tel"
    )

    assert listed.returncode == 0, listed.stderr
    [item] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert item["id"] == doc_id and item["status"] == "ko"
    assert shown.returncode == 0 and f"INS {UNKNOWN_INS} unknown" in shown.stdout
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert assigned.returncode == 0, assigned.stderr
    assert f"inbound document {doc_id} integrated: patient {patient_id}" in assigned.stdout
    assert len(ops.dpi.received) == 1
    [entry] = ops.audit("inbound_document.assign")
    assert entry.actor.startswith("cli:") and entry.reason == "vu au tel"


def test_cli_poll_fetches_and_integrates(ops: Ops, tmp_path: Path) -> None:
    with ops.db.transaction() as s:
        add_patient(s, "IPP-1")
    ops.sim.inject(APP, document_mail("<cli-poll@cabinet.mssante.fr>"))

    polled = _cli(ops, tmp_path, "poll")

    assert polled.returncode == 0, polled.stderr
    assert "1 fetched, 1 kept" in polled.stdout and "1 integrated" in polled.stdout
    assert len(ops.dpi.received) == 1
