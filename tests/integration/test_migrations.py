"""Migrations upgrade and downgrade on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from pfi.store import Database
from pfi.store.migrate import current_revision, downgrade, head_revision, upgrade
from pfi.store.models import Base


def tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db)
    assert current_revision(db) == head_revision(db)
    assert tables(db) == set(Base.metadata.tables)
    downgrade(db, "base")
    assert current_revision(db) is None
    assert tables(db) == set()
    upgrade(db)
    assert tables(db) == set(Base.metadata.tables)
    db.dispose()


def test_each_revision_downgrades_one_step(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db)
    seen = []
    while (rev := current_revision(db)) is not None:
        seen.append(rev)
        downgrade(db, "-1")
    assert seen[0] == head_revision(db) and len(seen) >= 2
    db.dispose()


def test_models_and_migrations_describe_the_same_schema(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    db.dispose()


def test_upgrade_is_idempotent(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db)
    upgrade(db)
    assert current_revision(db) == head_revision(db)
    db.dispose()
