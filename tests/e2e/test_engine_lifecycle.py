"""The engine as operators run it: start, ready, drain on SIGTERM/SIGINT, survive kill -9
and the loss of its memory-only embedded broker without losing or duplicating anything."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from pfi.adapters.mllp import MllpClient
from pfi.store import Database
from pfi.store.models import Message, PatientEvent, ProcessedEvent
from tests.support.engine import EngineProcess, child_pids, pid_alive
from tests.support.hl7 import adt_a01, encode

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout_s: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def processed(db: Database, consumer: str = "identity") -> int:
    with db.reader() as s:
        return int(s.scalar(select(func.count()).where(ProcessedEvent.consumer == consumer)))


def history_rows(db: Database) -> int:
    with db.reader() as s:
        return int(s.scalar(select(func.count()).select_from(PatientEvent)))


def broker_pid(engine: EngineProcess) -> int:
    assert engine.proc is not None
    pids = [
        p
        for p in child_pids(engine.proc.pid)
        if "tansu" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_engine_becomes_ready_and_drains_on_signal_without_orphans(
    tmp_path: Path, sig: int
) -> None:
    engine = EngineProcess(tmp_path)
    took = engine.start(wait_ready_s=15)
    assert took < 15
    health = httpx.get(f"{engine.url}/healthz").json()
    assert health["status"] == "alive"
    ready = httpx.get(f"{engine.url}/readyz").json()
    assert (ready["checks"]["database"], ready["checks"]["broker"]) == ("up", "up")
    assert wait_for(  # the front door is ready first; the workers follow
        lambda: httpx.get(f"{engine.url}/readyz").json()["checks"]["workers"] == "up", 30
    )
    assert httpx.get(f"{engine.url}/metrics").status_code == 200
    tansu = broker_pid(engine)
    assert engine.proc is not None
    children = child_pids(engine.proc.pid)
    assert tansu in children and len(children) == 2, "broker and worker process"
    started = time.monotonic()
    engine.signal(sig)
    assert engine.wait(timeout_s=10) == 0, engine.logs()
    assert time.monotonic() - started < 10
    assert wait_for(lambda: not any(pid_alive(p) for p in children), 3), "orphans left behind"
    assert "engine stopped" in engine.logs()
    assert "workers stopped" in (tmp_path / "var" / "logs" / "workers.log").read_text()


def test_kill9_after_acks_then_restart_processes_every_message_once(
    tmp_path: Path, db_url: str
) -> None:
    engine = EngineProcess(tmp_path, env={"PFI_DATABASE_URL": db_url})
    engine.start()
    total = 400
    with MllpClient("127.0.0.1", engine.ports["DPI"]) as client:
        acks = client.send_many(encode(adt_a01(f"K{i}", f"IPP{i}")) for i in range(total))
    assert all(b"MSA|AA|" in a for a in acks)
    assert engine.proc is not None
    children = child_pids(engine.proc.pid)
    engine.kill9()  # right after the last AA: much is not yet published or processed
    assert wait_for(lambda: not any(pid_alive(p) for p in children), 5), (
        "broker and workers must die with the engine"
    )
    db = Database(db_url)
    with db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == total
    assert processed(db) < total, "the kill should land before everything was processed"

    engine2 = EngineProcess(
        tmp_path / "again",
        config={"engine": engine.config["engine"]},
        env={"PFI_DATABASE_URL": db_url},
    )
    engine2.start()
    try:
        assert wait_for(lambda: processed(db) == total, 60), processed(db)
        time.sleep(1.0)
        assert processed(db) == total
        assert history_rows(db) == total  # one identity event per message: none twice
    finally:
        assert engine2.stop() == 0
        db.dispose()


def test_embedded_broker_death_is_survived_without_loss_or_duplicates(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    engine.start()
    db = Database(f"sqlite:///{tmp_path / 'var' / 'pfi.db'}")
    try:
        with MllpClient("127.0.0.1", engine.ports["DPI"]) as client:
            client.send_many(encode(adt_a01(f"B{i}", f"IPP{i}")) for i in range(150))
            old = broker_pid(engine)
            os.kill(old, signal.SIGKILL)
            acks = client.send_many(encode(adt_a01(f"C{i}", f"IPQ{i}")) for i in range(150))
        assert all(b"MSA|AA|" in a for a in acks)  # intake never depended on the broker
        assert wait_for(lambda: processed(db) == 300, 60), processed(db)
        assert broker_pid(engine) != old
        time.sleep(1.0)
        assert processed(db) == 300 and history_rows(db) == 300
        assert "embedded broker died" in engine.logs()
    finally:
        assert engine.stop() == 0
        db.dispose()


@pytest.mark.postgres
def test_readyz_is_503_when_the_database_is_gone(tmp_path: Path) -> None:
    from tests.support.databases import fresh_postgres_database, postgres_unavailable_reason

    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    with fresh_postgres_database() as url:
        engine = EngineProcess(tmp_path, env={"PFI_DATABASE_URL": url})
        engine.start()
        try:
            assert httpx.get(f"{engine.url}/readyz").status_code == 200
            # the context manager drops the database (WITH FORCE) on exit
        except Exception:
            engine.stop()
            raise
    response = None
    for _ in range(30):
        response = httpx.get(f"{engine.url}/readyz", timeout=5)
        if response.status_code == 503:
            break
        time.sleep(0.2)
    assert response is not None and response.status_code == 503
    assert response.json()["checks"]["database"] == "down"
    assert response.json()["checks"]["broker"] == "up"
    engine.stop()


def test_engine_that_cannot_start_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    blocker = EngineProcess(tmp_path / "first")
    blocker.start()
    try:
        clash = EngineProcess(tmp_path / "second", config={"http": {"port": blocker.http_port}})
        with pytest.raises(RuntimeError) as info:
            clash.start(wait_ready_s=20)
        assert "engine exited with 1" in str(info.value)
        assert "address already in use" in clash.logs().lower()
    finally:
        blocker.stop()


def worker_pid(engine: EngineProcess) -> int:
    assert engine.proc is not None
    pids = [
        p
        for p in child_pids(engine.proc.pid)
        if b"--role\x00workers" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert len(pids) == 1, pids
    return pids[0]


def test_a_crashed_worker_process_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    engine.start()
    db = Database(f"sqlite:///{tmp_path / 'var' / 'pfi.db'}")
    try:
        first = worker_pid(engine)
        with MllpClient("127.0.0.1", engine.ports["DPI"]) as client:
            client.send_many(encode(adt_a01(f"W{i}", f"IPW{i}")) for i in range(100))
            os.kill(first, signal.SIGKILL)  # mid-stream
            acks = client.send_many(encode(adt_a01(f"X{i}", f"IPX{i}")) for i in range(100))
        assert all(b"MSA|AA|" in a for a in acks)
        assert wait_for(lambda: processed(db) == 200, 60), processed(db)
        assert worker_pid(engine) != first
        assert history_rows(db) == 200
        assert "worker process exited" in engine.logs()
        assert httpx.get(f"{engine.url}/readyz").status_code == 200
    finally:
        assert engine.stop() == 0
        db.dispose()
