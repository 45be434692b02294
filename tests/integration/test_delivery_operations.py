"""Operator tools on the delivery ledger against a real store (SQLite and PostgreSQL):
what a replay changes (ledger row, outbox record, dead letter, audit trail) and what it
refuses to replay; `pfi deliveries` run through Typer against the same store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pfi.bus import codec
from pfi.cli.app import app as cli_app
from pfi.console.roles import Principal, Role
from pfi.delivery.operations import (
    DeliveryFilter,
    ReplayRefused,
    find_deliveries,
    get_delivery,
    replay_delivery,
    replay_matching,
)
from pfi.routes.router import Router
from pfi.store import Database
from pfi.store.models import AuditEntry, DeadLetter, Delivery, OutboxEvent, Routing
from tests.support.deliveries import (
    QUALIFIED_INS,
    dead_letter_delivery,
    lab_router,
    record_outcome,
    routed_report,
)
from tests.support.inprocess import RunningEngine, engine_settings
from tests.support.routing_documents import add_patient

OPERATOR = Principal(name="jdupont", role=Role.operator, token_id="t0")
DMP_REASON = "XDSRepositoryMetadataError: patient INS unknown to the DMP"


@pytest.fixture
def router(tmp_path: Path) -> Router:
    return lab_router(tmp_path)


def outbox_ids(db: Database) -> set[int]:
    with db.reader() as s:
        return set(s.scalars(select(OutboxEvent.id)))


def delivery(db: Database, delivery_id: int) -> Delivery:
    with db.reader() as s:
        row = s.get(Delivery, delivery_id)
        assert row is not None
        return row


def audit(db: Database, delivery_id: int) -> list[AuditEntry]:
    with db.reader() as s:
        return list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "delivery.replay",
                    AuditEntry.target_id == str(delivery_id),
                )
            )
        )


def test_refused_delivery_goes_back_to_pending_with_a_request_and_an_audit_entry(
    db: Database, router: Router
) -> None:
    ids = routed_report(db, router, "OPS-1")
    record_outcome(db, ids["dmp"], "refused", attempts=1, refusal_reason=DMP_REASON)
    before = outbox_ids(db)

    with db.transaction() as s:
        result = replay_delivery(s, ids["dmp"], actor=OPERATOR, reason="INS fixed at the DMP")

    assert result.previous_status == "refused" and result.dead_letters_replayed == []
    row = delivery(db, ids["dmp"])
    assert (row.status, row.attempts, row.refusal_reason, row.next_attempt_at) == (
        "pending",
        0,
        None,
        None,
    )
    (replay,) = row.request["replays"]
    assert (replay["previous_status"], replay["refusal_reason"], replay["by"]) == (
        "refused",
        DMP_REASON,
        "jdupont",
    )
    new = outbox_ids(db) - before
    assert len(new) == 1
    with db.reader() as s:
        out = s.get(OutboxEvent, new.pop())
        routing = s.scalar(select(Routing).where(Routing.document_version_id == ids["version"]))
    assert out is not None and routing is not None
    assert out.topic == "deliver.dmp" and out.key == routing.patient_key.encode()
    assert codec.decode("delivery", out.value) == {
        "delivery_id": ids["dmp"],
        "document_id": routing.document_id,
        "version_id": ids["version"],
        "destination": "dmp",
        "action": "INITIAL",
        "patient_key": routing.patient_key,
        "attempt": 0,
        "received_at": routing.received_at,
    }
    (entry,) = audit(db, ids["dmp"])
    assert (entry.actor, entry.reason) == ("jdupont", "INS fixed at the DMP")
    assert entry.details is not None
    assert entry.details["refusal_reason"] == DMP_REASON
    assert entry.details["previous_status"] == "refused"
    assert entry.details["token_id"] == "t0"


@pytest.mark.parametrize(
    ("status", "why"),
    [
        ("delivered", "it was delivered"),
        ("acknowledged", "acknowledged"),
        ("superseded", "newer version"),
        ("sending", "being sent"),
    ],
)
def test_delivery_that_is_not_refused_or_failed_is_not_replayed(
    db: Database, router: Router, status: str, why: str
) -> None:
    ids = routed_report(db, router, f"OPS-2-{status}")
    record_outcome(db, ids["dmp"], status)
    before = outbox_ids(db)
    with pytest.raises(ReplayRefused, match=why) as refused, db.transaction() as s:
        replay_delivery(s, ids["dmp"], actor=OPERATOR, reason="try again")
    assert refused.value.status == 409
    assert delivery(db, ids["dmp"]).status == status
    assert outbox_ids(db) == before and audit(db, ids["dmp"]) == []


def test_held_delivery_is_released_not_replayed(db: Database, tmp_path: Path) -> None:
    held = lab_router(
        tmp_path,
        "routes:\n  - name: retained\n    hold: retain\n    to: [dmp]\n",
    )
    ids = routed_report(db, held, "OPS-3")
    assert delivery(db, ids["dmp"]).status == "held"
    with pytest.raises(ReplayRefused, match="pfi holds release"), db.transaction() as s:
        replay_delivery(s, ids["dmp"], actor=OPERATOR, reason="try again")


def test_delivery_refused_by_routing_is_not_replayed(db: Database, router: Router) -> None:
    """Routing's refusal (the patient's opposition to the DMP) is a decision: replaying
    it would send a document the patient refused."""
    with db.transaction() as s:
        pid = add_patient(
            s, ins=QUALIFIED_INS, qualified=True, pam={"ZFA": {"ZFA-1": "ACTIF", "ZFA-9": "IO"}}
        ).id
    ids = routed_report(db, router, "OPS-4", patient_id=pid)
    assert delivery(db, ids["dmp"]).status == "refused"
    with (
        pytest.raises(ReplayRefused, match="refused by routing") as refused,
        db.transaction() as s,
    ):
        replay_delivery(s, ids["dmp"], actor=OPERATOR, reason="try again")
    assert "opposition" in str(refused.value)
    assert delivery(db, ids["dmp"]).status == "refused"


def test_replay_of_an_old_version_is_refused_once_a_newer_one_was_routed(
    db: Database, router: Router
) -> None:
    first = routed_report(db, router, "OPS-5")
    record_outcome(db, first["dmp"], "refused", refusal_reason=DMP_REASON)
    routed_report(db, router, "OPS-5", version=2, action="REPLACEMENT", patient_id=first["patient"])
    with pytest.raises(ReplayRefused, match="version 2"), db.transaction() as s:
        replay_delivery(s, first["dmp"], actor=OPERATOR, reason="try again")


def test_dead_lettered_delivery_replay_marks_its_dead_letter_replayed(
    db: Database, router: Router
) -> None:
    ids = routed_report(db, router, "OPS-6")
    other = routed_report(db, router, "OPS-6b", patient_id=None)
    dead_id = dead_letter_delivery(db, ids["mss_pro"], "SMTP 451 after 5 attempts")
    other_dead = dead_letter_delivery(db, other["mss_pro"], "SMTP 451 after 5 attempts")
    with db.reader() as s:
        detail = get_delivery(s, ids["mss_pro"])
    assert detail is not None and [d.id for d in detail.dead_letters] == [dead_id]

    with db.transaction() as s:
        result = replay_delivery(s, ids["mss_pro"], actor="cli:root", reason="relay back up")

    assert result.dead_letters_replayed == [dead_id]
    with db.reader() as s:
        dead = s.get(DeadLetter, dead_id)
        untouched = s.get(DeadLetter, other_dead)
    assert dead is not None and untouched is not None
    assert (dead.status, dead.replay_count) == ("replayed", 1) and dead.replayed_at is not None
    assert untouched.status == "open"
    row = delivery(db, ids["mss_pro"])
    assert row.status == "pending" and row.last_error is None
    assert row.request["replays"][0]["last_error"] == "SMTP 451 after 5 attempts"


def test_bulk_replay_takes_only_the_status_and_destination_asked_and_is_bounded(
    db: Database, router: Router
) -> None:
    reports = [routed_report(db, router, f"OPS-7-{i}") for i in range(4)]
    for ids in reports:
        record_outcome(db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
        record_outcome(db, ids["mss_pro"], "refused", refusal_reason="550 no such user")
    before = outbox_ids(db)
    with db.transaction() as s:
        results = replay_matching(
            s, status="refused", destination="dmp", actor=OPERATOR, reason="DMP fixed", limit=3
        )
    assert [r.delivery_id for r in results] == [ids["dmp"] for ids in reports[:3]]
    assert len(outbox_ids(db) - before) == 3
    with db.reader() as s:
        still = find_deliveries(s, DeliveryFilter(status="refused"))
    assert sorted(r.id for r in still) == sorted(
        [reports[3]["dmp"], *(ids["mss_pro"] for ids in reports)]
    )
    with pytest.raises(ReplayRefused, match="not replayed"), db.transaction() as s:
        replay_matching(s, status="delivered", destination=None, actor=OPERATOR, reason="x y z")


def test_list_filters_on_status_destination_document_type_and_since(
    db: Database, router: Router
) -> None:
    ids = routed_report(db, router, "OPS-8")
    record_outcome(db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
    with db.reader() as s:
        refused = find_deliveries(s, DeliveryFilter(status="refused", destination="dmp"))
        bio = find_deliveries(s, DeliveryFilter(document_type="CR-BIO"))
        img = find_deliveries(s, DeliveryFilter(document_type="CR-IMG"))
        later = find_deliveries(s, DeliveryFilter(since=delivery(db, ids["dmp"]).updated_at))
    assert [r.id for r in refused] == [ids["dmp"]] and refused[0].refusal_reason == DMP_REASON
    assert {r.id for r in bio} == {ids["dmp"], ids["mss_pro"]} and img == []
    assert ids["dmp"] in {r.id for r in later}


# -- the CLI ---------------------------------------------------------------------------


def cli(db: Database, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli_app, list(args), env={"PFI_DATABASE_URL": db.url})
    assert result.exit_code == code, result.output
    return result.output


def test_cli_lists_shows_and_replays_a_refused_delivery(db: Database, router: Router) -> None:
    ids = routed_report(db, router, "OPS-9")
    record_outcome(db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
    record_outcome(db, ids["mss_pro"], "delivered")

    listed = cli(db, "deliveries", "list", "--status", "refused", "--destination", "dmp")
    assert f"{ids['dmp']:>8} refused" in listed and DMP_REASON in listed
    assert str(ids["mss_pro"]) not in listed.split()
    as_json = cli(db, "deliveries", "list", "--status", "refused", "--json")
    assert f'"id": {ids["dmp"]}' in as_json
    shown = cli(db, "deliveries", "show", str(ids["dmp"]))
    assert f"refused: {DMP_REASON}" in shown and "OPS-9" in shown

    replayed = cli(db, "deliveries", "replay", str(ids["dmp"]), "--reason", "INS fixed at the DMP")
    assert f"delivery {ids['dmp']} (dmp) replayed: refused -> pending" in replayed
    assert delivery(db, ids["dmp"]).status == "pending"
    (entry,) = audit(db, ids["dmp"])
    assert entry.actor.startswith("cli:") and entry.reason == "INS fixed at the DMP"
    shown = cli(db, "deliveries", "show", str(ids["dmp"]))
    assert "replayed" in shown and "delivery.replay" in shown

    refused = cli(
        db, "deliveries", "replay", str(ids["mss_pro"]), "--reason", "again please", code=1
    )
    assert "it was delivered" in refused
    assert cli(db, "deliveries", "show", "999999", code=1).strip() == "error: no delivery 999999"
    assert "--reason needs" in cli(db, "deliveries", "replay", str(ids["dmp"]), code=2)


def test_cli_bulk_replay_by_status_and_destination(db: Database, router: Router) -> None:
    a = routed_report(db, router, "OPS-10a")
    b = routed_report(db, router, "OPS-10b")
    for ids in (a, b):
        record_outcome(db, ids["mss_pro"], "failed", last_error="SMTP timeout")
        record_outcome(db, ids["dmp"], "failed", last_error="HTTP 503")
    out = cli(
        db,
        "deliveries",
        "replay",
        "--status",
        "failed",
        "--destination",
        "mss_pro",
        "--reason",
        "relay restarted",
    )
    assert out.startswith("2 delivery(ies) replayed")
    with db.reader() as s:
        pending = s.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
        )
    assert pending == 2
    assert delivery(db, a["dmp"]).status == "failed"
    usage = cli(db, "deliveries", "replay", "--status", "held", "--reason", "xyz", code=2)
    assert "not replayed" in usage


def test_pfi_replay_resends_dead_letters_of_the_destination_asked(
    db: Database, router: Router
) -> None:
    a = routed_report(db, router, "OPS-11a")
    b = routed_report(db, router, "OPS-11b")
    dead_letter_delivery(db, a["dmp"], "HTTP 503 after 5 attempts")
    dead_letter_delivery(db, a["mss_pro"], "SMTP 451 after 5 attempts")
    dead_letter_delivery(db, b["dmp"], "HTTP 503 after 5 attempts")

    out = cli(db, "replay", "--destination", "dmp", "--reason", "DMP back up")

    assert out.startswith("2 dead-lettered delivery(ies) replayed")
    assert delivery(db, a["dmp"]).status == "pending"
    assert delivery(db, b["dmp"]).status == "pending"
    assert delivery(db, a["mss_pro"]).status == "dead_letter"
    assert "0 dead-lettered" in cli(db, "replay", "--since", "2999-01-01")
    by_id = cli(db, "replay", str(a["mss_pro"]), "--reason", "relay fixed")
    assert f"delivery {a['mss_pro']} (mss_pro) replayed: dead_letter -> pending" in by_id
    assert "not both" in cli(db, "replay", str(a["dmp"]), "--destination", "dmp", code=2)


@pytest.mark.slow
def test_replay_from_the_cli_is_published_by_the_running_engine(
    db_url: str, tmp_path: Path
) -> None:
    """The CLI writes the outbox; the engine's relay (another process in production)
    publishes it to deliver.dmp without being told."""
    with RunningEngine(engine_settings(tmp_path, db_url)) as running:
        assert running.engine is not None
        engine_db = running.engine.db
        ids = routed_report(engine_db, lab_router(tmp_path), "OPS-E2E-1")
        record_outcome(engine_db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
        before = outbox_ids(engine_db)
        cli(engine_db, "deliveries", "replay", str(ids["dmp"]), "--reason", "INS fixed")
        (new_id,) = outbox_ids(engine_db) - before

        def published() -> bool:
            with engine_db.reader() as s:
                row = s.get(OutboxEvent, new_id)
                return row is not None and row.published_at is not None

        deadline = time.monotonic() + 10
        while not published() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert published(), "the engine did not publish the replayed delivery request"
