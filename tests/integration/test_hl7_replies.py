"""HL7 replies to the hospital over real MLLP (a loopback listener that answers AA, AE
or nothing) from a real store on SQLite and PostgreSQL: what the delivery stage queues
in its transaction (`enqueue_replies`), idempotently, and how the sender delivers it,
records the peer's NACK, retries, keeps the order per endpoint and gives up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pfi.bus.broker import free_port
from pfi.cli.app import app as cli_app
from pfi.config.outbound import MaskingOruSettings, OutboundRetry, OutboundSettings, ReplyEndpoint
from pfi.console import accounts
from pfi.console.roles import Role
from pfi.delivery.hl7_replies import enqueue_replies
from pfi.delivery.hl7_sender import Hl7ReplySender, run_once
from pfi.delivery.operations import replay_delivery
from pfi.observability import metrics
from pfi.observability.store_snapshot import store_snapshot_provider
from pfi.routes import load_routes
from pfi.routes.document_meta import DocumentMeta, MetaRecipient, SourceMessage
from pfi.routes.router import Router
from pfi.store import Database
from pfi.store.models import AuditEntry, OutboundMessage, utcnow
from pfi.transforms.hl7 import parse_message
from tests.support.console_server import ConsoleServer
from tests.support.deliveries import record_outcome, routed_report
from tests.support.inprocess import RunningEngine, engine_settings
from tests.support.mllp_peer import MllpPeer

VOLET_FLAGS = {
    "MASQUE_PS": "N",
    "INVISIBLE_PATIENT": "N",
    "INVISIBLE_REP_LEGAUX": "N",
    "CONNEXION_SECRETE": "N",
    "MODIF_CONF_CODE": "N",
    "DESTDMP": "Y",
    "DESTMSSANTEPS": "Y",
    "DESTMSSANTEPAT": "N",
    "ACK_RECEPTION": "Y",
}
DMP_REASON = "XDSRepositoryMetadataError: patient INS unknown to the DMP"


def transmission_meta() -> DocumentMeta:
    return DocumentMeta(
        sender_metadata=dict(VOLET_FLAGS),
        recipients=(MetaRecipient("adam.hoda@test-ci-sis.mssante.fr", "copy", "Adam Hoda"),),
        message=SourceMessage("015", "SIL-Y", "labo", "ORU^R01"),
    )


def outbound(port: int, *, timeout_s: float = 5.0, oru_port: int | None = None) -> OutboundSettings:
    return OutboundSettings(
        application="PFI",
        facility="CHU-X",
        business_acks=[
            ReplyEndpoint(
                sending_application="SIL-Y", host="127.0.0.1", port=port, timeout_s=timeout_s
            )
        ],
        masking_oru=MaskingOruSettings(host="127.0.0.1", port=oru_port) if oru_port else None,
    )


@pytest.fixture
def router() -> Router:
    return Router(load_routes(Path("config/routes.yaml")))


@pytest.fixture
def peer() -> Iterator[MllpPeer]:
    with MllpPeer() as running:
        yield running


def enqueue(db: Database, delivery_id: int, settings: OutboundSettings) -> int:
    with db.transaction() as s:
        return enqueue_replies(s, delivery_id, settings)


def messages(db: Database) -> list[OutboundMessage]:
    with db.reader() as s:
        return list(s.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def counter(kind: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "pfi_outbound_hl7_messages_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


def test_dmp_acceptance_is_acknowledged_once_to_the_senders_listener(
    db: Database, router: Router, peer: MllpPeer
) -> None:
    ids = routed_report(db, router, "ZAM-OUT-1", meta=transmission_meta(), way="transmission")
    settings = outbound(peer.port)
    record_outcome(db, ids["dmp"], "delivered")
    sent_before = counter("zam_z01", "sent")

    assert enqueue(db, ids["dmp"], settings) == 1
    assert enqueue(db, ids["dmp"], settings) == 0  # the same outcome applied again
    assert run_once(db) == 1

    (zam,) = peer.received
    msg = parse_message(zam)
    assert msg.get("MSH-9.1") == "ZAM" and msg.get("MSH-9.2") == "Z01"
    assert (msg.get("OBX-4"), msg.get("OBX-5.1")) == ("015", "Y")
    (row,) = messages(db)
    assert (row.status, row.kind, row.ack_code, row.attempts) == ("sent", "zam_z01", "AA", 1)
    assert row.delivery_id == ids["dmp"] and row.sent_at is not None
    assert row.control_id == msg.get("MSH-10")
    assert run_once(db) == 0 and len(peer.received) == 1
    assert counter("zam_z01", "sent") == sent_before + 1


def test_refusal_then_replay_then_acceptance_sends_both_answers_in_order(
    db: Database, router: Router, peer: MllpPeer
) -> None:
    ids = routed_report(db, router, "ZAM-OUT-2", meta=transmission_meta(), way="transmission")
    settings = outbound(peer.port)
    record_outcome(
        db,
        ids["dmp"],
        "refused",
        refusal_reason=DMP_REASON,
        request={"result": {"errors": [{"code": "XDSRepositoryMetadataError"}]}},
    )
    assert enqueue(db, ids["dmp"], settings) == 1
    with db.transaction() as s:
        replay_delivery(s, ids["dmp"], actor="cli:root", reason="INS fixed")
    record_outcome(db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
    assert enqueue(db, ids["dmp"], settings) == 1  # a new outcome after the replay
    record_outcome(db, ids["dmp"], "delivered")
    assert enqueue(db, ids["dmp"], settings) == 1
    assert run_once(db) == 3
    flags = [parse_message(m).get("OBX-5.1") for m in peer.received]
    assert flags == ["N", "N", "Y"]
    first = parse_message(peer.received[0])
    assert first.get("ERR-5.1") == "XDSRepositoryMetadataError"


def test_nack_is_recorded_with_the_peers_text_and_retried_after_the_backoff(
    db: Database, router: Router, peer: MllpPeer
) -> None:
    ids = routed_report(db, router, "ZAM-OUT-3", meta=transmission_meta(), way="transmission")
    settings = outbound(peer.port)
    record_outcome(db, ids["dmp"], "delivered")
    record_outcome(db, ids["mss_pro"], "delivered")
    enqueue(db, ids["dmp"], settings)
    enqueue(db, ids["mss_pro"], settings)
    peer.answer_next("AE:patient IPP-7 inconnu", "AA")
    retry = OutboundRetry(initial_backoff_s=60, max_backoff_s=600)
    now = utcnow()

    assert run_once(db, retry, now=now) == 0
    head, behind = messages(db)
    assert (head.status, head.attempts, head.ack_code) == ("failed", 1, "AE")
    assert head.last_error == "AE: patient IPP-7 inconnu"
    assert head.next_attempt_at is not None
    assert abs((head.next_attempt_at - now).total_seconds() - 60) < 1
    assert behind.status == "pending" and len(peer.received) == 1  # nothing overtakes

    assert run_once(db, retry, now=now + timedelta(seconds=30)) == 0  # not due yet
    assert len(peer.received) == 1
    assert run_once(db, retry, now=now + timedelta(seconds=61)) == 2
    head, behind = messages(db)
    assert (head.status, head.attempts, behind.status) == ("sent", 2, "sent")
    assert [parse_message(m).get("MSH-9.2") for m in peer.received] == ["Z01", "Z01", "Z02"]


def test_silent_listener_times_out_and_the_message_dies_after_its_attempts(
    db: Database, router: Router, peer: MllpPeer
) -> None:
    ids = routed_report(db, router, "ZAM-OUT-4", meta=transmission_meta(), way="transmission")
    settings = outbound(peer.port, timeout_s=0.3)
    record_outcome(db, ids["dmp"], "refused", refusal_reason=DMP_REASON)
    record_outcome(db, ids["mss_pro"], "delivered")
    enqueue(db, ids["dmp"], settings)
    enqueue(db, ids["mss_pro"], settings)
    peer.answer_next("hang", "hang", "AA")
    retry = OutboundRetry(max_attempts=2, initial_backoff_s=1, max_backoff_s=1)
    dead_before = counter("zam_z01", "dead")
    now = utcnow()

    assert run_once(db, retry, now=now) == 0
    assert run_once(db, retry, now=now + timedelta(seconds=2)) == 0
    head, behind = messages(db)
    assert (head.status, head.attempts) == ("dead", 2)
    assert "no ACK" in (head.last_error or "")
    assert counter("zam_z01", "dead") == dead_before + 1
    assert behind.status == "pending"
    assert store_snapshot_provider(db)().outbound_hl7 == {
        ("zam_z01", "dead"): 1,
        ("zam_z02", "pending"): 1,
    }
    assert run_once(db, retry, now=now + timedelta(seconds=4)) == 1  # the next one goes
    assert messages(db)[1].status == "sent"

    # the operator sends the dead one again
    runner = CliRunner()
    env = {"PFI_DATABASE_URL": db.url}
    listed = runner.invoke(cli_app, ["outbound", "list", "--status", "dead"], env=env)
    assert listed.exit_code == 0 and f"{head.id:>8} dead" in listed.output
    assert "no ACK" in listed.output
    retried = runner.invoke(
        cli_app, ["outbound", "retry", str(head.id), "--reason", "DPI listener back"], env=env
    )
    assert retried.exit_code == 0, retried.output
    again = runner.invoke(
        cli_app, ["outbound", "retry", str(behind.id), "--reason", "DPI listener back"], env=env
    )
    assert again.exit_code == 1 and "it was sent" in again.output
    assert run_once(db, retry, now=now + timedelta(seconds=5)) == 1
    assert messages(db)[0].status == "sent"
    with db.reader() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "outbound.retry"))
    assert entry is not None and entry.reason == "DPI listener back"


def test_masking_oru_goes_once_no_delivery_of_the_version_is_in_flight(
    db: Database, router: Router, peer: MllpPeer
) -> None:
    ids = routed_report(db, router, "ORU-OUT-1", meta=transmission_meta(), way="transmission")
    settings = outbound(peer.port, oru_port=peer.port)
    record_outcome(db, ids["dmp"], "delivered")
    assert [m.kind for m in messages(db)] == []
    enqueue(db, ids["dmp"], settings)
    assert [m.kind for m in messages(db)] == ["zam_z01"]  # mss_pro still pending: no ORU
    record_outcome(db, ids["mss_pro"], "refused", refusal_reason="550 5.1.1 unknown user")
    enqueue(db, ids["mss_pro"], settings)
    enqueue(db, ids["mss_pro"], settings)
    assert [m.kind for m in messages(db)] == ["zam_z01", "zam_z02", "masking_oru"]
    assert run_once(db) == 3
    oru = parse_message(peer.received[2])
    assert oru.get("MSH-9.1") == "ORU"
    assert "550 5.1.1 unknown user" in oru.to_er7()


def test_engine_thread_sends_what_was_queued_when_notified(
    db: Database, router: Router, peer: MllpPeer
) -> None:
    ids = routed_report(db, router, "ZAM-OUT-5", meta=transmission_meta(), way="transmission")
    record_outcome(db, ids["dmp"], "delivered")
    sender = Hl7ReplySender(db, OutboundRetry(poll_interval_s=30))
    sender.start()
    try:
        enqueue(db, ids["dmp"], outbound(peer.port))
        sender.notify()
        deadline = utcnow() + timedelta(seconds=10)
        while not peer.received and utcnow() < deadline:
            time.sleep(0.05)
    finally:
        sender.stop()
    assert len(peer.received) == 1
    assert messages(db)[0].status == "sent"


@pytest.mark.slow
def test_running_engine_sends_queued_replies(db_url: str, tmp_path: Path, peer: MllpPeer) -> None:
    """The engine starts the sender where its workers run when `outbound:` names an
    endpoint: a reply queued in the store reaches the hospital's listener."""
    settings = engine_settings(tmp_path, db_url)
    settings.outbound = outbound(peer.port)
    with RunningEngine(settings) as running:
        assert running.engine is not None and running.engine.hl7_replies is not None
        db = running.engine.db
        with db.transaction() as s:
            s.add(
                OutboundMessage(
                    kind="zam_z01",
                    dedupe_key="engine-test",
                    host="127.0.0.1",
                    port=peer.port,
                    timeout_s=5.0,
                    control_id="P42",
                    description="test",
                    payload=b"MSH|^~\\&|PFI|CHU-X|SIL-Y|labo|20240308||ZAM^Z01^ZAM_Z01|P42|P|2.6\r",
                )
            )
        deadline = time.monotonic() + 15
        while not peer.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(peer.received) == 1
        deadline = time.monotonic() + 5
        while messages(db)[0].status != "sent" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert messages(db)[0].status == "sent"


