"""A test stage that records every event it applies in a table of its own.

The table has no unique constraint on purpose: applying an event twice shows up as two
rows, which is what the exactly-once-in-effect tests look for.
"""

from __future__ import annotations

import time

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, func, select

from pfi.bus.stage import Record, StageContext, TransientError
from pfi.bus.topics import DOCUMENTS, INBOUND
from pfi.store.db import Database

metadata = MetaData()
applied = Table(
    "test_applied",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Integer, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("raw", LargeBinary),
)


def create_table(db: Database) -> None:
    metadata.create_all(db.engine)


def count(db: Database, stage: str = "counting") -> tuple[int, int]:
    """(rows, distinct message ids) applied by `stage`."""
    with db.reader() as s:
        rows, distinct = s.execute(
            select(func.count(), func.count(applied.c.message_id.distinct())).where(
                applied.c.stage == stage
            )
        ).one()
    return int(rows), int(distinct)


class CountingStage:
    """Applies inbound records; raises on raw == b'poison'; emits a document event."""

    input = INBOUND

    def __init__(
        self, name: str = "counting", delay_s: float = 0.0, fail_first: int = 0, emit: bool = False
    ) -> None:
        self.name = name
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.emit = emit

    def handle(self, record: Record, ctx: StageContext) -> None:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise TransientError("simulated outage")
        raw = record.value["raw"]
        if raw == b"poison":
            raise ValueError("poison record cannot be applied")
        if self.delay_s:
            time.sleep(self.delay_s)
        ctx.session.execute(
            applied.insert().values(message_id=record.value["message_id"], stage=self.name, raw=raw)
        )
        if self.emit:
            ctx.emit(
                DOCUMENTS,
                record.key,
                {
                    "document_id": record.value["message_id"],
                    "version_id": record.value["message_id"],
                    "set_id": f"set-{record.value['message_id']}",
                    "version": 1,
                    "action": "INITIAL",
                    "document_type": "TEST",
                    "source": record.value["source"],
                    "patient_key": record.value["patient_key"],
                    "message_id": record.value["message_id"],
                    "received_at": record.value["received_at"],
                },
            )


def inbound_record(message_id: int, raw: bytes = b"MSH|test") -> dict:
    from pfi.store.models import utcnow

    return {
        "message_id": message_id,
        "source": "SGL",
        "sender": "LAB|SITE",
        "control_id": str(message_id),
        "message_type": "ORU^R01",
        "version": "2.5",
        "charset": "8859/1",
        "patient_key": f"P{message_id % 17}",
        "received_at": utcnow(),
        "raw": raw,
    }
