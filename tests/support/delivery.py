"""Driving a delivery stage against a real store and a real DMP simulator, without a broker.

Routing writes the ledger and queues delivery requests in the outbox for real (Router on
the store); `DeliveryDriver.run()` reads the queued requests of the stage's topic from
the outbox, as the relay would publish them (event id = outbox id), and runs the stage's
`prepare` then the runner's batch transaction on them, exactly as `StageRunner` does
after a poll. The engine-level tests (tests/e2e) go through MLLP and the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lxml import etree
from sqlalchemy import select

from pfi.bus import codec
from pfi.bus.outbox import add_to_outbox
from pfi.bus.stage import BatchOutcome, Record, StageRunner
from pfi.bus.topics import Topic, topic_named
from pfi.delivery.stage import DeliveryStage
from pfi.routes import load_routes
from pfi.routes.router import DocumentEvent, Router
from pfi.store import Database
from pfi.store.models import Delivery, DocumentVersion, OutboxEvent
from tests.support.routing_documents import add_patient, lab_meta, store_version

V3 = {"h": "urn:hl7-org:v3"}
DMP_ROUTES = """
routes:
  - name: lab to the DMP
    from: {source: SGL, document: CR-BIO}
    to: [dmp]
"""


def dmp_router(directory: Path) -> Router:
    path = directory / "routes.yaml"
    path.write_text(DMP_ROUTES, encoding="utf-8")
    return Router(load_routes(path))


def cda_ids(cda: bytes) -> tuple[str, str, int]:
    """(document uid root^ext, setId, version) of a CDA."""
    root = etree.fromstring(cda)

    def ii(tag: str) -> str:
        el = root.find(f"h:{tag}", V3)
        assert el is not None, tag
        ext = el.get("extension")
        return el.get("root", "") + (f"^{ext}" if ext else "")

    version = root.find("h:versionNumber", V3)
    return ii("id"), ii("setId"), int(version.get("value", "1")) if version is not None else 1


class Clock:
    """A clock the test moves (the stage and its scheduler read it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class DeliveryDriver:
    db: Database
    stage: DeliveryStage
    router: Router
    last_outbox_id: int = 0
    patients: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.runner = StageRunner(self.stage, self.db, lambda _g: None, "t", assign_partitions=True)  # type: ignore[arg-type]

    # -- ledger --------------------------------------------------------------------

    def patient(self, ins: str, *, qualified: bool = True) -> int:
        if ins not in self.patients:
            with self.db.transaction() as s:
                self.patients[ins] = add_patient(s, ins=ins, qualified=qualified).id
        return self.patients[ins]

    def route_cda(
        self,
        cda: bytes | None,
        *,
        ins: str,
        set_id: str | None = None,
        version: int | None = None,
        action: str = "INITIAL",
        document_uid: str | None = None,
    ) -> int:
        """Store a version of a CR-BIO (its real CDA) and route it; the version id."""
        pid = self.patient(ins)
        uid, cda_set, cda_version = cda_ids(cda) if cda is not None else ("", "", 1)
        with self.db.transaction() as s:
            row = store_version(
                s,
                patient_id=pid,
                set_id=set_id or cda_set,
                version=version or cda_version,
                action=action,
                meta=lab_meta(),
                emit=False,
                patient_key=f"patient-{pid}",
            )
            row.cda = cda
            row.document_uid = document_uid or uid
            s.flush()
            changes = self.router.route_version(
                s,
                DocumentEvent(
                    document_id=row.document_id,
                    version_id=row.id,
                    set_id=set_id or cda_set,
                    version=row.version,
                    action=action,
                    patient_key=f"patient-{pid}",
                    received_at=datetime.now(UTC) - timedelta(seconds=2),
                ),
            )
            assert changes is not None
            add_to_outbox(s, changes.outgoing)
            return row.id

    def change_masking(self, version_id: int, flags: dict[str, bool]) -> None:
        with self.db.transaction() as s:
            document_id = s.scalar(
                select(DocumentVersion.document_id).where(DocumentVersion.id == version_id)
            )
            assert document_id is not None
            change = self.router.change_masking(
                s, document_id, flags, actor="test:operator", reason="asked by the patient"
            )
            add_to_outbox(s, change.changes.outgoing)

    def rows(self, version_id: int) -> list[Delivery]:
        with self.db.reader() as s:
            rows = list(
                s.scalars(
                    select(Delivery)
                    .where(Delivery.document_version_id == version_id)
                    .order_by(Delivery.revision)
                )
            )
            for r in rows:
                s.expunge(r)
            return rows

    def row(self, version_id: int, revision: int = 0) -> Delivery:
        return next(r for r in self.rows(version_id) if r.revision == revision)

    # -- the stage -----------------------------------------------------------------

    def queued(self, topic: Topic | None = None) -> list[Record]:
        """Delivery requests the outbox holds for the stage's topic since the last call."""
        topic = topic or self.stage.input
        with self.db.reader() as s:
            rows = list(
                s.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.id > self.last_outbox_id, OutboxEvent.topic == topic.name)
                    .order_by(OutboxEvent.id)
                )
            )
            last = s.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1))
        self.last_outbox_id = max(self.last_outbox_id, last or 0)
        return [
            record_of(r.id, r.key, r.value, topic_named(r.topic), i) for i, r in enumerate(rows)
        ]

    def run(self, records: list[Record] | None = None) -> tuple[list[Record], BatchOutcome]:
        """One poll's worth: the stage's prepare, then the runner's batch transaction."""
        records = self.queued() if records is None else records
        if not records:
            return records, BatchOutcome()
        self.runner._prepare(records)  # the runner's own hook call (filters its inbox)
        return records, self.runner.process_batch(records)


def record_of(event_id: int, key: bytes, value: bytes, topic: Topic, offset: int) -> Record:
    return Record(
        topic=topic,
        partition=0,
        offset=event_id,
        key=key,
        value=codec.decode(topic.schema, value),
        raw_value=value,
        event_id=event_id,
        correlation_id=None,
    )


def redeliver(records: list[Record]) -> list[Record]:
    """The same records consumed again (a rebalance, a restart before the offset commit)."""
    return [
        Record(r.topic, r.partition, r.offset, r.key, dict(r.value), r.raw_value, r.event_id, None)
        for r in records
    ]