def test_listener_that_is_down_is_a_connection_error_retried_later(
    db: Database, router: Router
) -> None:
    ids = routed_report(db, router, "ZAM-OUT-6", meta=transmission_meta(), way="transmission")
    record_outcome(db, ids["dmp"], "delivered")
    enqueue(db, ids["dmp"], outbound(free_port()))  # nobody listens there
    assert run_once(db) == 0
    (row,) = messages(db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "cannot connect" in (row.last_error or "")


def test_operator_lists_and_retries_a_dead_reply_over_http(db: Database, router: Router) -> None:
    ids = routed_report(db, router, "ZAM-OUT-7", meta=transmission_meta(), way="transmission")
    record_outcome(db, ids["dmp"], "delivered")
    enqueue(db, ids["dmp"], outbound(free_port()))
    assert run_once(db, OutboundRetry(max_attempts=1)) == 0
    (dead,) = messages(db)
    assert dead.status == "dead"
    with db.transaction() as s:
        viewer = accounts.add_user(s, "viewer-out", Role.viewer).token
        operator = accounts.add_user(s, "operator-out", Role.operator).token
    with ConsoleServer(db) as console:
        base = console.base_url + "/api/outbound"
        listed = httpx.get(
            base, params={"status": "dead"}, headers={"Authorization": f"Bearer {viewer}"}
        )
        assert listed.status_code == 200, listed.text
        (item,) = listed.json()["items"]
        assert item["id"] == dead.id and "cannot connect" in item["last_error"]
        url = f"{base}/{dead.id}/retry"
        body = {"reason": "DPI listener back"}
        assert httpx.post(url, json=body).status_code == 401
        assert (
            httpx.post(url, json=body, headers={"Authorization": f"Bearer {viewer}"}).status_code
            == 403
        )
        retried = httpx.post(url, json=body, headers={"Authorization": f"Bearer {operator}"})
        assert retried.status_code == 200, retried.text
        assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
        again = httpx.post(url, json=body, headers={"Authorization": f"Bearer {operator}"})
        assert again.status_code == 409
