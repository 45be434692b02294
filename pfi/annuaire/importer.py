"""Loading an annuaire extract as a new generation, then switching to it at once.

The real extract has hundreds of thousands of lines: it is streamed (never grouped in
memory), inserted in batches with one executemany each, and committed batch by batch
under a generation that readers do not see yet, so that SQLite's single write lock is
held for milliseconds at a time rather than for the whole load. One short transaction
then makes the new generation the active one; the old generation's rows are deleted
afterwards. A failed load marks its generation failed and leaves the active one alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from pfi.store import Database
from pfi.store.ids import fast_insert
from pfi.store.models import AnnuaireImport, AnnuaireMailbox, AnnuaireProfessional, utcnow
from pfi.transforms.mssante.annuaire import (
    AnnuaireLine,
    AnnuaireProblem,
    MssMailbox,
    iter_annuaire,
)

log = logging.getLogger(__name__)

#: Problems kept in the import row and printed; the count covers them all.
PROBLEM_SAMPLE = 50
#: Another import loading for less than this is taken as running (not as a crash left over).
RUNNING_FOR = timedelta(hours=2)


class AnnuaireImportBusy(RuntimeError):
    """Another import is loading: two at once would delete each other's rows."""


@dataclass
class ImportReport:
    import_id: int
    lines_read: int = 0
    professionals: int = 0
    mailboxes: int = 0
    duplicates: int = 0  # the same mailbox of the same professional listed again
    problems: int = 0
    problem_sample: list[str] = field(default_factory=list)
    replaced_import_id: int | None = None


def import_annuaire(
    db: Database,
    lines: Iterable[str],
    *,
    source: str = "",
    batch_size: int = 5000,
    separator: str = "|",
    progress: Callable[[ImportReport], None] | None = None,
    force: bool = False,
) -> ImportReport:
    """Load `lines` (the extract, header first) and make it the active annuaire.

    Raises AnnuaireFormatError (header) before anything is written, AnnuaireImportBusy
    while another import loads (unless `force`: a crash left it loading); any other
    error marks the generation failed and propagates, the previous annuaire staying
    active.
    """
    rows = iter_annuaire(lines, separator)
    first = next(rows, None)  # reads and checks the header
    if not force:
        with db.reader() as session:
            running = session.scalar(
                select(AnnuaireImport).where(
                    AnnuaireImport.status == "loading",
                    AnnuaireImport.started_at > utcnow() - RUNNING_FOR,
                )
            )
            if running is not None:
                raise AnnuaireImportBusy(
                    f"import {running.id} of {running.source or '?'} is loading since "
                    f"{running.started_at:%Y-%m-%d %H:%M}Z; if it was interrupted, import "
                    "again with --force"
                )
    _drop_inactive_generations(db)
    with db.transaction() as session:
        generation = AnnuaireImport(source=source[:500], status="loading", active=False)
        session.add(generation)
        session.flush()
        report = ImportReport(generation.id)
    try:
        _load(db, report, first, rows, batch_size, progress)
        with db.transaction() as session:
            report.replaced_import_id = session.scalar(
                select(AnnuaireImport.id).where(AnnuaireImport.active.is_(True))
            )
            session.execute(
                update(AnnuaireImport)
                .where(AnnuaireImport.active.is_(True))
                .values(active=False, status="replaced")
            )
            session.execute(
                update(AnnuaireImport)
                .where(AnnuaireImport.id == report.import_id)
                .values(
                    active=True,
                    status="active",
                    finished_at=utcnow(),
                    lines_read=report.lines_read,
                    professionals=report.professionals,
                    mailboxes=report.mailboxes,
                    problems=report.problems,
                    problem_sample=report.problem_sample,
                )
            )
    except BaseException as exc:
        with db.transaction() as session:
            session.execute(
                update(AnnuaireImport)
                .where(AnnuaireImport.id == report.import_id)
                .values(status="failed", finished_at=utcnow(), error=str(exc)[:2000])
            )
        _drop_inactive_generations(db)
        raise
    _drop_inactive_generations(db)
    return report


