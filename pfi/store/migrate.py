"""Applying Alembic migrations from code: at engine start and from `pfi migrate`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pfi.store.db import Database


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "pfi.store:migrations")
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`; a no-op when it is already there."""
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        info = conn.info  # the pooled connection's: cleared below, after the commit
        info["long_lock_expected"] = True  # schema changes take the time they take
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    info.pop("long_lock_expected", None)


def downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        info = conn.info
        info["long_lock_expected"] = True
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    info.pop("long_lock_expected", None)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()
