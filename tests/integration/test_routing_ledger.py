"""The routing layer against a real store (SQLite and PostgreSQL), without a broker: what
each act writes into the delivery ledger, the holds and the audit trail, and which
delivery requests it queues. The engine-level tests (test_routing_stage.py) prove the
same paths run for real through the topics, MLLP and HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS
from pfi.console.roles import Principal, Role
from pfi.routes import load_routes
from pfi.routes.document_meta import DocumentMeta, OrderNumbers
from pfi.routes.hold_queries import open_hold_stats
from pfi.routes.ledger import LedgerChanges
from pfi.routes.model import HoldKind, Routes
from pfi.routes.release import ReleaseSignal
from pfi.routes.router import DocumentEvent, Router, RoutingRefused
from pfi.store import Database
from pfi.store.models import AuditEntry, Delivery, Document, DocumentVersion, Hold, Patient
from tests.support.routing_documents import (
    COPY,
    PRESCRIBER,
    add_patient,
    event,
    lab_meta,
    store_version,
)

INS = "279035121518989"
PATIENT_MAIL = f"{INS}@patient.mssante.fr"
CDA_SYSTEM = "2.16.840.1.113883.5.25"
MASKING_SYSTEM = "1.2.250.1.213.1.1.4.13"
OPERATOR = Principal(name="jdupont", role=Role.operator, token_id="t0")

ROUTES = """
routes:
  - name: lab
    from: {source: SGL, document: CR-BIO}
    to: [dmp, mss_prescriber, mss_copies, mss_patient]
  - name: imaging held for the announcement
    from: {source: RIS, document: CR-IMG}
    hold: {kind: announcement, released_by: [RIS announcement done]}
    to: [dmp, mss_prescriber, mss_patient]
  - name: genetics retained
    from: {source: DPI, code: 51969-4}
    hold: retain
    to: [dmp, mss_copies, mss_patient]
  - name: DPI imaging to the DMP only, announced first
    from: {source: DPI, document: CR-IMG}
    hold: {kind: announcement, released_by: [RIS announcement done]}
    to: [dmp]
  - name: anything else
    to: []
release_triggers:
  - name: RIS announcement done
    message: ORM^O01
    source: RIS
    where: {ORC-1: SC, ORC-5: CM}
    document_key: {field: ORC-3.1, kind: filler_order_number}
    releases: announcement
"""


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Routes:
    path = tmp_path_factory.mktemp("routes") / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    return load_routes(path)


@pytest.fixture
def router(routes: Routes) -> Router:
    return Router(routes)


def route(db: Database, router: Router, **kwargs: Any) -> tuple[int, LedgerChanges | None]:
    """Store a version (and its patient when asked) and route it; (version id, changes)."""
    with db.transaction() as s:
        version = store_version(s, emit=False, **kwargs)
        document = s.get(Document, version.document_id)
        assert document is not None
        changes = router.route_version(s, DocumentEvent.from_record(event(document, version)))
        return version.id, changes


def patient(db: Database, **kwargs: Any) -> int:
    with db.transaction() as s:
        return add_patient(s, **kwargs).id


def ledger(db: Database, version_id: int) -> dict[str, Delivery]:
    """Rows of a version by `destination[:recipient][#revision]`."""
    with db.reader() as s:
        rows = s.scalars(
            select(Delivery).where(Delivery.document_version_id == version_id).order_by(Delivery.id)
        ).all()
    out = {}
    for r in rows:
        key = r.destination + (f":{r.recipient}" if r.destination == "mss_pro" else "")
        out[key + (f"#{r.revision}" if r.revision else "")] = r
    return out


def statuses(db: Database, version_id: int) -> dict[str, tuple[str, str]]:
    return {k: (r.status, r.operation) for k, r in ledger(db, version_id).items()}


def open_holds(db: Database, version_id: int) -> list[tuple[str, str]]:
    with db.reader() as s:
        rows = s.execute(
            select(Delivery.destination, Hold.kind)
            .join(Delivery, Hold.delivery_id == Delivery.id)
            .where(Hold.document_version_id == version_id, Hold.released_at.is_(None))
            .order_by(Delivery.destination, Hold.kind)
        ).all()
    return [(d, k) for d, k in rows]


def audit(db: Database, action: str) -> list[AuditEntry]:
    with db.reader() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def deliver(db: Database, version_id: int) -> None:
    """What the delivery workers will do: mark the version's pending rows delivered."""
    with db.transaction() as s:
        for row in s.scalars(select(Delivery).where(Delivery.document_version_id == version_id)):
            if row.status == "pending":
                row.status = "delivered"