def _load(
    db: Database,
    report: ImportReport,
    first: AnnuaireLine | AnnuaireProblem | None,
    rows: Iterable[AnnuaireLine | AnnuaireProblem],
    batch_size: int,
    progress: Callable[[ImportReport], None] | None,
) -> None:
    gen = report.import_id
    people: list[dict[str, object]] = []
    boxes: list[dict[str, object]] = []
    seen_people: set[str] = set()
    seen_boxes: set[tuple[str, str]] = set()

    def flush() -> None:
        with db.transaction() as session:
            _insert(session, AnnuaireProfessional.__table__, people)  # type: ignore[arg-type]
            _insert(session, AnnuaireMailbox.__table__, boxes)  # type: ignore[arg-type]
        people.clear()
        boxes.clear()
        if progress is not None:
            progress(report)

    items = rows if first is None else _chain(first, rows)
    for item in items:
        if isinstance(item, AnnuaireProblem):
            report.problems += 1
            if len(report.problem_sample) < PROBLEM_SAMPLE:
                report.problem_sample.append(str(item))
            report.lines_read = max(report.lines_read, item.line)
            continue
        report.lines_read = item.line
        national_id = ""
        person = item.person
        if person is not None:
            national_id = person.national_id
            if national_id not in seen_people:
                seen_people.add(national_id)
                report.professionals += 1
                people.append(
                    {
                        "import_id": gen,
                        "national_id": national_id[:40],
                        "id_type": person.id_type[:4],
                        "identifier": person.identifier[:40],
                        "civility": person.civility[:20],
                        "family_name": person.family_name[:200],
                        "given_name": person.given_name[:200],
                        "profession_code": person.profession_code[:20],
                        "profession_label": person.profession_label[:200],
                        "specialty_code": person.specialty_code[:20],
                        "specialty_label": person.specialty_label[:200],
                    }
                )
        box = item.mailbox
        if box is not None:
            key = (national_id, box.address.lower())
            if national_id and key in seen_boxes:
                report.duplicates += 1
            else:
                if national_id:
                    seen_boxes.add(key)
                report.mailboxes += 1
                boxes.append(_mailbox_row(gen, national_id, box))
        if len(people) >= batch_size or len(boxes) >= batch_size:
            flush()
    flush()


def _insert(session: Session, table: Table, rows: list[dict[str, object]]) -> None:
    """One executemany (SQLite), or one COPY (PostgreSQL: several times faster than
    psycopg's executemany for hundreds of thousands of rows)."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        fast_insert(session, table, rows)
        return
    columns = list(rows[0])
    json_columns = {c for c in columns if c == "details"}
    raw = conn.connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[c]) if c in json_columns and row[c] is not None else row[c]
                    for c in columns
                ]
            )


def _mailbox_row(gen: int, national_id: str, box: MssMailbox) -> dict[str, object]:
    details: dict[str, object] = {}
    if box.address_lines:
        details["address_lines"] = list(box.address_lines)
    if box.structure_trade_name:
        details["structure_trade_name"] = box.structure_trade_name
    if box.country:
        details["country"] = box.country
    return {
        "import_id": gen,
        "national_id": national_id[:40],
        "address": box.address[:320],
        "address_key": box.address.lower()[:320],
        "kind": box.kind[:8],
        "structure_id_type": box.structure_id_type[:8],
        "structure_id": box.structure_id[:40],
        "service": box.service[:300],
        "structure_name": box.structure_name[:300],
        "dematerialisation": box.dematerialisation,
        "city_line": box.city_line[:200],
        "postal_code": box.postal_code[:20],
        "department": box.department[:100],
        "details": details or None,
    }


def _chain(
    first: AnnuaireLine | AnnuaireProblem, rest: Iterable[AnnuaireLine | AnnuaireProblem]
) -> Iterable[AnnuaireLine | AnnuaireProblem]:
    yield first
    yield from rest


def _drop_inactive_generations(db: Database, batch: int = 5_000) -> None:
    """Delete the rows of every generation but the active one (replaced, failed, or left
    loading by a crash): by primary-key ranges, `batch` ids per transaction, so that
    SQLite's write lock is never held for the whole deletion."""
    with db.reader() as session:
        stale = list(
            session.scalars(select(AnnuaireImport.id).where(AnnuaireImport.active.is_(False)))
        )
    for gen in stale:
        for table in (AnnuaireMailbox, AnnuaireProfessional):
            with db.reader() as session:
                low, high = session.execute(
                    select(func.min(table.id), func.max(table.id)).where(table.import_id == gen)
                ).one()
            if low is None:
                continue
            if db.url.startswith("postgresql"):  # MVCC: one statement blocks no reader
                with db.transaction() as session:
                    session.execute(delete(table).where(table.import_id == gen))
                continue
            for start in range(low, high + 1, batch):
                with db.transaction() as session:
                    session.execute(
                        delete(table).where(
                            table.id >= start, table.id < start + batch, table.import_id == gen
                        )
                    )
        with db.transaction() as session:
            # the import row stays as history; its data rows are gone
            session.execute(
                update(AnnuaireImport)
                .where(AnnuaireImport.id == gen, AnnuaireImport.status == "loading")
                .values(status="failed", error="interrupted (left loading)")
            )
    if stale:
        log.info("annuaire: rows of %d inactive generation(s) deleted", len(stale))
