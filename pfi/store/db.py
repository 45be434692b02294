"""Database engine set-up: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


class Database:
    """An engine plus a session factory, with the pragmas durability needs on SQLite.

    SQLite runs in WAL mode with `synchronous=FULL` by default so that a committed
    transaction survives kill -9 and power loss alike: the MLLP ACK waits for it.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        pool_size: int = 5,
        lock_poll_s: float = 0.002,
        checkpoint_in_background: bool = False,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.lock_poll_s = lock_poll_s
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            self.engine: Engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 0},
                pool_size=pool_size,
                max_overflow=10,
            )
            event.listen(
                self.engine,
                "connect",
                _sqlite_pragmas(
                    sqlite_synchronous, busy_ms=0, autocheckpoint=not checkpoint_in_background
                ),
            )
            # Writers take the lock when they begin, not when they first write: a
            # deferred transaction that read a snapshot and then writes gets SQLITE_BUSY
            # at once (busy_timeout cannot help), which would make every writer retry.
            # And they poll for it themselves: SQLite's busy handler sleeps up to 100 ms
            # between tries, so a writer that commits and begins again at once (a stage
            # working through a backlog) would starve the MLLP front door.
            event.listen(self.engine, "begin", self._begin_immediate)
            event.listen(self.engine, "commit", _report_long_lock)
            event.listen(self.engine, "rollback", _report_long_lock)
            self.read_engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(
                self.read_engine, "connect", _sqlite_pragmas(sqlite_synchronous, busy_ms=30000)
            )
            event.listen(self.read_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        else:
            self.engine = create_engine(
                url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True
            )
            self.read_engine = self.engine
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def _begin_immediate(self, conn: Connection) -> None:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                break
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.lock_poll_s)
        conn.info["locked_at"] = time.perf_counter()

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file without blocking anyone (PASSIVE).

        The front door's connections do not checkpoint on commit (that would put a file
        copy and an fsync between a message and its ACK); a background thread calls this.
        """
        if self.is_sqlite:
            with self.read_engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def let_other_writers_in(self) -> None:
        """After a write, on SQLite: a short pause so that a writer waiting for the lock
        (the front door) gets it before this one begins its next transaction."""
        if self.is_sqlite:
            time.sleep(0.003)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session that never blocks writers (SQLite: deferred snapshot)."""
        with self.read_sessions() as session:  # closing it rolls the snapshot back
            yield session

    def ping(self) -> bool:
        try:
            with self.read_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # readiness probe: any failure means "not ready"
            log.debug("database ping failed", exc_info=True)
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


#: A write transaction holding SQLite's only write lock longer than this is logged: it
#: is time the MLLP front door may have waited.
LONG_LOCK_S = float(os.environ.get("PFI_SQLITE_LONG_LOCK_S", "0.1"))


#: How long a writer waits for SQLite's write lock before giving up.
LOCK_TIMEOUT_S = 30.0


def _report_long_lock(conn: Connection) -> None:
    started = conn.info.pop("locked_at", None)
    if started is None or conn.info.get("long_lock_expected"):
        return
    held = time.perf_counter() - started
    if held > LONG_LOCK_S:
        ours = [
            f"{frame.filename.rsplit('/pfi/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in traceback.extract_stack()
            if "/pfi/" in frame.filename and not frame.filename.endswith("store/db.py")
        ]
        log.warning("SQLite write lock held %.0f ms by %s", held * 1000, " < ".join(ours[::-1]))


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(synchronous: str, *, busy_ms: int, autocheckpoint: bool = True):
    def on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see above)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    return on_connect
