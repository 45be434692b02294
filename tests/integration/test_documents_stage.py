"""The documents stage in the real engine, driven over MLLP, on SQLite and PostgreSQL.

Validation is the real one (XSD + CI-SIS schematrons) in the real document worker process:
the first test of a session waits for it to compile (15-45 s), the others reuse it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from typer.testing import CliRunner

from pfi.bus import codec
from pfi.bus.outbox import add_to_outbox
from pfi.bus.topics import INBOUND
from pfi.cli.app import app
from pfi.console import accounts
from pfi.console.roles import Role
from pfi.documents.release import inbound_record_of, release_unmapped_hold
from pfi.observability.metrics import DEFAULT_METRICS
from pfi.store.models import AuditEntry, Hold, Message, Patient
from tests.support.documents import (
    MDM_DEL,
    MDM_INIT,
    MDM_INIT_B64,
    MDM_RPLC,
    ORU_DEL,
    ORU_DEL_CDA,
    ORU_INIT,
    ORU_RPLC,
    SGL_MAPPING,
    ack_code,
    carried_cda,
    conform_to_current_kit,
    db_of,
    dead_letters,
    document_events,
    documents_engine_settings,
    official,
    oru,
    send,
    versions,
    wait_for_documents_stage,
)
from tests.support.hl7 import adt_a01, encode
from tests.support.inprocess import RunningEngine

pytestmark = pytest.mark.slow

NS = {"h": "urn:hl7-org:v3"}
INS = "279035121518989"


@pytest.fixture
def engine(tmp_path: Path, db_url: str) -> Iterator[RunningEngine]:
    mapping = tmp_path / "SGL.csv"  # a copy the release test edits
    shutil.copy(SGL_MAPPING, mapping)
    settings = documents_engine_settings(tmp_path, db_url, mapping=mapping)
    with RunningEngine(settings) as running:
        yield running


def cli(engine: RunningEngine, *args: str) -> str:
    result = CliRunner().invoke(
        app, list(args), env={"PFI_DATABASE_URL": engine.settings.database_url}
    )
    assert result.exit_code == 0, result.output
    return result.output


def counter(name: str, **labels: str) -> float:
    value = DEFAULT_METRICS.registry.get_sample_value(name, labels)
    return value or 0.0


# -- way (a): the CI-SIS transmission volet ---------------------------------------------
def test_official_transmission_flow_makes_initial_replacement_and_deletion(
    engine: RunningEngine,
) -> None:
    messages = [
        official(ORU_INIT, "T-ORU-1", conform=True),
        official(ORU_RPLC, "T-ORU-2", conform=True),
        official(ORU_DEL, "T-ORU-3", cda=conform_to_current_kit(ORU_DEL_CDA.read_bytes())),
        official(MDM_INIT_B64, "T-MDM-1", conform=True),
        official(MDM_RPLC, "T-MDM-2", conform=True),
        official(MDM_DEL, "T-MDM-3", conform=True),
    ]
    acks = send(engine, "DPI", *messages)
    assert [ack_code(a) for a in acks] == ["AA"] * 6
    wait_for_documents_stage(engine)
    db = db_of(engine)
    # one set per sender: their records may interleave (partitions), not their versions
    found = sorted(versions(db), key=lambda v: (v["document_type"], v["version"]))
    summary = [(v["document_type"], v["version"], v["action"], v["status"]) for v in found]
    assert summary == [
        ("CR-BIO", 1, "INITIAL", "valid"),
        ("CR-BIO", 2, "REPLACEMENT", "valid"),
        ("CR-BIO", 3, "DELETION", "withdrawn"),
        ("CR-IMG", 1, "INITIAL", "valid"),
        ("CR-IMG", 2, "REPLACEMENT", "valid"),
        ("CR-IMG", 3, "DELETION", "withdrawn"),
    ]
    bio, img = found[:3], found[3:]
    assert {v["set_id"] for v in bio} == {"1.2.250.1.213.1.1.9"}
    # no setId in the MDM documents as published: the set is the first version's id
    assert {v["set_id"] for v in img} == {"1.2.250.1.71.4.2.2.120456789.71024000081"}
    assert bio[1]["replaces_uid"] == "1.2.250.1.213.1.1.12"
    assert any("latest version PFI knows" in w for w in bio[1]["meta"]["warnings"])
    assert bio[2]["document_uid"] == "1.2.250.1.213.1.1.13" and bio[2]["cda"] is None
    assert img[1]["replaces_uid"] == img[0]["document_uid"]
    assert img[2]["document_uid"] == img[1]["document_uid"]
    # routing facts kept with the version
    meta = bio[0]["meta"]
    assert meta["sender_metadata"]["DESTDMP"] == "Y"
    assert meta["sender_metadata"]["MASQUE_PS"] == "N"
    roles = {(p["role"], p["mssante_address"]) for p in meta["people"]}
    assert ("recipient", "adam.hoda@test-ci-sis.mssante.fr") in roles
    assert any(
        p["role"] == "sender" and p["organization_id"] == "1120459876" for p in meta["people"]
    )
    assert img[0]["meta"]["sender_metadata"]["INVISIBLE_PATIENT"] == "Y"
    # one patient, created from PID (no ADT came), every document filed under it
    assert len({v["patient_id"] for v in found}) == 1
    with db.reader() as s:
        patient = s.get(Patient, found[0]["patient_id"])
        assert patient is not None and patient.ins == INS
    events = document_events(db)
    for document_type in ("CR-BIO", "CR-IMG"):
        assert [
            (e["version"], e["action"]) for e in events if e["document_type"] == document_type
        ] == [(1, "INITIAL"), (2, "REPLACEMENT"), (3, "DELETION")]
    with db.reader() as s:
        received = {m.id: m.received_at for m in s.scalars(select(Message))}
    for e in events:
        assert e["received_at"] == received[e["message_id"]]
    assert dead_letters(db) == []


def test_official_documents_as_published_fail_the_current_kit_and_are_not_sent(
    engine: RunningEngine,
) -> None:
    invalid_before = counter(
        "pfi_documents_invalid_total", document_type="CR-BIO", check="schematron"
    )
    acks = send(engine, "DPI", official(ORU_INIT, "P-1"), official(MDM_INIT_B64, "P-2"))
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    wait_for_documents_stage(engine)
    db = db_of(engine)
    found = versions(db)
    assert [(v["document_type"], v["status"]) for v in found] == [
        ("CR-BIO", "invalid"),
        ("CR-IMG", "invalid"),
    ]
    bio_errors = [f["message"] for f in found[0]["findings"] if f["severity"] == "error"]
    assert any("CI-SISRecordTarget" in e for e in bio_errors), bio_errors
    errors = [f["message"] for f in found[1]["findings"] if f["severity"] == "error"]
    assert any("setId" in e for e in errors), errors
    assert document_events(db) == []  # not sent
    letters = dead_letters(db)
    assert [d.error_type for d in letters] == ["CdaValidationError"] * 2
    assert "is not sent" in letters[0].error and "StrucMin" in letters[0].error
    listed = cli(engine, "documents", "list", "--status", "invalid")
    assert listed.count("invalid") >= 2 and "CR-IMG" in listed and "CR-BIO" in listed
    shown = cli(engine, "documents", "show", str(found[0]["id"]))
    assert "CI-SISRecordTarget" in shown
    assert (
        counter("pfi_documents_invalid_total", document_type="CR-BIO", check="schematron")
        == invalid_before + 1
    )


def test_official_rejections_are_answered_ae_in_the_ack(engine: RunningEngine) -> None:
    # ORU deletion as published: its CDA is another patient's (INS 277076322082910);
    # MDM initial without Base64: OBX-5.5 is a placeholder text, not a CDA.
    acks = send(engine, "DPI", official(ORU_DEL, "R-1"), official(MDM_INIT, "R-2"))
    assert [ack_code(a) for a in acks] == ["AE", "AE"]
    assert b"ERR||PID^1^3|207" in acks[0] and b"277076322082910" in acks[0]
    assert b"ERR||OBX^1^5^1^5|102" in acks[1] and b"not well-formed XML" in acks[1]
    db = db_of(engine)
    with db.reader() as s:
        stored = list(s.scalars(select(Message).order_by(Message.id)))
    assert [(m.status, m.ack_code) for m in stored] == [("rejected", "AE"), ("rejected", "AE")]
    assert "not the message's patient" in (stored[0].reason or "")
    wait_for_documents_stage(engine)
    assert versions(db) == []


def test_orc_and_obx11_that_disagree_are_an_ae_naming_obx11(engine: RunningEngine) -> None:
    raw = official(ORU_INIT, "X-1", conform=True).replace(b"ORC|NW|", b"ORC|RO|", 1)
    (ack,) = send(engine, "DPI", raw)
    assert ack_code(ack) == "AE"
    assert b"OBX-11 = F does not agree with the requested replacement" in ack
    assert b"ERR||OBX^1^11|207" in ack


def test_broken_cda_is_stored_invalid_dead_lettered_with_its_findings(
    engine: RunningEngine,
) -> None:
    cda = conform_to_current_kit(carried_cda(ORU_INIT.read_bytes()))
    broken = cda.replace(b"<languageCode", b"<bogus/><languageCode", 1)
    (ack,) = send(engine, "DPI", official(ORU_INIT, "B-1", cda=broken))
    assert ack_code(ack) == "AA"  # well-formed, the right patient: intake accepts it
    wait_for_documents_stage(engine)
    db = db_of(engine)
    (version,) = versions(db)
    assert version["status"] == "invalid"
    xsd = [f for f in version["findings"] if f["source"] == "xsd"]
    assert xsd and "bogus" in xsd[0]["message"]
    (letter,) = dead_letters(db)
    assert letter.error_type == "CdaValidationError"
    assert "bogus" in letter.error and "xsd" in letter.error
    assert document_events(db) == []
    listed = cli(engine, "documents", "list", "--status", "invalid", "--json")
    assert f'"id": {version["id"]}' in listed


# -- way (b): CR-BIO built from plain lab results ---------------------------------------
#: fixture → (action, status) its version gets with the SGL mapping and policy hold
RAW_ORU = {
    "01_numeric_biochemistry": ("INITIAL", "valid"),
    "02_hematology_blood_count": ("INITIAL", "valid"),
    "03_text_results": ("INITIAL", "held"),
    "04_coded_results": ("INITIAL", "held"),
    "05_structured_numeric": ("INITIAL", "held"),
    "06_microbiology_two_specimens": ("INITIAL", "held"),
    "07_embedded_lab_pdf": ("INITIAL", "valid"),
    "08_correction": ("REPLACEMENT", "valid"),  # request F1001 of 01
    "10_unmapped_code_hold": ("INITIAL", "held"),
    "12_latin1_names": ("INITIAL", "valid"),
    "13_utf8_names": ("INITIAL", "valid"),
    "14_minimal": ("INITIAL", "valid"),
    "15_loinc_sent_directly": ("INITIAL", "valid"),
    "16_comments": ("INITIAL", "valid"),
    "17_copy_recipients": ("INITIAL", "valid"),
    "18_validator_in_obx16": ("INITIAL", "valid"),
    "20_final_and_preliminary": ("INITIAL", "held"),
    "21_deleted_and_not_done": ("INITIAL", "valid"),
    "22_multi_chapter": ("INITIAL", "held"),
    "23_decimal_comma": ("INITIAL", "valid"),
    "24_unqualified_identity": ("INITIAL", "valid"),
}
REJECTED_ORU = {
    "r01_missing_validator": "OBR-32",
    "r02_bad_numeric": "OBX-5",
    "r03_obx_without_obr": "OBX",
    "r04_empty_final_value": "OBX-5",
    "r05_pdf_not_pdf": "OBX-5.5",
    "r06_unsupported_value_type": "OBX-2",
    "r07_missing_status": "OBR-25",
    "r08_missing_birth_date": "PID-7",
}


def test_every_raw_oru_variant_becomes_a_cr_bio_that_passes_xsd_and_schematron(
    engine: RunningEngine,
) -> None:
    names = [*RAW_ORU, "19_preliminary_only", "09_cancellation", *REJECTED_ORU]
    acks = send(engine, "SGL", *(oru(n, f"V{i:02d}") for i, n in enumerate(names)))
    assert {ack_code(a) for a in acks} == {"CA"}  # MSH-15 AL: enhanced mode, commit accept
    wait_for_documents_stage(engine)
    db = db_of(engine)
    found = versions(db)
    with db.reader() as s:
        message_of = {m.id: m.control_id for m in s.scalars(select(Message))}
    by_name = {names[int(message_of[v["message_id"]][1:])]: v for v in found}
    assert "19_preliminary_only" not in by_name  # nothing validated yet: no version
    for name, (action, status) in RAW_ORU.items():
        v = by_name[name]
        assert (v["action"], v["status"]) == (action, status), (name, v["validation"])
        assert v["validation"].startswith("CDA valid (CR-BIO 2024.01"), (name, v["validation"])
        assert not [f for f in v["findings"] if f["severity"] == "error"], name
        assert v["pdf"] and v["pdf"].startswith(b"%PDF-")
    assert by_name["09_cancellation"]["action"] == "DELETION"  # request F1001 withdrawn
    letters = {
        names[int(codec.decode(INBOUND.schema, d.value)["control_id"][1:])]: d
        for d in dead_letters(db)
    }
    assert sorted(letters) == sorted(REJECTED_ORU)
    for name, where in REJECTED_ORU.items():
        assert letters[name].error_type == "Hl7Error", name
        assert f"at {where}" in letters[name].error, (name, letters[name].error)


def test_correction_is_version_two_replacing_version_one_and_cancellation_withdraws(
    engine: RunningEngine,
) -> None:
    built = counter("pfi_documents_built_total", document_type="CR-BIO", version_kind="replacement")
    send(engine, "SGL", oru("01_numeric_biochemistry"))
    wait_for_documents_stage(engine)
    send(engine, "SGL", oru("08_correction"))
    wait_for_documents_stage(engine)
    send(engine, "SGL", oru("09_cancellation"))
    wait_for_documents_stage(engine)
    db = db_of(engine)
    v1, v2, v3 = versions(db)
    assert v1["set_id"] == v2["set_id"] == v3["set_id"] == "1.2.250.1.213.4.5.9.2^SGL-F1001"
    first = etree.fromstring(v1["cda"])
    second = etree.fromstring(v2["cda"])
    first_id = first.find("h:id", NS)
    parent = second.find("h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id", NS)
    assert parent is not None and first_id is not None
    assert (parent.get("root"), parent.get("extension")) == (
        first_id.get("root"),
        first_id.get("extension"),
    )
    assert second.find("h:setId", NS).attrib == first.find("h:setId", NS).attrib
    assert second.find("h:versionNumber", NS).get("value") == "2"
    assert v2["replaces_uid"] == v1["document_uid"]
    assert (v3["action"], v3["status"], v3["cda"]) == ("DELETION", "withdrawn", None)
    assert v3["document_uid"] == v2["document_uid"]
    assert v3["document_status"] == "withdrawn"
    events = document_events(db)
    assert [(e["version"], e["action"]) for e in events] == [
        (1, "INITIAL"),
        (2, "REPLACEMENT"),
        (3, "DELETION"),
    ]
    assert (
        counter("pfi_documents_built_total", document_type="CR-BIO", version_kind="replacement")
        == built + 1
    )


def test_unmapped_code_is_held_counted_and_released_once_the_mapping_is_fixed(
    engine: RunningEngine, tmp_path: Path
) -> None:
    # this engine's SGL mapping is a copy the test edits (see the fixture below)
    mapping = engine.settings.documents.sources["SGL"].loinc_mapping
    assert mapping is not None and mapping.parent == tmp_path
    unmapped_before = counter("pfi_unmapped_loinc_occurrences_total", lab="SGL")
    send(engine, "SGL", oru("10_unmapped_code_hold"))
    wait_for_documents_stage(engine)
    db = db_of(engine)
    (held,) = versions(db)
    assert held["status"] == "held"
    assert held["meta"]["unmapped_codes"] == ["VITD25 (25-OH vitamine D)", "CA (Calcium)"]
    with db.reader() as s:
        (hold,) = s.scalars(select(Hold))
        assert (hold.kind, hold.reason, hold.released_at) == (
            "unmapped_code",
            "unmapped codes VITD25 (25-OH vitamine D), CA (Calcium)",
            None,
        )
    assert document_events(db) == []
    listed = cli(engine, "loinc", "unmapped", "--lab", "SGL")
    assert "VITD25" in listed and "CA " in listed
    assert counter("pfi_unmapped_loinc_occurrences_total", lab="SGL") == unmapped_before + 2
    # the biologists map the codes; an operator releases the hold
    with mapping.open("a", encoding="utf-8") as f:
        f.write("VITD25,62292-8,25-Hydroxyvitamine D2+D3 [Masse/Volume] Sérum/Plasma,ng/mL\n")
        f.write("CA,17861-6,Calcium [Masse/Volume] Sérum/Plasma ; Numérique,mg/dL\n")
    with db.transaction() as s:
        release_unmapped_hold(s, held["id"], actor="test", reason="codes mapped")
    wait_for_documents_stage(engine)
    (rebuilt,) = versions(db)
    assert (rebuilt["id"], rebuilt["version"], rebuilt["status"]) == (held["id"], 1, "valid")
    assert b'code="62292-8"' in rebuilt["cda"] and b'code="17861-6"' in rebuilt["cda"]
    assert rebuilt["validation"].startswith("CDA valid")
    assert [e["version_id"] for e in document_events(db)] == [held["id"]]
    # counted once: the rebuild is the same message, not a new occurrence
    assert counter("pfi_unmapped_loinc_occurrences_total", lab="SGL") == unmapped_before + 2


def test_operator_can_release_a_held_version_keeping_the_local_codes(
    engine: RunningEngine,
) -> None:
    send(engine, "SGL", oru("04_coded_results"))  # AGHBS has no LOINC mapping
    wait_for_documents_stage(engine)
    db = db_of(engine)
    (held,) = versions(db)
    assert held["status"] == "held"
    out = cli(
        engine,
        "documents",
        "release",
        str(held["id"]),
        "--reason",
        "lab confirmed the local code",
        "--keep-local",
    )
    assert "released 1 hold(s)" in out
    wait_for_documents_stage(engine)
    (released,) = versions(db)
    assert (released["id"], released["status"]) == (held["id"], "valid")
    assert released["meta"]["release_policy"] == "keep_local"
    assert b'<translation code="AGHBS"' in released["cda"]
    assert [e["version_id"] for e in document_events(db)] == [held["id"]]
    with db.reader() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "document.release"))
        assert entry.reason == "lab confirmed the local code" and entry.actor.startswith("cli:")


def test_redelivered_or_resent_messages_make_no_second_version(engine: RunningEngine) -> None:
    send(engine, "SGL", oru("01_numeric_biochemistry", "D-1"))
    send(engine, "DPI", official(ORU_INIT, "D-2", conform=True))
    wait_for_documents_stage(engine)
    db = db_of(engine)
    assert len(versions(db)) == 2
    # the same messages re-published on the inbound topic (a replay: new event ids)
    with db.transaction() as s:
        add_to_outbox(s, [inbound_record_of(m) for m in s.scalars(select(Message))])
    # the same report and the same CDA re-sent by their senders under new control ids
    send(engine, "SGL", oru("01_numeric_biochemistry", "D-3"))
    send(engine, "DPI", official(ORU_INIT, "D-4", conform=True))
    wait_for_documents_stage(engine)
    # the stages read the topic again from the start (what a broker restart does)
    assert engine.engine is not None and engine.engine.workers is not None
    (runner,) = [r for r in engine.engine.workers.runners if r.stage.name == "documents"]
    consumed = runner.processed_total
    engine.engine.workers.rewind()
    deadline = time.monotonic() + 60
    while runner.processed_total < consumed + 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.processed_total >= consumed + 6  # all six inbound records read again
    assert [(v["version"], v["action"]) for v in versions(db)] == [(1, "INITIAL"), (1, "INITIAL")]
    assert len(document_events(db)) == 2


def test_unknown_patient_is_created_from_pid_and_a_later_adt_completes_it(
    engine: RunningEngine,
) -> None:
    send(engine, "SGL", oru("01_numeric_biochemistry"))
    wait_for_documents_stage(engine)
    db = db_of(engine)
    (v,) = versions(db)
    with db.reader() as s:
        created = s.get(Patient, v["patient_id"])
        assert created is not None and created.event_at is None
        assert created.birth_name == "PAT-TROIS"
    adt = adt_a01(
        "ADT-1", "IPP101", family="PAT-TROIS", ins=INS, status="VALI", event_time="20240105080000"
    ).replace("CHU-X&1.2.250.1.999.1&ISO", "CHU_X&1.2.250.1.213.4.5.2.4&ISO")
    send(engine, "DPI", encode(adt))
    wait_for_documents_stage(engine)
    with db.reader() as s:
        patients = list(s.scalars(select(Patient)))
        assert len(patients) == 1
        assert patients[0].event_at is not None  # the ADT applied, not "stale"


def test_documents_api_lists_shows_and_serves_content_to_viewers_with_audit(
    engine: RunningEngine,
) -> None:
    send(engine, "SGL", oru("01_numeric_biochemistry"), oru("10_unmapped_code_hold"))
    wait_for_documents_stage(engine)
    db = db_of(engine)
    with db.transaction() as s:
        token = accounts.add_user(s, "viewer-docs", Role.viewer).token
    base = f"http://127.0.0.1:{engine.settings.http.port}/api/documents"
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(base, timeout=10).status_code == 401
    listed = httpx.get(base, headers=auth, timeout=10).json()["items"]
    assert {i["status"] for i in listed} == {"valid", "held"}
    (held,) = httpx.get(base, headers=auth, params={"status": "held"}, timeout=10).json()["items"]
    detail = httpx.get(f"{base}/{held['id']}", headers=auth, timeout=10).json()
    (hold,) = detail["holds"]
    assert (hold["kind"], hold["released_at"]) == ("unmapped_code", None)
    assert detail["meta"]["unmapped_codes"]
    cda = httpx.get(f"{base}/{held['id']}/content", headers=auth, timeout=10)
    assert cda.headers["content-type"] == "application/xml" and cda.content.startswith(b"<?xml")
    pdf = httpx.get(
        f"{base}/{held['id']}/content", headers=auth, params={"form": "pdf"}, timeout=10
    )
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    with db.reader() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert [a for a in actions if a.startswith("document.")] == [
        "document.search",
        "document.search",
        "document.read",
        "document.read_cda",
        "document.read_pdf",
    ]
