"""The front door over real sockets, a real broker and both databases.

Every ACK code, duplicates, pipelining, concurrency, charsets, enhanced mode, 10 MB
messages, time-outs, TLS with client certificates, and the identity sequences.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pfi.adapters.mllp import MllpClient, MllpError, frame
from pfi.config.model import TlsSettings
from pfi.store import Database
from pfi.store.models import Message, Patient, PatientEvent, PatientIdentifier, ProcessedEvent
from pfi.transforms.hl7 import parse_message
from tests.support.hl7 import adt_a01, encode
from tests.support.inprocess import RunningEngine, engine_settings
from tests.support.tls import make_pki

pytestmark = pytest.mark.slow

ORU = (
    "MSH|^~\\&|SGL|LABO|PFI|CHU-X|20240301101010||ORU^R01^ORU_R01|{cid}|P|2.5|||{acc}|||"
    "8859/1\rPID|1||IPP77^^^CHU-X&1.2.250.1.999.1&ISO^PI||MARTIN^PAUL\r"
    "OBR|1|CMD1|LAB1|2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||5.2|mmol/L|||||F\r"
)


def oru(cid: str, acc: str = "") -> bytes:
    return ORU.format(cid=cid, acc=acc).encode("latin-1")


def ack_fields(ack: bytes) -> dict[str, str]:
    msg = parse_message(ack, "8859/1", strict=False)
    return {
        "code": msg.get("MSA-1"),
        "control": msg.get("MSA-2"),
        "err_code": msg.get("ERR-3.1"),
        "err_where": msg.get("ERR-2.1") + (f"-{msg.get('ERR-2.3')}" if msg.get("ERR-2.3") else ""),
        "err_text": msg.get("ERR-8"),
    }


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def engine(tmp_path: Path, db_url: str) -> Iterator[RunningEngine]:
    settings = engine_settings(tmp_path, db_url, SGL={"max_message_bytes": 12 * 1024 * 1024})
    with RunningEngine(settings) as running:
        yield running


@pytest.fixture
def store(engine: RunningEngine) -> Database:
    assert engine.engine is not None
    return engine.engine.db


def stored(db: Database, **where: object) -> list[Message]:
    with db.reader() as s:
        query = select(Message).order_by(Message.id)
        for key, value in where.items():
            query = query.where(getattr(Message, key) == value)
        return list(s.scalars(query))


def test_valid_message_is_acked_aa_after_it_is_stored(engine: RunningEngine, store: Database):
    with MllpClient("127.0.0.1", engine.port("SGL")) as client:
        ack = ack_fields(client.send(oru("OK1")))
        rows = stored(store, control_id="OK1")  # read right after the ACK: already there
    assert ack["code"] == "AA" and ack["control"] == "OK1"
    assert [(r.status, r.source, r.ipp) for r in rows] == [("accepted", "SGL", "IPP77")]
    assert rows[0].raw == oru("OK1")


@pytest.mark.parametrize(
    ("payload", "code", "err_code", "where"),
    [
        pytest.param(b"this is not HL7", "AE", "100", "MSH", id="no-msh"),
        pytest.param(oru("E1").replace(b"|E1|", b"||"), "AE", "101", "MSH-10", id="no-control-id"),
        pytest.param(
            oru("E2").replace(b"IPP77^^^CHU-X&1.2.250.1.999.1&ISO^PI", b""),
            "AE",
            "101",
            "PID-3",
            id="no-pid3",
        ),
        pytest.param(
            oru("E3").replace(b"8859/1", b"KLINGON"), "AE", "103", "MSH-18", id="unknown-charset"
        ),
        pytest.param(
            oru("E4").replace(b"MARTIN", "MARTÏN".encode()).replace(b"8859/1", b"ASCII"),
            "AE",
            "102",
            "MSH-18",
            id="bytes-not-in-charset",
        ),
        pytest.param(
            oru("E5").replace(b"|2.5|", b"|2.9|"), "AR", "203", "MSH-12", id="unsupported-version"
        ),
        pytest.param(
            oru("E6").replace(b"ORU^R01^ORU_R01", b"MDM^T02^MDM_T02"),
            "AR",
            "200",
            "MSH-9",
            id="type-not-allowed-for-source",
        ),
        pytest.param(
            oru("E7").replace(b"ORU^R01^ORU_R01", b"ORU^R30"),
            "AR",
            "201",
            "MSH-9",
            id="event-not-allowed-for-source",
        ),
    ],
)
def test_bad_message_is_nacked_with_err_and_kept_with_its_reason(
    engine: RunningEngine,
    store: Database,
    payload: bytes,
    code: str,
    err_code: str,
    where: str,
) -> None:
    with MllpClient("127.0.0.1", engine.port("SGL")) as client:
        ack = ack_fields(client.send(payload))
        assert (ack["code"], ack["err_code"], ack["err_where"]) == (code, err_code, where)
        assert ack["err_text"]
        # the connection keeps serving after a NACK
        assert ack_fields(client.send(oru(f"after-{err_code}")))["code"] == "AA"
    rejected = stored(store, status="rejected")
    assert len(rejected) == 1
    assert rejected[0].raw == payload and rejected[0].ack_code == code
    assert rejected[0].reason and str(err_code) in rejected[0].reason


def test_duplicate_is_acked_again_and_processed_once(engine: RunningEngine, store: Database):
    message = encode(adt_a01("DUP1", "IPP-DUP"))
    for _ in range(2):  # two connections, as a sender retrying after an ACK time-out does
        with MllpClient("127.0.0.1", engine.port("DPI")) as client:
            assert ack_fields(client.send(message))["code"] == "AA"
    rows = stored(store, control_id="DUP1")
    assert [r.status for r in rows] == ["accepted", "duplicate"]
    assert rows[1].duplicate_of == rows[0].id

    def identity_done() -> bool:
        with store.reader() as s:
            return s.scalar(select(func.count()).where(ProcessedEvent.consumer == "identity")) == 1

    assert wait_for(identity_done, 20)
    with store.reader() as s:
        assert s.scalar(select(func.count()).select_from(PatientEvent)) == 1


def test_same_control_id_from_another_sender_is_not_a_duplicate(
    engine: RunningEngine, store: Database
) -> None:
    with MllpClient("127.0.0.1", engine.port("DPI")) as client:
        client.send(encode(adt_a01("SAME", "IPP-A", sender="GAM")))
        client.send(encode(adt_a01("SAME", "IPP-B", sender="URGENCES")))
    assert [r.status for r in stored(store, control_id="SAME")] == ["accepted", "accepted"]


def test_pipelined_messages_get_their_acks_in_order(engine: RunningEngine, store: Database):
    ids = [f"PIPE{i}" for i in range(60)]
    with MllpClient("127.0.0.1", engine.port("SGL")) as client:
        acks = client.send_many(oru(i) for i in ids)
    assert [ack_fields(a)["control"] for a in acks] == ids
    assert len(stored(store, status="accepted")) == 60


def test_many_concurrent_connections_are_all_served(engine: RunningEngine, store: Database):
    errors: list[str] = []

    def client(n: int) -> None:
        try:
            with MllpClient("127.0.0.1", engine.port("SGL")) as c:
                for i in range(15):
                    if ack_fields(c.send(oru(f"C{n}-{i}")))["code"] != "AA":
                        errors.append(f"C{n}-{i}")
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(stored(store, status="accepted")) == 25 * 15


@pytest.mark.parametrize(
    ("charset", "encoding"), [("8859/1", "latin-1"), ("UNICODE UTF-8", "utf-8")]
)
def test_accented_names_round_trip_into_the_store(
    engine: RunningEngine, store: Database, charset: str, encoding: str
) -> None:
    message = adt_a01(
        f"ACC-{encoding}", f"IPP-{encoding}", family="NOËL", given="HÉLÈNE", charset=charset
    ).encode(encoding)
    with MllpClient("127.0.0.1", engine.port("DPI")) as client:
        assert ack_fields(client.send(message))["code"] == "AA"
    assert stored(store, control_id=f"ACC-{encoding}")[0].raw == message

    def patient() -> Patient | None:
        with store.reader() as s:
            return s.scalar(
                select(Patient)
                .join(PatientIdentifier)
                .where(PatientIdentifier.value == f"IPP-{encoding}")
            )

    assert wait_for(lambda: patient() is not None, 20)
    p = patient()
    assert p is not None and (p.birth_name, p.first_name) == ("NOËL", "HÉLÈNE")


def test_enhanced_mode_commit_acks_and_never_mode(engine: RunningEngine, store: Database):
    with MllpClient("127.0.0.1", engine.port("SGL"), timeout_s=5) as client:
        assert ack_fields(client.send(oru("ENH1", acc="AL")))["code"] == "CA"
        client.send_only(oru("ENH2", acc="NE"))  # never acknowledge
        client.send_only(oru("ENH3", acc="AL"))
        assert ack_fields(client.receive())["control"] == "ENH3"
    assert {r.control_id for r in stored(store, status="accepted")} == {"ENH1", "ENH2", "ENH3"}


def test_ten_megabyte_message_is_accepted_and_stored_whole(
    engine: RunningEngine, store: Database
) -> None:
    pdf = b"JVBERi0xLjQK" + b"A" * (10 * 1024 * 1024)
    message = oru("BIG").replace(b"||5.2|", b"||^application^pdf^Base64^" + pdf + b"|")
    with MllpClient("127.0.0.1", engine.port("SGL"), timeout_s=60) as client:
        assert ack_fields(client.send(message))["code"] == "AA"
    row = stored(store, control_id="BIG")[0]
    assert row.size == len(message) and row.raw == message


def test_oversize_message_is_nacked_and_the_connection_stays_usable(
    tmp_path: Path, db_url: str
) -> None:
    settings = engine_settings(tmp_path, db_url, SGL={"max_message_bytes": 200_000})
    with RunningEngine(settings) as engine:
        huge = oru("HUGE").replace(b"||5.2|", b"||" + b"9" * 500_000 + b"|")
        with MllpClient("127.0.0.1", engine.port("SGL")) as client:
            ack = ack_fields(client.send(huge))
            assert ack["code"] == "AE" and "exceeds" in ack["err_text"]
            assert ack["control"] == "HUGE"
            assert ack_fields(client.send(oru("AFTER-HUGE")))["code"] == "AA"
        assert engine.engine is not None
        row = stored(engine.engine.db, control_id="HUGE")[0]
        assert row.status == "rejected" and "500" in (row.reason or "")


def test_idle_and_read_time_outs_close_only_that_connection(tmp_path: Path, db_url: str):
    settings = engine_settings(tmp_path, db_url, SGL={"idle_timeout_s": 0.5, "read_timeout_s": 0.5})
    with RunningEngine(settings) as engine:
        port = engine.port("SGL")
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"\x0bMSH|^~\\&|half a frame")  # never finished
        idle = socket.create_connection(("127.0.0.1", port))
        with MllpClient("127.0.0.1", port) as client:
            assert ack_fields(client.send(oru("LIVE1")))["code"] == "AA"
        time.sleep(1.5)
        for sock in (stalled, idle):
            sock.settimeout(2)
            assert sock.recv(10) == b""  # closed by the server
            sock.close()
        with MllpClient("127.0.0.1", port) as client:
            assert ack_fields(client.send(oru("LIVE2")))["code"] == "AA"


def test_tls_listener_requires_a_client_certificate_from_its_ca(tmp_path: Path, db_url: str):
    pki = make_pki(tmp_path / "pki")
    tls = TlsSettings(
        certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca, require_client_cert=True
    )
    settings = engine_settings(tmp_path, db_url, SGL={"tls": tls})
    with RunningEngine(settings) as engine:

        def context(cert: Path | None, key: Path | None) -> ssl.SSLContext:
            ctx = ssl.create_default_context(cafile=str(pki.ca))
            if cert is not None:
                ctx.load_cert_chain(str(cert), str(key))
            return ctx

        good = context(pki.client_cert, pki.client_key)
        with MllpClient("127.0.0.1", engine.port("SGL"), ssl_context=good) as client:
            assert ack_fields(client.send(oru("TLS1")))["code"] == "AA"
        for cert, key in ((None, None), (pki.stranger_cert, pki.stranger_key)):
            with (
                pytest.raises(MllpError),
                MllpClient(
                    "127.0.0.1", engine.port("SGL"), ssl_context=context(cert, key), timeout_s=5
                ) as client,
            ):
                client.send(oru("TLS2"))
        with (  # plain TCP on a TLS port gets nothing
            pytest.raises(MllpError),
            MllpClient("127.0.0.1", engine.port("SGL"), timeout_s=3) as client,
        ):
            client.send(oru("TLS3"))
        assert engine.engine is not None
        assert [r.control_id for r in stored(engine.engine.db)] == ["TLS1"]


def test_storage_failure_is_nacked_never_acked(engine: RunningEngine, store: Database):
    assert engine.engine is not None and engine.engine.intake is not None
    intake = engine.engine.intake
    original = intake._store

    def broken(batch: object) -> None:
        raise OSError("disk full")

    intake._store = broken  # type: ignore[method-assign]
    try:
        with MllpClient("127.0.0.1", engine.port("SGL")) as client:
            ack = ack_fields(client.send(oru("DOWN1")))
    finally:
        intake._store = original  # type: ignore[method-assign]
    assert ack["code"] == "AE" and ack["err_code"] == "207"
    assert "resend" in ack["err_text"]


def test_raw_frame_bytes_are_stored_unchanged_including_lf_separators(
    engine: RunningEngine, store: Database
) -> None:
    message = oru("LF1").replace(b"\r", b"\n")
    with socket.create_connection(("127.0.0.1", engine.port("SGL"))) as sock:
        sock.sendall(frame(message))
        sock.settimeout(10)
        assert b"MSA|AA|LF1" in sock.recv(65536)
    assert stored(store, control_id="LF1")[0].raw == message