def test_lab_report_of_a_qualified_patient_is_sent_everywhere_at_once(
    db: Database, router: Router
) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, changes = route(db, router, patient_id=pid, set_id="LAB-Q", meta=lab_meta())
    assert changes is not None
    assert statuses(db, vid) == {
        "dmp": ("pending", "submit"),
        f"mss_pro:{PRESCRIBER}": ("pending", "submit"),
        f"mss_pro:{COPY}": ("pending", "submit"),
        "mss_patient": ("pending", "submit"),
    }
    rows = ledger(db, vid)
    assert rows["mss_patient"].recipient == PATIENT_MAIL
    assert rows["dmp"].request["confidentiality_codes"] == [["N", CDA_SYSTEM]]
    assert rows[f"mss_pro:{PRESCRIBER}"].request["mail"]["origin"] == "default"
    assert rows["mss_patient"].request["role"] == "patient"
    topics = sorted((o.topic.name, o.record["destination"]) for o in changes.outgoing)
    assert topics == [
        (DELIVER_DMP.name, "dmp"),
        (DELIVER_MSS.name, "mss_patient"),
        (DELIVER_MSS.name, "mss_pro"),
        (DELIVER_MSS.name, "mss_pro"),
    ]
    assert {o.record["delivery_id"] for o in changes.outgoing} == {r.id for r in rows.values()}
    assert all(o.record["action"] == "INITIAL" for o in changes.outgoing)
    assert all(o.key == f"patient-{pid}".encode() for o in changes.outgoing)
    assert open_holds(db, vid) == []


