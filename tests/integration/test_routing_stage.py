"""The routing stage in the running engine, on SQLite and PostgreSQL: DOCUMENTS events
through the broker to the delivery ledger and to DeliveryRequests on deliver.dmp /
deliver.mss (read back by a test consumer), identity releases by ADT over MLLP, hold
releases by HTTP (a real token), by the CLI and by an HL7 release trigger over MLLP.

The documents stage is not merged yet: the tests store `documents`/`document_versions`
rows and put the DOCUMENTS event in the outbox in the same transaction, as that stage
will; the engine's relay publishes it and the routing stage consumes it for real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import func, select
from typer.testing import CliRunner

from pfi.adapters.mllp import MllpClient
from pfi.bus import codec
from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS
from pfi.cli.app import app as cli_app
from pfi.console import accounts
from pfi.console.roles import Role
from pfi.store import Database
from pfi.store.models import (
    AuditEntry,
    Delivery,
    DocumentVersion,
    Hold,
    OutboxEvent,
    Patient,
    PatientIdentifier,
    ProcessedEvent,
)
from tests.support.databases import fresh_postgres_database, postgres_unavailable_reason, sqlite_url
from tests.support.hl7 import adt_a01, encode
from tests.support.inprocess import RunningEngine, engine_settings
from tests.support.routing_documents import PRESCRIBER, emit_event, lab_meta, store_version

pytestmark = pytest.mark.slow


def ins(n: int) -> str:
    """A distinct INS (NIR + its key) per test: the registry finds patients by INS too."""
    nir = 2790351215000 + n
    return f"{nir}{97 - nir % 97:02d}"


MASKING_SYSTEM = "1.2.250.1.213.1.1.4.13"

ROUTES = """
routes:
  - name: lab reports to DMP, prescriber, copies and patient
    from: {source: SGL, document: CR-BIO}
    to: [dmp, mss_prescriber, mss_copies, mss_patient]
  - name: imaging held for the announcement
    from: {source: RIS, document: CR-IMG}
    hold: {kind: announcement, released_by: [RIS announcement done]}
    to: [dmp, mss_prescriber, mss_patient]
  - name: genetics retained
    from: {source: DPI, code: 51969-4}
    hold: retain
    to: [dmp, mss_copies, mss_patient]
  - name: anything else
    to: []
release_triggers:
  - name: RIS announcement done
    message: ORM^O01
    source: RIS
    where: {ORC-1: SC, ORC-5: CM}
    document_key: {field: ORC-3.1, kind: filler_order_number}
    releases: announcement
