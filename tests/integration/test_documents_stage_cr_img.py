"""CR-IMG built by the documents stage from plain RIS reports, in the real engine.

Driven over MLLP on the RIS port, on SQLite and PostgreSQL; the document is built and
validated (XSD + CI-SIS profiles + the CR-IMG 2024.01 volet for level 3) in the real
document worker process, then routed by the real routing stage with config/routes.yaml.
Fixtures: tests/fixtures/hl7/ris (tests/support/make_ris_fixtures.py).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from pfi.bus import codec
from pfi.bus.topics import DOCUMENTS, INBOUND
from pfi.observability.metrics import DEFAULT_METRICS
from pfi.store import Database
from pfi.store.models import Delivery, Message, OutboxEvent, Patient, ProcessedEvent
from tests.support.documents import (
    ack_code,
    db_of,
    dead_letters,
    document_events,
    documents_engine_settings,
    send,
    versions,
    wait_for_documents_stage,
)
from tests.support.inprocess import RunningEngine
from tests.support.ris import RIS, ris_report

pytestmark = pytest.mark.slow

NS = {"h": "urn:hl7-org:v3"}
SET_ROOT = "1.2.250.1.213.4.5.9.2"  # documents.oids.set_id_root (default)
LEVEL_3 = "1.2.250.1.213.1.1.1.45"  # IMG-CR-IMG templateId
LEVEL_1 = "1.3.6.1.4.1.19376.1.2.20"  # non-structured body


@pytest.fixture
def engine(tmp_path: Path, db_url: str) -> Iterator[RunningEngine]:
    with RunningEngine(documents_engine_settings(tmp_path, db_url)) as running:
        yield running


def ris(name: str) -> bytes:
    return (RIS / f"{name}.hl7").read_bytes()


def send_ris(engine: RunningEngine, *names: str) -> None:
    acks = send(engine, "RIS", *(ris(n) for n in names))
    assert [ack_code(a) for a in acks] == ["CA"] * len(names)  # MSH-15 AL: commit accept
    wait_for_documents_stage(engine)


def by_control_id(db: Database) -> dict[str, dict]:
    with db.reader() as s:
        control = {m.id: m.control_id for m in s.scalars(select(Message))}
    return {control[v["message_id"]]: v for v in versions(db)}


def wait_for_routing(db: Database, timeout_s: float = 60.0) -> None:
    """Until the routing stage applied every documents event published so far."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.reader() as s:
            published = s.scalar(select(func.count()).where(OutboxEvent.topic == DOCUMENTS.name))
            done = s.scalar(select(func.count()).where(ProcessedEvent.consumer == "routing"))
        if done == published:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"routing stage applied {done} of {published} documents events")
        time.sleep(0.2)


def deliveries(db: Database) -> list[tuple[int, str, str]]:
    with db.reader() as s:
        rows = s.scalars(select(Delivery).order_by(Delivery.id))
        return [(d.document_version_id, d.destination, d.operation) for d in rows]


def built(version_kind: str) -> float:
    labels = {"document_type": "CR-IMG", "version_kind": version_kind}
    return DEFAULT_METRICS.registry.get_sample_value("pfi_documents_built_total", labels) or 0.0


def body_pdf(cda: bytes) -> bytes:
    """The PDF a CR-IMG carries (level-1 nonXMLBody, or level-3 FR-Documents-ajoutes)."""
    root = etree.fromstring(cda)
    node = root.find("h:component/h:nonXMLBody/h:text", NS)
    if node is None:
        node = root.find(".//h:observationMedia/h:value", NS)
    assert node is not None and node.get("mediaType") == "application/pdf"
    return base64.b64decode(node.text or "")


