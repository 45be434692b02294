"""Identity feeds (PAM-FR) through the real engine: create, qualify the INS, update out of
order, merge, change an identifier, link and unlink; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pfi.adapters.mllp import MllpClient
from pfi.identity import queries
from pfi.store import Database
from pfi.store.models import Message, Patient, PatientEvent, PatientLink, ProcessedEvent
from tests.support.hl7 import adt_a01, encode
from tests.support.inprocess import RunningEngine, engine_settings

pytestmark = pytest.mark.slow

INS = "279035121518989"


@pytest.fixture
def engine(tmp_path: Path, db_url: str) -> Iterator[RunningEngine]:
    with RunningEngine(engine_settings(tmp_path, db_url)) as running:
        yield running


def send(engine: RunningEngine, *messages: str) -> None:
    with MllpClient("127.0.0.1", engine.port("DPI")) as client:
        for message in messages:
            ack = client.send(encode(message))
            assert b"MSA|AA|" in ack, ack
    db = engine.engine.db if engine.engine else None
    assert db is not None
    with db.reader() as s:
        accepted = s.scalar(select(func.count()).where(Message.status == "accepted"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with db.reader() as s:
            done = s.scalar(select(func.count()).where(ProcessedEvent.consumer == "identity"))
        if done == accepted:
            return
        time.sleep(0.1)
    raise AssertionError(f"identity stage applied {done} of {accepted} messages")


def patient(db: Database, key: str) -> Patient:
    with db.reader() as s:
        found = queries.find_patients(s, key)
        assert len(found) == 1, found
        p = found[0]
        p.identifiers  # noqa: B018 - load before the session closes
        return p


def outcomes(db: Database, patient_id: int) -> list[tuple[str, str]]:
    with db.reader() as s:
        return [(e.trigger, e.outcome) for e in queries.history(s, patient_id)]


def test_patient_is_created_then_its_ins_qualified(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    send(engine, adt_a01("Q1", "IPP-Q", trigger="A28", status="PROV", event_time="20240301080000"))
    p = patient(db, "IPP-Q")
    assert (p.qualified, p.ins, p.identity_status) == (False, None, "PROV")
    send(
        engine,
        adt_a01("Q2", "IPP-Q", trigger="A31", status="VALI", ins=INS, event_time="20240302080000"),
    )
    p = patient(db, INS)
    assert (p.qualified, p.ins, p.identity_status) == (True, INS, "VALI")
    assert p.ins_oid == "1.2.250.1.213.1.4.10"
    assert outcomes(db, p.id) == [("A28", "created"), ("A31", "updated")]
    with db.reader() as s:
        change = queries.history(s, p.id)[1].changes
    assert change["identity_status"] == ["PROV", "VALI"]
    assert change["ins"] == [None, INS]


def test_vali_without_ins_is_not_qualified(engine: RunningEngine) -> None:
    send(engine, adt_a01("NQ1", "IPP-NQ", status="VALI"))
    assert patient(engine.engine.db, "IPP-NQ").qualified is False  # type: ignore[union-attr]


def test_older_event_arriving_late_does_not_overwrite_newer_data(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    send(
        engine, adt_a01("O1", "IPP-O", family="NEWNAME", trigger="A08", event_time="20240310120000")
    )
    send(
        engine, adt_a01("O2", "IPP-O", family="OLDNAME", trigger="A08", event_time="20240301120000")
    )
    p = patient(db, "IPP-O")
    assert p.birth_name == "NEWNAME"
    assert outcomes(db, p.id) == [("A08", "created"), ("A08", "stale")]


def test_merge_moves_the_absorbed_patient_to_the_survivor(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    send(
        engine,
        adt_a01("M1", "IPP-SURV", family="SURVIVOR", event_time="20240301080000"),
        adt_a01("M2", "IPP-ABS", family="DOUBLON", event_time="20240301080000"),
    )
    merge = adt_a01(
        "M3",
        "IPP-SURV",
        family="SURVIVOR",
        trigger="A40",
        event_time="20240302080000",
        extra_segments="MRG|IPP-ABS^^^CHU-X&1.2.250.1.999.1&ISO^PI\r",
    ).replace("ADT_A01", "ADT_A39")
    send(engine, merge)
    survivor = patient(db, "IPP-ABS")  # the old IPP now finds the survivor
    assert survivor.birth_name == "SURVIVOR"
    assert {i.value for i in survivor.identifiers} == {"IPP-SURV", "IPP-ABS"}
    with db.reader() as s:
        absorbed = s.scalar(select(Patient).where(Patient.birth_name == "DOUBLON"))
        assert absorbed is not None and absorbed.merged_into_id == survivor.id
    assert ("A40", "merged") in outcomes(db, survivor.id)


def test_a47_changes_an_identifier(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    send(engine, adt_a01("C1", "IPP-WRONG", family="CHANGE", event_time="20240301080000"))
    change = adt_a01(
        "C2",
        "IPP-RIGHT",
        family="CHANGE",
        trigger="A47",
        event_time="20240302080000",
        extra_segments="MRG|IPP-WRONG^^^CHU-X&1.2.250.1.999.1&ISO^PI\r",
    ).replace("ADT_A01", "ADT_A30")
    send(engine, change)
    p = patient(db, "IPP-RIGHT")
    assert {i.value for i in p.identifiers} == {"IPP-RIGHT"}
    with db.reader() as s:
        assert queries.find_patients(s, "IPP-WRONG") == []
    assert ("A47", "identifier-changed") in outcomes(db, p.id)


def test_a24_links_and_a37_unlinks(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    first = adt_a01("L1", "IPP-L1", family="LINKA", trigger="A24")
    second_pid = adt_a01("x", "IPP-L2", family="LINKB").split("\r")[2]
    link = first.replace("PV1|1|I\r", f"{second_pid}\r").replace("ADT_A01", "ADT_A24")
    send(engine, link)
    a = patient(db, "IPP-L1")
    b = patient(db, "IPP-L2")
    with db.reader() as s:
        assert queries.links(s, a.id) == [b.id]
    unlink = (
        link.replace("|L1|", "|L2|").replace("ADT^A24", "ADT^A37").replace("ADT_A24", "ADT_A37")
    )
    send(engine, unlink)
    with db.reader() as s:
        assert s.scalar(select(func.count()).select_from(PatientLink)) == 0
    assert outcomes(db, a.id) == [
        ("A24", "created"),
        ("A24", "linked"),
        ("A37", "unchanged"),
        ("A37", "unlinked"),
    ]


def test_pam_fr_data_and_attending_physician_are_kept(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    rol = (
        "ROL||UC|ODRP|10000023084^AGNES^Isabelle^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"
        "^L^^^RPPS\r"
    )
    zfa = "ZFA|ACTIF|20240309111154|||||||IO|20240309111154|INC|20240309111154\r"
    zfd = "ZFD|||Y|N|INSI|20211201\r"
    send(
        engine,
        adt_a01(
            "Z1",
            "IPP-Z",
            ins=INS,
            status="VALI",
            extra_segments=rol + "ZBE|1^CHU-X|20240309110000||INSERT|N\r" + zfa + zfd,
        ),
    )
    p = patient(db, INS)
    assert p.attending is not None and p.attending["id"] == "10000023084"
    assert p.attending["id_type"] == "RPPS"
    assert p.pam is not None
    assert p.pam["ZFA"]["ZFA-9"] == "IO" and p.pam["ZFA"]["ZFA-11"] == "INC"
    assert p.pam["ZFD"]["ZFD-5"] == "INSI"
    assert p.pam["ZBE"]["ZBE-4"] == "INSERT"
    assert p.birth_place == "75056"


def test_every_identity_change_is_kept_as_history(engine: RunningEngine) -> None:
    db = engine.engine.db  # type: ignore[union-attr]
    send(
        engine,
        adt_a01("H1", "IPP-H", family="A", event_time="20240301080000"),
        adt_a01("H2", "IPP-H", family="B", event_time="20240302080000", trigger="A08"),
        adt_a01("H3", "IPP-H", family="B", event_time="20240303080000", trigger="A08"),
    )
    p = patient(db, "IPP-H")
    with db.reader() as s:
        events = queries.history(s, p.id)
        assert s.scalar(select(func.count()).select_from(PatientEvent)) == 3
    assert [e.outcome for e in events] == ["created", "updated", "unchanged"]
    assert events[1].changes == {"birth_name": ["A", "B"]}
