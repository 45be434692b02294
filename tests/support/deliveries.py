"""Ledger rows as routing writes them and outcomes as the delivery stage records them,
for the tests of the operator tools and of the HL7 replies (the delivery stage itself is
built elsewhere; its writes are reproduced here with the fields its contract names)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pfi.bus import codec
from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS
from pfi.routes import load_routes
from pfi.routes.document_meta import DocumentMeta
from pfi.routes.router import DocumentEvent, Router
from pfi.store import Database
from pfi.store.models import DeadLetter, Delivery, Document, Routing, utcnow
from tests.support.routing_documents import add_patient, event, lab_meta, store_version

QUALIFIED_INS = "279035121518989"

LAB_ROUTES = """
routes:
  - name: lab
    from: {source: SGL, document: CR-BIO}
    to: [dmp, mss_prescriber]
  - name: anything else
    to: []
"""


def lab_router(directory: Path, routes: str = LAB_ROUTES) -> Router:
    path = directory / "routes.yaml"
    path.write_text(routes, encoding="utf-8")
    return Router(load_routes(path))


def routed_report(
    db: Database,
    router: Router,
    set_id: str,
    *,
    version: int = 1,
    action: str = "INITIAL",
    meta: DocumentMeta | None = None,
    way: str = "built",
    patient_id: int | None = None,
) -> dict[str, int]:
    """Route one lab report of a qualified patient: {"version": id, destination: id}."""
    with db.transaction() as s:
        if patient_id is None:
            patient_id = add_patient(s, ins=QUALIFIED_INS, qualified=True).id
        row = store_version(
            s,
            patient_id=patient_id,
            set_id=set_id,
            version=version,
            action=action,
            meta=meta or lab_meta(),
            way=way,
            emit=False,
        )
        document = s.get(Document, row.document_id)
        assert document is not None
        router.route_version(s, DocumentEvent.from_record(event(document, row)))
        rows = s.scalars(select(Delivery).where(Delivery.document_version_id == row.id))
        return {"version": row.id, "patient": patient_id, **{r.destination: r.id for r in rows}}


def record_outcome(db: Database, delivery_id: int, status: str, **fields: Any) -> None:
    """What the delivery stage writes for an outcome (attempts default to 1)."""
    now = utcnow()
    with db.transaction() as s:
        row = s.get(Delivery, delivery_id)
        assert row is not None
        row.status = status
        row.attempts = fields.pop("attempts", 1)
        row.updated_at = now
        if status == "delivered":
            row.delivered_at = now
            row.external_id = fields.pop("external_id", f"urn:uuid:{delivery_id}")
        if status == "failed":
            row.next_attempt_at = now + timedelta(minutes=5)
        for name, value in fields.items():
            setattr(row, name, value)


def dead_letter_delivery(db: Database, delivery_id: int, error: str) -> int:
    """The delivery stage gave up: the row is dead_letter and its request a dead letter."""
    with db.transaction() as s:
        row = s.get(Delivery, delivery_id)
        assert row is not None
        routing = s.scalar(
            select(Routing).where(Routing.document_version_id == row.document_version_id)
        )
        assert routing is not None
        version = row.document_version_id
        document_id = routing.document_id
        topic = DELIVER_DMP if row.destination == "dmp" else DELIVER_MSS
        record = {
            "delivery_id": row.id,
            "document_id": document_id,
            "version_id": version,
            "destination": row.destination,
            "action": "INITIAL",
            "patient_key": routing.patient_key,
            "attempt": 5,
            "received_at": routing.received_at,
        }
        row.status = "dead_letter"
        row.attempts = 5
        row.last_error = error
        dead = DeadLetter(
            stage="delivery",
            topic=topic.name,
            event_id=None,
            key=routing.patient_key.encode(),
            value=codec.encode(topic.schema, record),
            error_type="RetriesExhausted",
            error=error,
        )
        s.add(dead)
        s.flush()
        return dead.id