def test_routing_a_version_twice_writes_its_ledger_rows_once(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, first = route(db, router, patient_id=pid, set_id="LAB-TWICE", meta=lab_meta())
    assert first is not None and len(first.outgoing) == 4
    with db.transaction() as s:
        version = s.get(DocumentVersion, vid)
        assert version is not None
        again = router.route_version(s, DocumentEvent.from_record(event(version.document, version)))
    assert again is None
    assert len(ledger(db, vid)) == 4


def test_unqualified_identity_holds_dmp_and_patient_mail_until_the_ins_is_qualified(
    db: Database, router: Router
) -> None:
    pid = patient(db)
    vid, changes = route(db, router, patient_id=pid, set_id="LAB-NQ", meta=lab_meta())
    assert changes is not None
    assert statuses(db, vid) == {
        "dmp": ("held", "submit"),
        f"mss_pro:{PRESCRIBER}": ("pending", "submit"),
        f"mss_pro:{COPY}": ("pending", "submit"),
        "mss_patient": ("held", "submit"),
    }
    assert open_holds(db, vid) == [("dmp", "identity"), ("mss_patient", "identity")]
    with db.reader() as s:
        reasons = set(s.scalars(select(Hold.reason).where(Hold.document_version_id == vid)))
    assert reasons == {"INS not qualified"}
    assert ledger(db, vid)["mss_patient"].recipient == ""
    assert {e.actor for e in audit(db, "hold.place")} == {"pfi:routing"}
    assert len(changes.outgoing) == 2  # the professionals' mails only
    with db.reader() as s:
        stats = open_hold_stats(s)
    assert list(stats) == ["identity"] and stats["identity"].open == 2
    assert stats["identity"].oldest_created_at is not None

    with db.transaction() as s:  # an ADT that changes nothing that matters
        p = s.get(Patient, pid)
        assert p is not None
        assert router.release_for_patient(s, p).outgoing == []
    with db.transaction() as s:  # the identity stage qualifies the INS
        p = s.get(Patient, pid)
        assert p is not None
        p.ins, p.ins_oid, p.qualified, p.identity_status = INS, "1.2.250.1.213.1.4.10", True, "VALI"
        released = router.release_for_patient(s, p)
    assert sorted(o.record["destination"] for o in released.outgoing) == ["dmp", "mss_patient"]
    assert statuses(db, vid)["dmp"] == ("pending", "submit")
    assert ledger(db, vid)["mss_patient"].recipient == PATIENT_MAIL
    assert open_holds(db, vid) == []
    with db.reader() as s:
        assert open_hold_stats(s) == {}
    releases = audit(db, "hold.release")
    assert {e.actor for e in releases} == {"pfi:identity"}
    assert all("identity qualified (INS" in (e.reason or "") for e in releases)


def test_patient_opposition_refuses_the_dmp_with_the_reason(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True, pam={"ZFA": {"ZFA-1": "ACTIF", "ZFA-9": "IO"}})
    vid, _ = route(db, router, patient_id=pid, set_id="LAB-IO", meta=lab_meta())
    rows = ledger(db, vid)
    assert (rows["dmp"].status, rows["dmp"].refusal_reason) == (
        "refused",
        "refused by patient (opposition)",
    )
    assert rows["mss_patient"].status == "pending"
    assert open_holds(db, vid) == []


def test_announcement_release_makes_the_dmp_copy_visible_and_sends_the_patient_mail(
    db: Database, router: Router
) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, changes = route(
        db,
        router,
        patient_id=pid,
        set_id="IMG-ANN",
        source="RIS",
        document_type="CR-IMG",
        document_code="18748-4",
        meta=lab_meta(filler="RIS-1"),
    )
    assert changes is not None
    assert statuses(db, vid) == {
        "dmp": ("pending", "submit"),
        f"mss_pro:{PRESCRIBER}": ("pending", "submit"),
        "mss_patient": ("held", "submit"),
    }
    dmp = ledger(db, vid)["dmp"]
    assert ["INVISIBLE_PATIENT", MASKING_SYSTEM] in dmp.request["confidentiality_codes"]
    # the DMP copy that left invisible still answers to the hold (an operator or a
    # trigger ends it even where no other destination waits): release that one
    assert open_holds(db, vid) == [("dmp", "announcement"), ("mss_patient", "announcement")]
    deliver(db, vid)
    with db.reader() as s:
        hold_id = s.scalar(
            select(Hold.id)
            .join(Delivery, Hold.delivery_id == Delivery.id)
            .where(Hold.document_version_id == vid, Delivery.destination == "dmp")
        )
    assert hold_id is not None

    with db.transaction() as s:
        hold, released = router.release_hold(
            s, hold_id, actor=OPERATOR, reason="announcement consultation done"
        )
    assert hold.released_by == "jdupont" and hold.release_reason == "announcement consultation done"
    rows = ledger(db, vid)
    update = rows["dmp#1"]
    assert (update.status, update.operation) == ("pending", "update_masking")
    assert update.request["previous_delivery_id"] == dmp.id
    assert update.request["confidentiality_codes"] == [["N", CDA_SYSTEM]]
    assert rows["mss_patient"].status == "pending"
    assert released.masking_updates == [update.id]
    assert sorted(o.record["delivery_id"] for o in released.outgoing) == sorted(
        [update.id, rows["mss_patient"].id]
    )
    assert open_holds(db, vid) == []
    assert [(e.actor, e.reason) for e in audit(db, "hold.release")] == [
        ("jdupont", "announcement consultation done")
    ] * 2
    assert audit(db, "hold.release")[0].details["token_id"] == "t0"
    assert [e.details["updates_delivery_id"] for e in audit(db, "delivery.update_masking")] == [
        dmp.id
    ]
    with db.transaction() as s, pytest.raises(RoutingRefused, match="already released"):
        router.release_hold(s, hold_id, actor=OPERATOR, reason="again")


def test_holds_that_follow_facts_are_not_released_by_hand(db: Database, router: Router) -> None:
    pid = patient(db)
    vid, _ = route(db, router, patient_id=pid, set_id="LAB-HAND", meta=lab_meta())
    with db.reader() as s:
        hold_id = s.scalar(select(Hold.id).where(Hold.document_version_id == vid).limit(1))
    assert hold_id is not None
    with db.transaction() as s, pytest.raises(RoutingRefused) as refused:
        router.release_hold(s, hold_id, actor=OPERATOR, reason="please")
    assert refused.value.status == 409 and "qualifies the patient's INS" in str(refused.value)
    with db.transaction() as s, pytest.raises(RoutingRefused) as missing:
        router.release_hold(s, 999999, actor=OPERATOR, reason="please")
    assert missing.value.status == 404


def test_retain_hold_sends_nothing_until_released(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, changes = route(
        db,
        router,
        patient_id=pid,
        set_id="GEN-1",
        source="DPI",
        document_type="OTHER",
        document_code="51969-4",
        meta=lab_meta(),
    )
    assert changes is not None and changes.outgoing == []
    assert statuses(db, vid) == {
        "dmp": ("held", "submit"),
        f"mss_pro:{COPY}": ("held", "submit"),
        "mss_patient": ("held", "submit"),
    }
    with db.reader() as s:
        hold_id = s.scalar(select(Hold.id).where(Hold.document_version_id == vid).limit(1))
    assert hold_id is not None
    with db.transaction() as s:
        _, released = router.release_hold(s, hold_id, actor="cli:root", reason="geneticist ok")
    assert len(released.outgoing) == 3
    assert {s for s, _ in statuses(db, vid).values()} == {"pending"}
    assert open_holds(db, vid) == []


def test_replacement_replaces_where_the_first_version_went(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    v1, _ = route(db, router, patient_id=pid, set_id="LAB-R", meta=lab_meta())
    deliver(db, v1)
    first = ledger(db, v1)
    v2, changes = route(
        db,
        router,
        patient_id=pid,
        set_id="LAB-R",
        version=2,
        action="REPLACEMENT",
        meta=lab_meta(copy="autre@cabinet.mssante.fr"),
    )
    assert changes is not None
    second = ledger(db, v2)
    assert statuses(db, v2) == {
        "dmp": ("pending", "replace"),
        f"mss_pro:{PRESCRIBER}": ("pending", "replace"),
        "mss_pro:autre@cabinet.mssante.fr": ("pending", "submit"),
        f"mss_pro:{COPY}": ("pending", "replace"),  # earlier recipients get the correction
        "mss_patient": ("pending", "replace"),
    }
    assert second["dmp"].request["previous_delivery_id"] == first["dmp"].id
    assert second["mss_pro:autre@cabinet.mssante.fr"].request["previous_delivery_id"] is None


def test_deletion_withdraws_exactly_where_earlier_versions_went(
    db: Database, router: Router
) -> None:
    pid = patient(db, ins=INS, qualified=True, pam={"ZFA": {"ZFA-9": "INO"}})
    v1, _ = route(db, router, patient_id=pid, set_id="LAB-D", meta=lab_meta())
    deliver(db, v1)
    first = ledger(db, v1)
    v2, changes = route(
        db, router, patient_id=pid, set_id="LAB-D", version=2, action="DELETION", meta=lab_meta()
    )
    assert changes is not None
    assert statuses(db, v2) == {
        "dmp": ("pending", "delete"),
        f"mss_pro:{PRESCRIBER}": ("pending", "delete"),
        f"mss_pro:{COPY}": ("pending", "delete"),
        "mss_patient": ("pending", "delete"),
    }
    assert {r.request["previous_delivery_id"] for r in ledger(db, v2).values()} == {
        r.id for r in first.values()
    }
    assert all(o.record["action"] == "DELETION" for o in changes.outgoing)


def test_a_new_version_supersedes_held_deliveries_of_the_earlier_one(
    db: Database, router: Router
) -> None:
    pid = patient(db)
    v1, _ = route(db, router, patient_id=pid, set_id="LAB-S", meta=lab_meta())
    deliver(db, v1)  # the professionals' mails leave; DMP and patient wait for identity
    v2, _ = route(
        db,
        router,
        patient_id=pid,
        set_id="LAB-S",
        version=2,
        action="REPLACEMENT",
        meta=lab_meta(),
    )
    first = ledger(db, v1)
    assert (first["dmp"].status, first["mss_patient"].status) == ("superseded", "superseded")
    assert "superseded by version 2" in (first["dmp"].refusal_reason or "")
    assert open_holds(db, v1) == []
    assert statuses(db, v2)["dmp"] == ("held", "submit")  # v1 never reached the DMP
    with db.transaction() as s:
        p = s.get(Patient, pid)
        assert p is not None
        p.ins, p.qualified = INS, True
        released = router.release_for_patient(s, p)
    assert sorted(o.record["version_id"] for o in released.outgoing) == [v2, v2]
    assert {e.reason for e in audit(db, "hold.close")} == {"superseded by version 2"}


def test_correction_keeps_the_announcement_released(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    img = {"source": "RIS", "document_type": "CR-IMG", "document_code": "18748-4"}
    v1, _ = route(db, router, patient_id=pid, set_id="IMG-C", meta=lab_meta(), **img)
    with db.reader() as s:
        hold_id = s.scalar(select(Hold.id).where(Hold.document_version_id == v1))
    assert hold_id is not None
    with db.transaction() as s:
        router.release_hold(s, hold_id, actor=OPERATOR, reason="told the patient")
    deliver(db, v1)
    v2, _ = route(
        db,
        router,
        patient_id=pid,
        set_id="IMG-C",
        version=2,
        action="REPLACEMENT",
        meta=lab_meta(),
        **img,
    )
    assert statuses(db, v2)["mss_patient"] == ("pending", "replace")
    assert ledger(db, v2)["dmp"].request["confidentiality_codes"] == [["N", CDA_SYSTEM]]


def test_operator_masking_updates_the_dmp_copy_each_time(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, _ = route(db, router, patient_id=pid, set_id="LAB-M", meta=lab_meta())
    deliver(db, vid)
    with db.reader() as s:
        document_id = s.scalar(select(DocumentVersion.document_id).where(DocumentVersion.id == vid))
    assert document_id is not None
    with db.transaction() as s:
        change = router.change_masking(
            s, document_id, {"MASQUE_PS": True}, actor=OPERATOR, reason="asked by the patient"
        )
    assert change.decision.masking.masque_ps.value is True
    rows = ledger(db, vid)
    assert rows["dmp#1"].operation == "update_masking"
    assert ["MASQUE_PS", MASKING_SYSTEM] in rows["dmp#1"].request["confidentiality_codes"]
    with db.transaction() as s:  # the same masking again: nothing to update
        again = router.change_masking(
            s, document_id, {"MASQUE_PS": True}, actor=OPERATOR, reason="twice"
        )
    assert again.changes.masking_updates == []
    with db.transaction() as s:
        router.change_masking(
            s, document_id, {"MASQUE_PS": False}, actor=OPERATOR, reason="mistake"
        )
    rows = ledger(db, vid)
    assert rows["dmp#2"].request["confidentiality_codes"] == [["N", CDA_SYSTEM]]
    assert rows["dmp#2"].request["previous_delivery_id"] == rows["dmp"].id
    with db.transaction() as s, pytest.raises(RoutingRefused) as missing:
        router.change_masking(s, 424242, {"MASQUE_PS": True}, actor=OPERATOR, reason="x")
    assert missing.value.status == 404


def test_masking_on_a_held_mail_keeps_it_held_for_the_masking(db: Database, router: Router) -> None:
    pid = patient(db)  # not qualified: the patient mail waits for identity
    vid, _ = route(db, router, patient_id=pid, set_id="LAB-MH", meta=lab_meta())
    with db.reader() as s:
        document_id = s.scalar(select(DocumentVersion.document_id).where(DocumentVersion.id == vid))
    assert document_id is not None
    with db.transaction() as s:
        router.change_masking(
            s, document_id, {"INVISIBLE_PATIENT": True}, actor=OPERATOR, reason="not yet"
        )
    assert open_holds(db, vid) == [
        ("dmp", "identity"),
        ("mss_patient", "identity"),
        ("mss_patient", "masking"),
    ]
    with db.transaction() as s:
        p = s.get(Patient, pid)
        assert p is not None
        p.ins, p.qualified = INS, True
        router.release_for_patient(s, p)
    assert statuses(db, vid)["dmp"] == ("pending", "submit")
    assert statuses(db, vid)["mss_patient"] == ("held", "submit")
    assert open_holds(db, vid) == [("mss_patient", "masking")]
    assert ["INVISIBLE_PATIENT", MASKING_SYSTEM] in ledger(db, vid)["dmp"].request[
        "confidentiality_codes"
    ]


def test_release_trigger_releases_the_document_it_names(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    img = {"source": "RIS", "document_type": "CR-IMG", "document_code": "18748-4"}
    vid, _ = route(db, router, patient_id=pid, set_id="IMG-T", meta=lab_meta(filler="RIS-9"), **img)
    other, _ = route(
        db, router, patient_id=pid, set_id="IMG-U", meta=lab_meta(filler="RIS-10"), **img
    )
    signal = ReleaseSignal(
        "RIS announcement done", HoldKind.ANNOUNCEMENT, "filler_order_number", "RIS-9"
    )
    with db.transaction() as s:
        released, changes = router.release_by_signal(
            s, signal, actor="pfi:hl7:RIS announcement done", reason="ORM^O01 M1"
        )
    assert released == [vid]
    assert statuses(db, vid)["mss_patient"] == ("pending", "submit")
    assert statuses(db, other)["mss_patient"] == ("held", "submit")
    assert len(changes.outgoing) == 2  # the patient mail and the DMP visibility update
    unlisted = ReleaseSignal(
        "another trigger", HoldKind.ANNOUNCEMENT, "filler_order_number", "RIS-10"
    )
    with db.transaction() as s:
        assert router.release_by_signal(s, unlisted, actor="x", reason="y")[0] == []


DMP_ONLY_IMG = {"source": "DPI", "document_type": "CR-IMG", "document_code": "18748-4"}


@pytest.mark.parametrize("by", ["operator", "trigger"])
def test_announcement_of_a_document_routed_to_the_dmp_only_is_released_to_the_patient(
    db: Database, router: Router, by: str
) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, _ = route(
        db,
        router,
        patient_id=pid,
        set_id=f"IMG-D-{by}",
        meta=lab_meta(filler="DPI-1"),
        **DMP_ONLY_IMG,
    )
    dmp = ledger(db, vid)["dmp"]
    assert dmp.status == "pending"
    assert ["INVISIBLE_PATIENT", MASKING_SYSTEM] in dmp.request["confidentiality_codes"]
    # nothing else waits: the open hold on the DMP copy is what an operator releases
    assert open_holds(db, vid) == [("dmp", "announcement")]
    deliver(db, vid)
    with db.transaction() as s:
        if by == "operator":
            hold_id = s.scalar(select(Hold.id).where(Hold.document_version_id == vid))
            assert hold_id is not None
            hold, _ = router.release_hold(s, hold_id, actor=OPERATOR, reason="announced today")
            assert (hold.released_by, hold.release_reason) == ("jdupont", "announced today")
        else:
            signal = ReleaseSignal(
                "RIS announcement done", HoldKind.ANNOUNCEMENT, "filler_order_number", "DPI-1"
            )
            assert router.release_by_signal(s, signal, actor="pfi:hl7", reason="ORM")[0] == [vid]
    update = ledger(db, vid)["dmp#1"]
    assert (update.status, update.operation) == ("pending", "update_masking")
    assert update.request["confidentiality_codes"] == [["N", CDA_SYSTEM]]
    assert open_holds(db, vid) == []


def test_versions_not_valid_are_not_routed(db: Database, router: Router) -> None:
    pid = patient(db, ins=INS, qualified=True)
    vid, changes = route(
        db, router, patient_id=pid, set_id="LAB-INV", meta=lab_meta(), status="invalid"
    )
    assert changes is None and ledger(db, vid) == {}


def test_document_meta_is_read_back_as_written(db: Database) -> None:
    meta = lab_meta()
    with db.transaction() as s:
        pid = add_patient(s).id
        vid = store_version(s, patient_id=pid, set_id="META-1", meta=meta, emit=False).id
    with db.reader() as s:
        version = s.get(DocumentVersion, vid)
        assert version is not None
        assert DocumentMeta.from_json(version.meta) == meta
        assert DocumentMeta.from_json(version.meta).orders == OrderNumbers("PL-1", "LAB-1")


def test_unknown_version_is_a_clear_error(db: Database, router: Router) -> None:
    with db.transaction() as s, pytest.raises(ValueError, match="not in the store"):
        router.route_version(
            s,
            DocumentEvent(
                document_id=1,
                version_id=987654,
                set_id="NOPE",
                version=1,
                action="INITIAL",
                patient_key="",
                received_at=datetime(2024, 3, 6, tzinfo=UTC),
            ),
        )
