"""Allocating primary keys for bulk inserts, so that rows can be inserted with one
executemany and still be referred to (an outbox record names its message's id).

RETURNING with a guaranteed row order is not available on SQLite for an autoincrement
key: SQLAlchemy then falls back to one INSERT per row, which costs intake half its speed.
"""

from __future__ import annotations

from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` fresh ids for `table`, inside the caller's (write) transaction."""
    if count == 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": count},
        ).scalars()
        return sorted(int(r) for r in rows)
    # SQLite: the caller holds the write lock (BEGIN IMMEDIATE), nobody else can insert.
    start = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(int(start) + 1, int(start) + 1 + count))


def fast_insert(session: Session, table: Table, rows: list[dict[str, object]]) -> None:
    """INSERT many rows with one DBAPI executemany, converting values with each column's
    own bind processor (computed once per call), bypassing SQLAlchemy's per-row
    statement machinery. Used on the intake's hot path; every row has the same keys."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    columns = list(rows[0])
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in columns]
    if dialect.paramstyle == "qmark":
        marks = ", ".join("?" for _ in columns)
    else:  # pyformat / format (psycopg)
        marks = ", ".join("%s" for _ in columns)
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES ({marks})"
    )
    params = [
        tuple(
            proc(row[name]) if proc is not None else row[name]
            for name, proc in zip(columns, processors, strict=True)
        )
        for row in rows
    ]
    conn.exec_driver_sql(sql, params)
