"""`/api/deliveries` over real HTTP (the ops app on a loopback uvicorn) against a real
store on SQLite and PostgreSQL: list and show for viewers, replay for operators only,
with a reason, audited, refused with the reason for a delivery that went."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pfi.console import accounts
from pfi.console.roles import Role
from pfi.store import Database
from pfi.store.models import AuditEntry, Delivery, OutboxEvent
from tests.support.console_server import ConsoleServer
from tests.support.deliveries import lab_router, record_outcome, routed_report

DMP_REASON = "XDSRepositoryMetadataError: patient INS unknown to the DMP"


@pytest.fixture
def console(db: Database) -> Iterator[ConsoleServer]:
    with ConsoleServer(db) as server:
        yield server


def token(db: Database, role: Role) -> tuple[str, dict[str, str]]:
    name = f"u-{role}-{uuid.uuid4().hex[:8]}"
    with db.transaction() as s:
        issued = accounts.add_user(s, name, role)
    return name, {"Authorization": f"Bearer {issued.token}"}


def test_operator_replays_a_refused_delivery_over_http(
    db: Database, console: ConsoleServer, tmp_path: Path
) -> None:
    ids = routed_report(db, lab_router(tmp_path), "API-OPS-1")
    record_outcome(db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
    record_outcome(db, ids["mss_pro"], "delivered")
    _, viewer = token(db, Role.viewer)
    operator_name, operator = token(db, Role.operator)
    base = console.base_url + "/api/deliveries"

    listed = httpx.get(base, params={"status": "refused"}, headers=viewer, timeout=10)
    assert listed.status_code == 200, listed.text
    assert [(d["id"], d["refusal_reason"]) for d in listed.json()["items"]] == [
        (ids["dmp"], DMP_REASON)
    ]
    shown = httpx.get(f"{base}/{ids['dmp']}", headers=viewer, timeout=10)
    assert shown.status_code == 200 and shown.json()["delivery"]["set_id"] == "API-OPS-1"
    assert httpx.get(f"{base}/999999", headers=viewer, timeout=10).status_code == 404

    url = f"{base}/{ids['dmp']}/replay"
    body = {"reason": "INS fixed at the DMP"}
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert httpx.post(url, json=body, headers=viewer, timeout=10).status_code == 403
    assert httpx.post(url, json={}, headers=operator, timeout=10).status_code == 422
    assert httpx.post(url, json={"reason": ""}, headers=operator, timeout=10).status_code == 422
    replayed = httpx.post(url, json=body, headers=operator, timeout=10)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["previous_status"] == "refused"
    assert replayed.json()["delivery"]["status"] == "pending"
    assert console.outbox_notifications == 1
    with db.reader() as s:
        row = s.get(Delivery, ids["dmp"])
        entry = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "delivery.replay", AuditEntry.target_id == str(ids["dmp"])
            )
        )
        published = s.scalars(select(OutboxEvent.topic).where(OutboxEvent.topic == "deliver.dmp"))
        topics = list(published)
    assert row is not None and row.status == "pending"
    assert entry is not None and (entry.actor, entry.reason) == (operator_name, body["reason"])
    assert topics == ["deliver.dmp"]

    went = httpx.post(f"{base}/{ids['mss_pro']}/replay", json=body, headers=operator, timeout=10)
    assert went.status_code == 409 and "it was delivered" in went.json()["detail"]
    again = httpx.post(url, json=body, headers=operator, timeout=10)
    assert again.status_code == 409 and "already waiting" in again.json()["detail"]
    with db.reader() as s:
        reads = set(
            s.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "delivery"))
        )
    assert {"delivery.list", "delivery.read", "delivery.replay"} <= reads
