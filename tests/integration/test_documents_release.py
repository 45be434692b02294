"""Releasing an unmapped-code hold: from the version or from the hold, refused otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from pfi.bus import codec
from pfi.bus.stage import StageContext
from pfi.bus.topics import INBOUND
from pfi.documents.release import (
    ReleaseRefused,
    release_unmapped_hold,
    release_unmapped_hold_by_id,
)
from pfi.store import Database
from pfi.store.models import Hold, OutboxEvent
from tests.support.documents import inline_stage, oru, stored_record, versions


def held_version(db: Database, tmp_path: Path) -> tuple[int, int]:
    record = stored_record(db, oru("10_unmapped_code_hold"), 0)
    with db.transaction() as s:
        inline_stage(db, tmp_path).handle(record, StageContext(s))
    (version,) = versions(db)
    assert version["status"] == "held"
    with db.reader() as s:
        (hold,) = s.scalars(select(Hold))
        return version["id"], hold.id


def republished(db: Database) -> list[dict]:
    with db.reader() as s:
        rows = s.scalars(select(OutboxEvent).where(OutboxEvent.topic == INBOUND.name)).all()
        return [codec.decode(INBOUND.schema, r.value) for r in rows]


def test_release_by_hold_id_closes_the_hold_and_publishes_the_message_again(
    db: Database, tmp_path: Path
) -> None:
    version_id, hold_id = held_version(db, tmp_path)
    with db.transaction() as s:
        done = release_unmapped_hold_by_id(s, hold_id, actor="op", reason="mapped")
    assert (done.version_id, done.holds_released, done.keep_local) == (version_id, 1, False)
    with db.reader() as s:
        hold = s.get(Hold, hold_id)
        assert hold is not None and hold.released_by == "op" and hold.release_reason == "mapped"
    (again,) = republished(db)
    assert again["message_id"] == done.message_id and again["raw"].startswith(b"MSH|")
    with db.transaction() as s, pytest.raises(ReleaseRefused, match="already released"):
        release_unmapped_hold_by_id(s, hold_id, actor="op", reason="again")


def test_release_is_refused_without_reason_or_for_a_version_not_held(
    db: Database, tmp_path: Path
) -> None:
    version_id, _ = held_version(db, tmp_path)
    with db.transaction() as s, pytest.raises(ReleaseRefused, match="needs a reason"):
        release_unmapped_hold(s, version_id, actor="op", reason=" ")
    with db.transaction() as s, pytest.raises(ReleaseRefused, match="no document version"):
        release_unmapped_hold(s, version_id + 100, actor="op", reason="x")
    with db.transaction() as s, pytest.raises(ReleaseRefused, match="no hold"):
        release_unmapped_hold_by_id(s, 999, actor="op", reason="x")
    assert republished(db) == []
