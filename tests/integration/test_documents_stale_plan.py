"""A plan made before the transaction and overtaken by the store is made again, in it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pfi.bus import codec
from pfi.bus.stage import Record, StageContext
from pfi.bus.topics import INBOUND
from pfi.config.model import Settings
from pfi.documents.stage import DocumentsStage
from pfi.store import Database
from pfi.store.models import Message
from pfi.transforms.hl7 import parse_message
from tests.support.documents import SGL_MAPPING, oru, versions


def stored_record(db: Database, raw: bytes, offset: int) -> Record:
    header = parse_message(raw).header
    received = datetime(2024, 1, 4, 11, 0, tzinfo=UTC)
    with db.transaction() as s:
        message = Message(
            source="SGL",
            received_at=received,
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            control_id=header.control_id,
            message_type=header.message_type,
            version=header.version,
            charset=header.charset,
            status="accepted",
            ack_code="AA",
            raw=raw,
        )
        s.add(message)
        s.flush()
        value = {
            "message_id": message.id,
            "source": "SGL",
            "sender": header.sender,
            "control_id": header.control_id,
            "message_type": header.message_type,
            "version": header.version,
            "charset": header.charset,
            "patient_key": header.patient_key(),
            "received_at": received,
            "raw": raw,
        }
    encoded = codec.encode(INBOUND.schema, value)
    return Record(INBOUND, 0, offset, b"k", codec.decode(INBOUND.schema, encoded), encoded,
                  offset + 1, None)  # fmt: skip


def stage_for(db: Database, tmp_path: Path) -> DocumentsStage:
    settings = Settings()
    settings.engine.data_dir = tmp_path / "var"
    settings.documents.schematron = "off"
    settings.documents.validation_processes = 0
    settings.documents.sources["SGL"].loinc_mapping = SGL_MAPPING
    return DocumentsStage(settings, db)


def test_version_planned_on_a_stale_state_is_planned_again_in_the_transaction(
    db: Database, tmp_path: Path
) -> None:
    first = stored_record(db, oru("01_numeric_biochemistry", "FIRST"), 0)
    other = oru("01_numeric_biochemistry", "OTHER").replace(b"||4.89|", b"||5.01|")
    overtaking = stored_record(db, other, 1)
    stage = stage_for(db, tmp_path)
    stage.prepare([first])  # plans version 1 of request F1001
    # meanwhile another report of the same request is stored (another consumer, a retry)
    with db.transaction() as s:
        stage_for(db, tmp_path).handle(overtaking, StageContext(s))
    with db.transaction() as s:
        stage.handle(first, StageContext(s))
    found = versions(db)
    assert [(v["message_id"], v["version"], v["action"]) for v in found] == [
        (overtaking.value["message_id"], 1, "INITIAL"),
        (first.value["message_id"], 2, "REPLACEMENT"),
    ]
    assert found[1]["replaces_uid"] == found[0]["document_uid"]
    assert b'<relatedDocument typeCode="RPLC">' in found[1]["cda"]