def test_ris_oru_and_mdm_reports_become_valid_cr_img_versions_routed_to_the_dmp(
    engine: RunningEngine,
) -> None:
    send_ris(
        engine,
        "01_oru_text_only",  # R01: level 1, PDF rendered by PFI
        "03_oru_dicom_study_uid",  # R03: level 3
        "05_mdm_t02",  # R05: MDM^T02, level 1
        "11_oru_level3_with_pdf",  # R11: level 3 carrying the RIS's PDF
        "14_preliminary",  # R14: not validated yet: no version
        "r01_missing_radiologist",  # X01: dead letter naming OBR-32
    )
    db = db_of(engine)
    found = by_control_id(db)
    sent_pdf = ris_report("11_oru_level3_with_pdf").pdf
    assert sent_pdf is not None
    assert sorted(found) == ["R01", "R03", "R05", "R11"]
    for control_id, v in found.items():
        assert (v["document_type"], v["version"], v["action"], v["status"]) == (
            "CR-IMG",
            1,
            "INITIAL",
            "valid",
        ), (control_id, v["validation"], v["findings"])
        assert not [f for f in v["findings"] if f["severity"] == "error"], control_id
        assert v["pdf"].startswith(b"%PDF-"), control_id
        root = etree.fromstring(v["cda"])
        assert root.find("h:code", NS).get("code") == "18748-4"
        set_id = root.find("h:setId", NS)
        assert f"{set_id.get('root')}^{set_id.get('extension')}" == v["set_id"]
        assert root.find("h:versionNumber", NS).get("value") == "1"
        meta = v["meta"]
        assert meta["way"] == "built" and meta["message_type"] in ("ORU^R01", "MDM^T02")
        roles = {(p["role"], p["id"]) for p in meta["people"]}
        assert {("prescriber", "10003456789"), ("validator", "10101234567")} <= roles
    # the exam's accession number (OBR-18) is the setId and is in the meta for routing
    assert found["R03"]["set_id"] == f"{SET_ROOT}^RIS-ACC1003"
    assert found["R05"]["set_id"] == f"{SET_ROOT}^RIS-ACC1005"
    meta = found["R03"]["meta"]
    assert (meta["accession_number"], meta["placer_order"], meta["filler_order"]) == (
        "ACC1003",
        "CMD1003",
        "EX1003",
    )
    assert found["R05"]["meta"]["txa_unique_document_number"] == "DOC1005"
    # level 3 when the message carries modality, body site, study UID and conclusion
    assert found["R03"]["validation"].startswith("CDA valid (CR-IMG 2024.01")
    assert (found["R03"]["meta"]["cr_img_level"], found["R03"]["meta"]["cr_img_gaps"]) == (3, [])
    for control_id in ("R03", "R11"):
        templates = etree.fromstring(found[control_id]["cda"]).findall("h:templateId", NS)
        assert LEVEL_3 in {t.get("root") for t in templates}, control_id
    # level 1: the report as PDF, rendered by PFI, and the reasons it is not level 3
    for control_id in ("R01", "R05"):
        v = found[control_id]
        templates = {t.get("root") for t in etree.fromstring(v["cda"]).findall("h:templateId", NS)}
        assert LEVEL_1 in templates and LEVEL_3 not in templates, control_id
        assert body_pdf(v["cda"]) == v["pdf"], control_id
        assert v["meta"]["cr_img_level"] == 1
        assert any("Study Instance UID" in g for g in v["meta"]["cr_img_gaps"]), control_id
    # level 3 with the RIS's own PDF: carried as sent, and stored as the rendering
    assert body_pdf(found["R11"]["cda"]) == found["R11"]["pdf"] == sent_pdf
    # one patient, created from PID
    assert len({v["patient_id"] for v in found.values()}) == 1
    events = document_events(db)
    assert sorted(e["version_id"] for e in events) == sorted(v["id"] for v in found.values())
    assert {(e["document_type"], e["source"], e["action"]) for e in events} == {
        ("CR-IMG", "RIS", "INITIAL")
    }
    (letter,) = dead_letters(db)
    assert letter.error_type == "Hl7Error" and "at OBR-32" in letter.error
    assert codec.decode(INBOUND.schema, letter.value)["control_id"] == "X01"
    # routing (config/routes.yaml: CR-IMG always to the DMP) queues each version for it
    wait_for_routing(db)
    with db.reader() as s:
        patient = s.get(Patient, found["R01"]["patient_id"])
        assert patient is not None and patient.ins == "279035121518989"
    to_dmp = {version_id for version_id, destination, _ in deliveries(db) if destination == "dmp"}
    assert to_dmp == {v["id"] for v in found.values()}


