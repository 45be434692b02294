"""The DMP delivery stage against a real store (SQLite and PostgreSQL) and the real DMP
simulator on loopback: what each ledger row ends as, and what the simulator holds."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import Any

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from pfi.bus import codec
from pfi.bus.topics import DEADLETTER, topic_named
from pfi.delivery.breaker import BreakerState
from pfi.delivery.jobs import Request, plan_deliveries
from pfi.delivery.retry import delivery_records, requeue
from pfi.delivery.sender import DeliveryJob, DeliverySender, SendResult
from pfi.simulators.dmp import DmpSimulatorServer
from pfi.store.models import AuditEntry, DeadLetter, Delivery
from pfi.transforms.xds.xades import SIGNATURE_CLASS
from tests.support.delivery import Clock, cda_ids, record_of, redeliver
from tests.support.dmp_fixtures import CR_BIO, CR_BIO_MICRO_V1, CR_BIO_MICRO_V2, TEST_INS

from .conftest import DriverFactory

MASKING_SYSTEM = "1.2.250.1.213.1.1.4.13"
#: a second patient of the ledger (its documents are another group of the batch)
OTHER_INS = "279035121500183"


def documents(sim: DmpSimulatorServer, ins: str = TEST_INS) -> list[dict[str, Any]]:
    response = httpx.get(f"{sim.url}/_sim/documents", params={"ins": ins}, timeout=5)
    response.raise_for_status()
    return [d for d in response.json() if d["classCode"] != SIGNATURE_CLASS.code]


def stats(sim: DmpSimulatorServer) -> dict[str, Any]:
    return httpx.get(f"{sim.url}/_sim/stats", timeout=5).json()


def fail(sim: DmpSimulatorServer, **plan: Any) -> None:
    httpx.post(f"{sim.url}/_sim/fail", json=plan, timeout=5).raise_for_status()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_submission_ends_delivered_with_the_dmp_entry_uuid(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver()
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)

    records, outcome = driver.run()

    assert len(records) == 1 and outcome.applied == 1
    row = driver.row(vid)
    assert row.status == "delivered" and row.attempts == 1
    assert row.delivered_at is not None and row.last_error is None
    held = documents(sim)
    assert [d["entryUUID"] for d in held] == [row.external_id]
    assert held[0]["status"] == "Approved"
    assert row.request is not None
    assert row.request["result"]["entry"]["entry_uuid"] == row.external_id
    assert row.request["result"]["metadata_version"] == 1


def test_replacement_replaces_the_delivered_entry_with_rplc(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver()
    v1 = driver.route_cda(CR_BIO_MICRO_V1.read_bytes(), ins=TEST_INS)
    driver.run()
    v2 = driver.route_cda(CR_BIO_MICRO_V2.read_bytes(), ins=TEST_INS, action="REPLACEMENT")

    driver.run()

    first, second = driver.row(v1), driver.row(v2)
    assert second.operation == "replace" and second.status == "delivered"
    assert second.request is not None and second.request["result"]["replaces"] == first.external_id
    by_uuid = {d["entryUUID"]: d for d in documents(sim)}
    assert by_uuid[first.external_id]["status"] == "Deprecated"
    assert by_uuid[first.external_id]["replacedBy"] == second.external_id
    assert by_uuid[second.external_id]["status"] == "Approved"
    assert by_uuid[second.external_id]["version"] == "2"


def test_withdrawal_deletes_the_entry_in_the_dmp(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver()
    cda = CR_BIO.read_bytes()
    v1 = driver.route_cda(cda, ins=TEST_INS)
    driver.run()
    v2 = driver.route_cda(
        None, ins=TEST_INS, set_id=driver_set_id(cda), version=2, action="DELETION"
    )

    driver.run()

    deletion = driver.row(v2)
    assert deletion.operation == "delete" and deletion.status == "delivered"
    assert deletion.external_id == driver.row(v1).external_id
    assert [d["status"] for d in documents(sim)] == ["Deleted"]


def test_masking_update_after_delivery_reaches_the_dmp_as_iti57(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver()
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    driver.run()
    driver.change_masking(vid, {"MASQUE_PS": True})

    driver.run()

    update = driver.row(vid, revision=1)
    assert update.operation == "update_masking" and update.status == "delivered"
    current = [d for d in documents(sim) if d["status"] == "Approved"]
    assert [d["entryUUID"] for d in current] == [update.external_id]
    assert "MASQUE_PS" in current[0]["confidentialityCodes"]
    assert current[0]["metadataVersion"] == 2
    # and back: the second update follows the first one's metadata version
    driver.change_masking(vid, {"MASQUE_PS": False})
    driver.run()
    again = driver.row(vid, revision=2)
    assert again.status == "delivered", again.last_error or again.refusal_reason
    current = [d for d in documents(sim) if d["status"] == "Approved"]
    assert current[0]["metadataVersion"] == 3
    assert "MASQUE_PS" not in current[0]["confidentialityCodes"]


def test_masking_update_before_the_submission_left_waits_for_it(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    driver = make_driver(max_attempts=5)
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    submission = driver.queued()
    driver.change_masking(vid, {"INVISIBLE_PATIENT": True})
    update = driver.queued()

    driver.run(update)  # the update comes first: its submission has not left

    waiting = driver.row(vid, revision=1)
    assert waiting.status == "failed" and waiting.attempts == 0
    assert waiting.next_attempt_at is not None and "waiting for delivery" in (
        waiting.last_error or ""
    )
    driver.run(submission)
    clock.advance(60)
    assert driver.stage.scheduler.run_once() == [waiting.id]
    driver.run()
    assert driver.row(vid, revision=1).status == "delivered"
    assert stats(sim)["requests"] == {"iti41": 1, "iti57": 1}


def test_refusal_keeps_the_dmp_reason_is_audited_and_is_not_retried(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    httpx.post(f"{sim.url}/_sim/patients/{TEST_INS}/close", timeout=5).raise_for_status()
    driver = make_driver()
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)

    driver.run()

    row = driver.row(vid)
    assert row.status == "refused" and row.next_attempt_at is None
    assert row.refusal_reason is not None
    assert "XDSUnknownPatientId" in row.refusal_reason and "closed" in row.refusal_reason
    with driver.db.reader() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "delivery.refused")).all()
    assert [(a.target_id, a.reason) for a in audit] == [(str(row.id), row.refusal_reason)]
    clock.advance(86400)
    assert driver.stage.scheduler.run_once() == []
    assert stats(sim)["requests"]["iti41"] == 1


def test_dmp_down_then_back_fails_with_a_next_attempt_then_delivers(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    driver = make_driver(url=down)
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)

    driver.run()

    row = driver.row(vid)
    assert row.status == "failed" and row.attempts == 1
    assert "cannot reach" in (row.last_error or "")
    assert row.next_attempt_at is not None
    delay = (row.next_attempt_at - clock.now).total_seconds()
    assert 8 <= delay <= 12  # backoff_base_s 10 ± 20 % jitter
    assert driver.stage.scheduler.run_once() == []  # not due yet
    # the DMP is back (a stage on the same store, pointing at the running simulator)
    back = make_driver()
    back.last_outbox_id = driver.last_outbox_id
    clock.advance(delay + 1)
    assert back.stage.scheduler.run_once() == [row.id]
    records, _ = back.run()
    assert [r.value["attempt"] for r in records] == [1]
    row = back.row(vid)
    assert row.status == "delivered" and row.attempts == 2
    assert [d["entryUUID"] for d in documents(sim)] == [row.external_id]


def test_breaker_opens_after_consecutive_failures_and_stops_calling(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    fail(sim, mode="http_500", count=10, status_code=503)
    driver = make_driver(breaker_failures=3, concurrency=1)
    cdas = [with_uid(CR_BIO.read_bytes(), f"1.2.250.1.999.77.{i}") for i in range(5)]
    vids = [driver.route_cda(c, ins=TEST_INS, set_id=f"SET-{i}") for i, c in enumerate(cdas)]

    driver.run()

    rows = [driver.row(v) for v in vids]
    assert [r.attempts for r in rows] == [1, 1, 1, 0, 0]
    assert all(r.status == "failed" and r.next_attempt_at is not None for r in rows)
    assert "circuit open" in (rows[3].last_error or "")
    assert driver.stage.breakers["dmp"].state is BreakerState.OPEN
    assert stats(sim)["requests"]["iti41"] == 3
    # after the cool-down one trial call goes; the DMP answers again: closed
    httpx.post(f"{sim.url}/_sim/reset", timeout=5).raise_for_status()
    clock.advance(3600)
    driver.stage.scheduler.run_once()
    driver.run()
    assert [driver.row(v).status for v in vids] == ["delivered"] * 5
    assert driver.stage.breakers["dmp"].state is BreakerState.CLOSED


def test_dead_letter_after_max_attempts_in_table_and_topic(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    fail(sim, mode="soap_fault", count=10)
    driver = make_driver(max_attempts=3, breaker_failures=100)
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)

    for _ in range(3):
        driver.run()
        clock.advance(3600)
        driver.stage.scheduler.run_once()

    row = driver.row(vid)
    assert row.status == "dead_letter" and row.attempts == 3
    assert "SOAP fault Receiver" in (row.last_error or "")
    with driver.db.reader() as s:
        dead = s.scalars(select(DeadLetter)).all()
    assert [(d.stage, d.error_type) for d in dead] == [
        ("delivery_dmp", "DeliveryAttemptsExhausted")
    ]
    assert f"delivery {row.id}" in dead[0].error and "3 times" in dead[0].error
    assert driver.queued(topic=DEADLETTER)  # on the dead-letter topic too
    assert stats(sim)["requests"]["iti41"] == 3
    # the replay path: the operator sends it again once the DMP is fine
    httpx.post(f"{sim.url}/_sim/reset", timeout=5).raise_for_status()
    with driver.db.transaction() as s:
        dead_row = s.get(Delivery, row.id)
        assert dead_row is not None
        requeue(s, dead_row, driver.stage.input)
    driver.run()
    replayed = driver.row(vid)
    assert replayed.status == "delivered" and replayed.attempts == 1


def test_redelivered_request_after_a_completed_send_does_nothing(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver()
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    records, _ = driver.run()
    delivered = driver.row(vid)

    _, again = driver.run(redeliver(records))  # same event: the inbox skips it
    with driver.db.reader() as s:  # a new event for the same row (a replayed request)
        row = s.get(Delivery, delivered.id)
        assert row is not None
        fresh = delivery_records(s, [row], driver.stage.input)[0]
        last = s.scalar(select(func.max(Delivery.id)))
    raw = codec.encode(fresh.topic.schema, fresh.record)
    _, replayed = driver.run([record_of(10_000_000 + (last or 0), fresh.key, raw, fresh.topic, 0)])

    assert again.skipped == 1 and replayed.applied == 1
    assert driver.row(vid).external_id == delivered.external_id
    assert driver.row(vid).attempts == 1
    assert stats(sim)["requests"]["iti41"] == 1 and len(documents(sim)) == 1


def test_send_interrupted_mid_call_is_resent_and_ends_delivered_once(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    """A kill -9 during the call: the row stays `sending`, the request is consumed again
    (its offset was never committed) and the DMP already has the document."""
    driver = make_driver()
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    records = driver.queued()
    # what the killed process did: marked the row sending, and the DMP registered it
    with driver.db.transaction() as s:
        row = s.get(Delivery, driver.row(vid).id)
        assert row is not None
        row.status = "sending"
    with driver.db.reader() as s:
        job = plan_deliveries(s, [Request(row.id)])[row.id].job
    assert job is not None and job.resumed
    sender = driver.stage.sender_for("dmp")
    first = sender.send(job)
    assert first.status.value == "delivered"

    driver.run(records)  # the restart consumes the request again

    row2 = driver.row(vid)
    assert row2.status == "delivered", row2.refusal_reason
    assert row2.external_id == first.external_id
    assert row2.request is not None and "earlier attempt" in row2.request["result"]["note"]
    assert len(documents(sim)) == 1 and stats(sim)["requests"]["iti41"] == 2


def test_older_version_still_pending_is_superseded_by_the_newer_one(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver()
    v1 = driver.route_cda(CR_BIO_MICRO_V1.read_bytes(), ins=TEST_INS)
    v2 = driver.route_cda(CR_BIO_MICRO_V2.read_bytes(), ins=TEST_INS, action="REPLACEMENT")

    driver.run()  # both requests in one poll (a backlog)

    assert driver.row(v1).status == "superseded"
    assert "superseded by version 2" in (driver.row(v1).refusal_reason or "")
    second = driver.row(v2)
    assert second.status == "delivered"
    assert second.request is not None and "new document" in second.request["result"]["note"]
    assert [(d["version"], d["status"]) for d in documents(sim)] == [("2", "Approved")]


def with_uid(cda: bytes, uid: str) -> bytes:
    """Another document (its own uniqueId) with the same content."""
    return cda.replace(
        b'<id root="1.2.250.1.213.1.1.1.55.2024.9.1"/>', f'<id root="{uid}"/>'.encode(), 1
    )


def driver_set_id(cda: bytes) -> str:
    return cda_ids(cda)[1]


def test_pending_row_whose_request_was_lost_is_queued_again_when_stale(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    driver = make_driver(stale_after_s=900)
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    lost = driver.queued()  # published to a topic nobody consumed: never handled
    assert len(lost) == 1

    clock.advance(600)
    assert driver.stage.scheduler.run_once() == []  # not stale yet
    clock.advance(600)
    assert driver.stage.scheduler.run_once() == [driver.row(vid).id]
    driver.run()

    assert driver.row(vid).status == "delivered"
    assert len(documents(sim)) == 1


def test_outcome_hooks_run_with_the_ended_row_and_a_failing_hook_fails_nothing(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    seen: list[tuple[int, str, str]] = []

    def record(session: Session, row: Delivery, result: SendResult | None) -> None:
        seen.append((row.id, row.status, result.reason if result else ""))
        session.add(
            AuditEntry(
                actor="test", action="hook.ran", target_type="delivery", target_id=str(row.id)
            )
        )

    def broken(session: Session, row: Delivery, result: SendResult | None) -> None:
        raise RuntimeError("a bug in an acknowledgement builder")

    driver = make_driver(on_outcome=[broken, record])
    accepted = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    driver.run()
    httpx.post(f"{sim.url}/_sim/patients/{TEST_INS}/close", timeout=5).raise_for_status()
    refused = driver.route_cda(
        with_uid(CR_BIO.read_bytes(), "1.2.250.1.999.77.99"), ins=TEST_INS, set_id="OTHER"
    )
    driver.run()

    ok, no = driver.row(accepted), driver.row(refused)
    assert (ok.status, no.status) == ("delivered", "refused")
    assert seen[0] == (ok.id, "delivered", "")
    assert seen[1][:2] == (no.id, "refused") and "XDSUnknownPatientId" in seen[1][2]
    with driver.db.reader() as s:
        ran = s.scalars(select(AuditEntry.target_id).where(AuditEntry.action == "hook.ran")).all()
    assert sorted(ran) == sorted([str(ok.id), str(no.id)])  # committed with the outcome


def test_outcomes_of_a_batch_commit_in_one_transaction(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver(concurrency=4)
    cda = CR_BIO.read_bytes()
    versions = [
        driver.route_cda(with_uid(cda, f"1.2.250.1.999.77.{n}"), ins=ins, set_id=f"SET-{n}")
        for n, ins in enumerate([TEST_INS, TEST_INS, OTHER_INS, OTHER_INS, TEST_INS])
    ]
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(driver.db.engine, "commit", committed)
    try:
        records, outcome = driver.run()
    finally:
        event.remove(driver.db.engine, "commit", committed)

    assert len(records) == 5 and outcome.applied == 5
    assert [driver.row(v).status for v in versions] == ["delivered"] * 5
    # planning, the five outcomes, the runner's batch (was 1 + 5 + 1)
    assert len(commits) == 3


@dataclass
class UnwritableAnswerFor:
    """Passes calls to the DMP sender; for one setId, the answer carries a detail that
    cannot be stored (a bug in a sender)."""

    inner: DeliverySender
    set_id: str

    @property
    def destinations(self) -> frozenset[str]:
        return self.inner.destinations

    def send(self, job: DeliveryJob) -> SendResult:
        result = self.inner.send(job)
        if job.document.set_id == self.set_id:
            return replace(result, detail={"unstorable": object()})
        return result

    def close(self) -> None:
        self.inner.close()


def test_an_outcome_that_cannot_be_written_fails_alone_and_the_batch_is_written(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    driver = make_driver(
        concurrency=2, wrap_sender=lambda inner: UnwritableAnswerFor(inner, "SET-BAD")
    )
    cda = CR_BIO.read_bytes()
    good = driver.route_cda(with_uid(cda, "1.2.250.1.999.78.1"), ins=TEST_INS, set_id="SET-OK")
    bad = driver.route_cda(with_uid(cda, "1.2.250.1.999.78.2"), ins=TEST_INS, set_id="SET-BAD")
    other = driver.route_cda(with_uid(cda, "1.2.250.1.999.78.3"), ins=OTHER_INS, set_id="SET-2")

    records, _ = driver.run()

    assert len(records) == 3
    assert driver.row(good).status == "delivered" and driver.row(other).status == "delivered"
    failed = driver.row(bad)
    assert failed.status == "dead_letter" and "unstorable" not in str(failed.request)
    assert "not JSON serializable" in (failed.last_error or "")
    with driver.db.reader() as s:
        dead = s.scalar(select(func.count()).select_from(DeadLetter))
    assert dead == 1


def test_attempts_that_all_died_with_the_worker_end_in_the_dead_letters_uncalled(
    make_driver: DriverFactory, sim: DmpSimulatorServer
) -> None:
    """A document whose every send killed the worker (the row was marked sending each
    time, the outcome never written) stops at max_attempts instead of looping."""
    driver = make_driver(max_attempts=3)
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    records = driver.queued()
    with driver.db.transaction() as s:
        row = s.get(Delivery, driver.row(vid).id)
        assert row is not None
        row.status, row.attempts = "sending", 3

    driver.run(records)

    ended = driver.row(vid)
    assert ended.status == "dead_letter" and "ended without an outcome" in (ended.last_error or "")
    assert stats(sim)["requests"]["iti41"] == 0
    with driver.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 1


def test_dead_letter_replayed_as_a_new_event_sends_again_and_is_audited(
    make_driver: DriverFactory, sim: DmpSimulatorServer, clock: Clock
) -> None:
    fail(sim, mode="http_500", count=2)
    driver = make_driver(max_attempts=2, breaker_failures=100)
    vid = driver.route_cda(CR_BIO.read_bytes(), ins=TEST_INS)
    driver.run()
    clock.advance(3600)
    driver.stage.scheduler.run_once()
    driver.run()
    assert driver.row(vid).status == "dead_letter"
    with driver.db.reader() as s:
        dead = s.scalars(select(DeadLetter)).one()
        key, value, topic = dead.key, dead.value, dead.topic

    # what a replay of the dead letter does: its original record, published again
    replay = record_of(10_000_000 + dead.id, key, value, topic_named(topic), 0)
    driver.run([replay])

    row = driver.row(vid)
    assert row.status == "delivered" and row.attempts == 1
    assert len(documents(sim)) == 1
    with driver.db.reader() as s:
        audit = s.scalars(select(AuditEntry.action).where(AuditEntry.target_id == str(row.id)))
        assert "delivery.replay" in list(audit)
    _, again = driver.run(redeliver([replay]))  # the same replay event again: nothing
    assert again.skipped == 1 and stats(sim)["requests"]["iti41"] == 3
