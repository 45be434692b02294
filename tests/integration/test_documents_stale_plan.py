"""A plan made before the transaction and overtaken by the store is made again, in it."""

from __future__ import annotations

from pathlib import Path

from pfi.bus.stage import StageContext
from pfi.store import Database
from tests.support.documents import inline_stage, oru, stored_record, versions


def test_version_planned_on_a_stale_state_is_planned_again_in_the_transaction(
    db: Database, tmp_path: Path
) -> None:
    first = stored_record(db, oru("01_numeric_biochemistry", "FIRST"), 0)
    other = oru("01_numeric_biochemistry", "OTHER").replace(b"||4.89|", b"||5.01|")
    overtaking = stored_record(db, other, 1)
    stage = inline_stage(db, tmp_path)
    stage.prepare([first])  # plans version 1 of request F1001
    # meanwhile another report of the same request is stored (another consumer, a retry)
    with db.transaction() as s:
        inline_stage(db, tmp_path).handle(overtaking, StageContext(s))
    with db.transaction() as s:
        stage.handle(first, StageContext(s))
    found = versions(db)
    assert [(v["message_id"], v["version"], v["action"]) for v in found] == [
        (overtaking.value["message_id"], 1, "INITIAL"),
        (first.value["message_id"], 2, "REPLACEMENT"),
    ]
    assert found[1]["replaces_uid"] == found[0]["document_uid"]
    assert b'<relatedDocument typeCode="RPLC">' in found[1]["cda"]