def test_oru_correction_is_version_two_replacing_one_and_cancellation_withdraws(
    engine: RunningEngine,
) -> None:
    before = {kind: built(kind) for kind in ("initial", "replacement", "deletion")}
    send_ris(engine, "03_oru_dicom_study_uid")
    send_ris(engine, "06_oru_correction")  # OBR-25 C, OBX-11 C
    send_ris(engine, "07_oru_cancellation")  # OBR-25 X, ORC-1 CA
    db = db_of(engine)
    v1, v2, v3 = versions(db)
    assert {v1["set_id"], v2["set_id"], v3["set_id"]} == {f"{SET_ROOT}^RIS-ACC1003"}
    assert [(v["version"], v["action"], v["status"]) for v in (v1, v2, v3)] == [
        (1, "INITIAL", "valid"),
        (2, "REPLACEMENT", "valid"),
        (3, "DELETION", "withdrawn"),
    ]
    first, second = etree.fromstring(v1["cda"]), etree.fromstring(v2["cda"])
    parent = second.find("h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id", NS)
    assert parent is not None
    assert parent.attrib == first.find("h:id", NS).attrib
    assert second.find("h:setId", NS).attrib == first.find("h:setId", NS).attrib
    assert second.find("h:versionNumber", NS).get("value") == "2"
    assert b"Micronodule lobaire" in v2["cda"] and b"Micronodule lobaire" not in v1["cda"]
    assert v2["replaces_uid"] == v1["document_uid"]
    assert (v3["cda"], v3["document_uid"], v3["document_status"]) == (
        None,
        v2["document_uid"],
        "withdrawn",
    )
    assert [(e["version"], e["action"]) for e in document_events(db)] == [
        (1, "INITIAL"),
        (2, "REPLACEMENT"),
        (3, "DELETION"),
    ]
    assert {kind: built(kind) - n for kind, n in before.items()} == {
        "initial": 1,
        "replacement": 1,
        "deletion": 1,
    }
    assert dead_letters(db) == []


def test_mdm_t10_replaces_the_t02_report_and_t11_withdraws_it(engine: RunningEngine) -> None:
    send_ris(engine, "05_mdm_t02")
    send_ris(engine, "12_mdm_t10_replacement")
    send_ris(engine, "13_mdm_t11_cancellation")
    db = db_of(engine)
    v1, v2, v3 = versions(db)
    assert {v1["set_id"], v2["set_id"], v3["set_id"]} == {f"{SET_ROOT}^RIS-ACC1005"}
    assert [(v["version"], v["action"], v["status"]) for v in (v1, v2, v3)] == [
        (1, "INITIAL", "valid"),
        (2, "REPLACEMENT", "valid"),
        (3, "DELETION", "withdrawn"),
    ]
    assert v2["replaces_uid"] == v1["document_uid"]
    assert (v2["meta"]["txa_unique_document_number"], v2["meta"]["txa_parent_document_number"]) == (
        "DOC1005-2",
        "DOC1005",
    )
    assert v3["document_uid"] == v2["document_uid"] and v3["meta"]["message_type"] == "MDM^T11"
    assert dead_letters(db) == []


def test_mdm_t04_status_change_with_content_makes_the_next_version(
    engine: RunningEngine,
) -> None:
    send_ris(engine, "05_mdm_t02")
    t04 = (
        ris("05_mdm_t02")
        .replace(b"|MDM^T02^MDM_T02|R05|", b"|MDM^T04^MDM_T02|R05-4|", 1)
        .replace(b"IRM du genou normale.", b"Fissure meniscale interne.", 1)
    )
    acks = send(engine, "RIS", t04)
    assert [ack_code(a) for a in acks] == ["CA"]
    wait_for_documents_stage(engine)
    db = db_of(engine)
    v1, v2 = versions(db)
    assert (v2["version"], v2["action"], v2["status"]) == (2, "REPLACEMENT", "valid")
    assert v2["replaces_uid"] == v1["document_uid"] and v2["set_id"] == v1["set_id"]
    assert body_pdf(v2["cda"]) == v2["pdf"] != v1["pdf"]  # the new text, rendered again