"""


def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@dataclass
class DeliveryTap:
    """Reads deliver.dmp and deliver.mss from the beginning, as a delivery worker would."""

    bootstrap: str
    prefix: str
    seen: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    consumer: KafkaConsumer | None = None

    def start(self) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        parts = [
            TopicPartition(t.full_name(self.prefix), p)
            for t in (DELIVER_DMP, DELIVER_MSS)
            for p in sorted(self.consumer.partitions_for_topic(t.full_name(self.prefix)) or [])
        ]
        assert parts, "delivery topics have no partitions"
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)

    def poll(self) -> None:
        assert self.consumer is not None
        for tp, records in self.consumer.poll(timeout_ms=200).items():
            for r in records:
                value = codec.decode("delivery", r.value)
                self.seen[value["delivery_id"]] = (tp.topic.rsplit(".", 2)[-1], value)

    def wait(self, delivery_ids: set[int], timeout_s: float = 20.0) -> dict[int, tuple[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not delivery_ids <= set(self.seen) and time.monotonic() < deadline:
            self.poll()
        missing = delivery_ids - set(self.seen)
        assert not missing, f"no DeliveryRequest for deliveries {sorted(missing)}"
        return {i: self.seen[i] for i in delivery_ids}

    def none_of(self, delivery_ids: set[int], settle_s: float = 1.5) -> None:
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            self.poll()
        assert not delivery_ids & set(self.seen)


@dataclass
class Env:
    engine: RunningEngine
    db: Database
    base_url: str
    tap: DeliveryTap
    config_file: Path

    def adt(self, control_id: str, ipp: str, **kwargs: Any) -> None:
        with MllpClient("127.0.0.1", self.engine.port("DPI")) as client:
            ack = client.send(encode(adt_a01(control_id, ipp, **kwargs)))
        assert b"MSA|AA|" in ack, ack

    def patient_id(self, ipp: str, *, qualified: bool | None = None) -> int:
        def found() -> int | None:
            with self.db.reader() as s:
                p = s.scalar(
                    select(Patient)
                    .join(PatientIdentifier, PatientIdentifier.patient_id == Patient.id)
                    .where(PatientIdentifier.value == ipp)
                )
                if p is None or (qualified is not None and p.qualified is not qualified):
                    return None
                return p.id

        pid = wait_for(found)
        assert pid, f"identity stage did not record {ipp} (qualified={qualified})"
        return pid

    def document(self, *, patient_id: int, set_id: str, **kwargs: Any) -> int:
        """Store a version and its DOCUMENTS event; wait until routing applied it."""
        before = self.routed()
        with self.db.transaction() as s:
            version_id = store_version(s, patient_id=patient_id, set_id=set_id, **kwargs).id
        self.notify()
        assert wait_for(lambda: self.routed() > before), "routing stage did not apply the event"
        return version_id

    def routed(self) -> int:
        with self.db.reader() as s:
            return s.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.consumer == "routing")
            )

    def notify(self) -> None:
        assert self.engine.engine is not None and self.engine.engine.workers is not None
        self.engine.engine.workers.notify()

    def ledger(self, version_id: int) -> dict[str, Delivery]:
        with self.db.reader() as s:
            rows = s.scalars(
                select(Delivery)
                .where(Delivery.document_version_id == version_id)
                .order_by(Delivery.id)
            ).all()
        out = {}
        for r in rows:
            key = r.destination + (f":{r.recipient}" if r.destination == "mss_pro" else "")
            out[key + (f"#{r.revision}" if r.revision else "")] = r
        return out

    def token(self, role: Role) -> tuple[str, str]:
        name = f"u-{role}-{uuid.uuid4().hex[:8]}"
        with self.db.transaction() as s:
            return name, accounts.add_user(s, name, role).token

    def hold_ids(self, version_id: int, kind: str) -> list[int]:
        with self.db.reader() as s:
            return list(
                s.scalars(
                    select(Hold.id).where(
                        Hold.document_version_id == version_id,
                        Hold.kind == kind,
                        Hold.released_at.is_(None),
                    )
                )
            )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"routing-{request.param}")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(tmp)
        else:
            reason = postgres_unavailable_reason()
            if reason:
                pytest.skip(reason)
            url = stack.enter_context(fresh_postgres_database())
        routes_file = tmp / "routes.yaml"
        routes_file.write_text(ROUTES, encoding="utf-8")
        settings = engine_settings(tmp, url)
        settings.routing.routes_file = routes_file
        settings.sources["RIS"].allowed_message_types = ["ORU^R01", "MDM", "ADT", "ORM^O01"]
        config_file = tmp / "pfi.yaml"
        config_file.write_text(
            f"database: {{url: '{url}'}}\nrouting: {{routes_file: '{routes_file}'}}\n",
            encoding="utf-8",
        )
        running = stack.enter_context(RunningEngine(settings))
        assert running.engine is not None and running.engine.supervisor is not None
        tap = DeliveryTap(running.engine.supervisor.bootstrap, settings.kafka.topic_prefix)
        tap.start()
        stack.callback(lambda: tap.consumer.close() if tap.consumer else None)
        yield Env(
            running,
            running.engine.db,
            f"http://127.0.0.1:{settings.http.port}",
            tap,
            config_file,
        )


def test_lab_report_for_a_qualified_patient_reaches_the_delivery_topics(env: Env) -> None:
    env.adt("R-A1", "IPP-RA", ins=ins(1), status="VALI")
    pid = env.patient_id("IPP-RA", qualified=True)
    vid = env.document(patient_id=pid, set_id="RS-LAB-1", meta=lab_meta())
    rows = env.ledger(vid)
    assert {k: (r.status, r.operation) for k, r in rows.items()} == {
        "dmp": ("pending", "submit"),
        f"mss_pro:{PRESCRIBER}": ("pending", "submit"),
        "mss_pro:dr.copie@cabinet.mssante.fr": ("pending", "submit"),
        "mss_patient": ("pending", "submit"),
    }
    requests = env.tap.wait({r.id for r in rows.values()})
    assert requests[rows["dmp"].id][0] == "dmp"
    assert {requests[r.id][0] for k, r in rows.items() if k != "dmp"} == {"mss"}
    request = requests[rows["mss_patient"].id][1]
    assert request["destination"] == "mss_patient" and request["version_id"] == vid
    assert request["action"] == "INITIAL" and request["attempt"] == 0


def test_unqualified_patient_documents_wait_for_an_adt_that_qualifies_the_ins(env: Env) -> None:
    env.adt("R-B1", "IPP-RB", status="PROV")
    pid = env.patient_id("IPP-RB", qualified=False)
    vid = env.document(patient_id=pid, set_id="RS-LAB-2", meta=lab_meta())
    rows = env.ledger(vid)
    assert (rows["dmp"].status, rows["mss_patient"].status) == ("held", "held")
    assert {h for h in env.hold_ids(vid, "identity")} and len(env.hold_ids(vid, "identity")) == 2
    env.tap.none_of({rows["dmp"].id, rows["mss_patient"].id})

    env.adt("R-B2", "IPP-RB", trigger="A31", status="VALI", ins=ins(2), event_time="20240307080000")
    assert wait_for(lambda: env.ledger(vid)["dmp"].status == "pending"), "not released"
    rows = env.ledger(vid)
    assert rows["mss_patient"].status == "pending"
    assert rows["mss_patient"].recipient == f"{ins(2)}@patient.mssante.fr"
    env.tap.wait({rows["dmp"].id, rows["mss_patient"].id})
    with env.db.reader() as s:
        released_by = set(
            s.scalars(select(Hold.released_by).where(Hold.document_version_id == vid))
        )
    assert released_by == {"pfi:identity"}


def test_announcement_release_over_http_makes_the_dmp_copy_visible_and_mails_the_patient(
    env: Env,
) -> None:
    env.adt("R-C1", "IPP-RC", ins=ins(3), status="VALI")
    pid = env.patient_id("IPP-RC", qualified=True)
    vid = env.document(
        patient_id=pid,
        set_id="RS-IMG-1",
        source="RIS",
        document_type="CR-IMG",
        document_code="18748-4",
        meta=lab_meta(filler="RIS-100"),
    )
    rows = env.ledger(vid)
    assert rows["dmp"].status == "pending" and rows["mss_patient"].status == "held"
    assert ["INVISIBLE_PATIENT", MASKING_SYSTEM] in rows["dmp"].request["confidentiality_codes"]
    env.tap.wait({rows["dmp"].id})
    env.tap.none_of({rows["mss_patient"].id})
    # one on the patient mail that waits, one on the DMP copy that left invisible
    hold_ids = env.hold_ids(vid, "announcement")
    assert len(hold_ids) == 2
    hold_id = hold_ids[-1]

    _, viewer = env.token(Role.viewer)
    operator_name, operator = env.token(Role.operator)
    listed = httpx.get(
        f"{env.base_url}/api/holds",
        params={"open": "true", "kind": "announcement"},
        headers={"Authorization": f"Bearer {viewer}"},
        timeout=10,
    )
    assert listed.status_code == 200
    assert hold_id in [h["id"] for h in listed.json()["items"]]
    url = f"{env.base_url}/api/holds/{hold_id}/release"
    body = {"reason": "announcement consultation held on 2024-03-08"}
    forbidden = httpx.post(url, json=body, headers={"Authorization": f"Bearer {viewer}"})
    assert forbidden.status_code == 403
    assert httpx.post(url, json=body).status_code == 401
    released = httpx.post(
        url, json=body, headers={"Authorization": f"Bearer {operator}"}, timeout=10
    )
    assert released.status_code == 200, released.text
    result = released.json()
    assert result["hold"]["is_open"] is False and result["hold"]["released_by"] == operator_name
    rows = env.ledger(vid)
    update = rows["dmp#1"]
    assert (update.operation, update.status) == ("update_masking", "pending")
    assert result["effects"]["masking_updates"] == [update.id]
    assert ["INVISIBLE_PATIENT", MASKING_SYSTEM] not in update.request["confidentiality_codes"]
    assert rows["mss_patient"].status == "pending"
    env.tap.wait({update.id, rows["mss_patient"].id})
    again = httpx.post(url, json=body, headers={"Authorization": f"Bearer {operator}"})
    assert again.status_code == 409
    assert env.hold_ids(vid, "announcement") == []
    with env.db.reader() as s:
        entry = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "hold.release", AuditEntry.target_id == str(hold_id)
            )
        )
    assert entry is not None and entry.actor == operator_name
    assert entry.reason == body["reason"]


def test_release_trigger_over_mllp_releases_the_announcement_it_names(env: Env) -> None:
    env.adt("R-D1", "IPP-RD", ins=ins(4), status="VALI")
    pid = env.patient_id("IPP-RD", qualified=True)
    vid = env.document(
        patient_id=pid,
        set_id="RS-IMG-2",
        source="RIS",
        document_type="CR-IMG",
        document_code="18748-4",
        meta=lab_meta(filler="RIS-777"),
    )
    assert env.ledger(vid)["mss_patient"].status == "held"
    orm = (
        "MSH|^~\\&|RIS|CHU-X|PFI|CHU-X|20240308100000||ORM^O01^ORM_O01|R-D2|P|2.5|||||FRA|"
        "UNICODE UTF-8\r"
        "PID|1||IPP-RD^^^CHU-X&1.2.250.1.999.1&ISO^PI||DUPONT^JEAN\r"
        "ORC|SC|PL-1|RIS-777||CM\r"
    )
    with MllpClient("127.0.0.1", env.engine.port("RIS")) as client:
        assert b"MSA|AA|" in client.send(orm.encode())
    assert wait_for(lambda: env.ledger(vid)["mss_patient"].status == "pending", 30)
    with env.db.reader() as s:
        hold = s.scalar(select(Hold).where(Hold.document_version_id == vid))
    assert hold is not None and hold.released_by == "pfi:hl7:RIS announcement done"
    assert "R-D2" in (hold.release_reason or "")
    env.tap.wait({env.ledger(vid)["mss_patient"].id})


def test_retained_document_sends_nothing_until_released_by_the_cli(env: Env) -> None:
    env.adt("R-E1", "IPP-RE", ins=ins(5), status="VALI")
    pid = env.patient_id("IPP-RE", qualified=True)
    vid = env.document(
        patient_id=pid,
        set_id="RS-GEN-1",
        source="DPI",
        document_type="OTHER",
        document_code="51969-4",
        meta=lab_meta(),
    )
    rows = env.ledger(vid)
    assert {r.status for r in rows.values()} == {"held"}
    with env.db.reader() as s:
        published = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.topic.in_(["deliver.dmp", "deliver.mss"]))
            .where(OutboxEvent.key == f"patient-{pid}".encode())
        )
    assert published == 0
    env.tap.none_of({r.id for r in rows.values()})
    hold_id = env.hold_ids(vid, "retain")[0]

    listed = CliRunner().invoke(
        cli_app, ["holds", "list", "--open", "--kind", "retain", "--config", str(env.config_file)]
    )
    assert listed.exit_code == 0, listed.output
    assert f"{hold_id:>8} retain" in listed.output
    released = CliRunner().invoke(
        cli_app,
        [
            "holds",
            "release",
            str(hold_id),
            "--reason",
            "geneticist consultation done",
            "--config",
            str(env.config_file),
        ],
    )
    assert released.exit_code == 0, released.output
    assert "3 delivery(ies) published" in released.output
    env.notify()
    rows = env.ledger(vid)
    assert {r.status for r in rows.values()} == {"pending"}
    env.tap.wait({r.id for r in rows.values()})


def test_patient_opposition_refuses_the_dmp_with_its_reason(env: Env) -> None:
    zfa = "ZFA|ACTIF|20240309111154|||||||IO|20240309111154\r"
    env.adt("R-F1", "IPP-RF", ins=ins(6), status="VALI", extra_segments=zfa)
    pid = env.patient_id("IPP-RF", qualified=True)
    vid = env.document(patient_id=pid, set_id="RS-LAB-3", meta=lab_meta())
    rows = env.ledger(vid)
    assert (rows["dmp"].status, rows["dmp"].refusal_reason) == (
        "refused",
        "refused by patient (opposition)",
    )
    assert rows["mss_patient"].status == "pending"
    env.tap.none_of({rows["dmp"].id})


def test_deletion_withdraws_where_the_earlier_version_went(env: Env) -> None:
    env.adt("R-G1", "IPP-RG", ins=ins(7), status="VALI")
    pid = env.patient_id("IPP-RG", qualified=True)
    v1 = env.document(patient_id=pid, set_id="RS-LAB-4", meta=lab_meta())
    first = env.ledger(v1)
    with env.db.transaction() as s:  # what the delivery workers will do
        for row in s.scalars(select(Delivery).where(Delivery.document_version_id == v1)):
            row.status = "delivered"
    v2 = env.document(
        patient_id=pid, set_id="RS-LAB-4", version=2, action="DELETION", meta=lab_meta()
    )
    second = env.ledger(v2)
    assert {k: (r.status, r.operation) for k, r in second.items()} == {
        k: ("pending", "delete") for k in first
    }
    requests = env.tap.wait({r.id for r in second.values()})
    assert {v["action"] for _, v in requests.values()} == {"DELETION"}


def test_the_same_document_event_twice_creates_no_duplicate_ledger_rows(env: Env) -> None:
    env.adt("R-H1", "IPP-RH", ins=ins(8), status="VALI")
    pid = env.patient_id("IPP-RH", qualified=True)
    vid = env.document(patient_id=pid, set_id="RS-LAB-5", meta=lab_meta())
    before = env.routed()
    with env.db.transaction() as s:  # the documents stage emitting again (new event id)
        version = s.get(DocumentVersion, vid)
        assert version is not None
        emit_event(s, version)
    env.notify()
    assert wait_for(lambda: env.routed() > before)
    rows = env.ledger(vid)
    assert len(rows) == 4
    env.tap.wait({r.id for r in rows.values()})
    with env.db.reader() as s:
        published = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.topic.in_(["deliver.dmp", "deliver.mss"]))
            .where(OutboxEvent.key == f"patient-{pid}".encode())
        )
    assert published == 4
