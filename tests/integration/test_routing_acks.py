"""Acknowledgements built from the ledger (what the delivery workers send once an outcome
is known): the ZAM^Z01/Z02/Z03 owed to a transmission-volet sender, and the ORU with
masking data for the DPI; on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from pfi.config.outbound import MaskingOruSettings, OutboundSettings, ReplyEndpoint
from pfi.routes import load_routes
from pfi.routes.acks import dmp_business_ack, masking_report, mss_business_ack
from pfi.routes.document_meta import DocumentMeta, MetaRecipient, SourceMessage
from pfi.routes.router import DocumentEvent, Router
from pfi.store import Database
from pfi.store.models import Delivery, Document, PatientIdentifier
from pfi.transforms.hl7 import parse_message
from tests.support.routing_documents import add_patient, event, lab_meta, store_version

INS = "279035121518989"
NOW = datetime(2024, 3, 8, 10, 30)
OUTBOUND = OutboundSettings(
    application="PFI",
    facility="CHU-X",
    business_acks=[
        ReplyEndpoint(sending_application="SIL-Y", host="127.0.0.1", port=3001),
    ],
    masking_oru=MaskingOruSettings(host="127.0.0.1", port=3002, receiving_facility="CHU-X"),
)
VOLET_FLAGS = {
    "MASQUE_PS": "N",
    "INVISIBLE_PATIENT": "N",
    "INVISIBLE_REP_LEGAUX": "N",
    "CONNEXION_SECRETE": "N",
    "MODIF_CONF_CODE": "N",
    "DESTDMP": "Y",
    "DESTMSSANTEPS": "Y",
    "DESTMSSANTEPAT": "Y",
}


def transmission_meta(**flags: str) -> DocumentMeta:
    return DocumentMeta(
        sender_metadata={**VOLET_FLAGS, **flags},
        recipients=(MetaRecipient("adam.hoda@test-ci-sis.mssante.fr", "copy", "Adam Hoda"),),
        message=SourceMessage("015", "SIL-Y", "labo", "ORU^R01"),
    )


@pytest.fixture
def router() -> Router:
    return Router(load_routes(Path("config/routes.yaml")))


def routed(
    db: Database, router: Router, set_id: str, meta: DocumentMeta, way: str
) -> dict[str, int]:
    with db.transaction() as s:
        patient = add_patient(s, ins=INS, qualified=True)
        s.add(
            PatientIdentifier(
                patient_id=patient.id,
                authority="CHU-X",
                value="IPP-7",
                authority_oid="1.2.250.1.999.1",
                type_code="PI",
            )
        )
        version = store_version(
            s, patient_id=patient.id, set_id=set_id, meta=meta, way=way, emit=False
        )
        document = s.get(Document, version.document_id)
        assert document is not None
        router.route_version(s, DocumentEvent.from_record(event(document, version)))
        rows = s.scalars(select(Delivery).where(Delivery.document_version_id == version.id))
        return {"version": version.id, **{r.destination: r.id for r in rows}}


def test_dmp_refusal_is_acknowledged_to_the_sender_with_the_dmp_error(
    db: Database, router: Router
) -> None:
    ids = routed(db, router, "ZAM-1", transmission_meta(ACK_RECEPTION="Y"), "transmission")
    with db.reader() as s:
        out = dmp_business_ack(
            s,
            OUTBOUND,
            ids["dmp"],
            accepted=False,
            now=NOW,
            error_code="DMPClosed",
            error_text="DMP fermé",
        )
    assert out is not None and out.endpoint.port == 3001
    msg = parse_message(out.message)
    msh = msg.first("MSH")
    assert msh is not None and msh.raw(9) == "ZAM^Z01^ZAM_Z01"
    assert (msg.get("MSH-3"), msg.get("MSH-5"), msg.get("MSH-6")) == ("PFI", "SIL-Y", "labo")
    assert msg.get("MSH-10") == out.control_id
    assert (msg.get("OBX-4"), msg.get("OBX-5.1")) == ("015", "N")
    assert (msg.get("ERR-5.1"), msg.get("ERR-5.2")) == ("DMPClosed", "DMP fermé")
    with db.reader() as s:
        accepted = dmp_business_ack(s, OUTBOUND, ids["dmp"], accepted=True, now=NOW)
        received = mss_business_ack(s, OUTBOUND, ids["mss_pro"], read=False, success=True, now=NOW)
        read = mss_business_ack(s, OUTBOUND, ids["mss_pro"], read=True, success=True, now=NOW)
    assert accepted is not None and parse_message(accepted.message).get("OBX-5.1") == "Y"
    assert received is not None
    z02 = parse_message(received.message)
    assert z02.all("OBX")[1].get(5, 4) == "adam.hoda@test-ci-sis.mssante.fr"
    assert read is None  # ACK_LECTURE_MSS not asked (defaults: read false)


@pytest.mark.parametrize(
    ("meta", "way", "outbound"),
    [
        pytest.param(lab_meta(), "built", OUTBOUND, id="plain-lab-oru"),
        pytest.param(transmission_meta(ACK_RECEPTION="N"), "transmission", OUTBOUND, id="ack-n"),
        pytest.param(
            transmission_meta(ACK_RECEPTION="Y"),
            "transmission",
            OutboundSettings(),
            id="no-endpoint",
        ),
    ],
)
def test_no_business_ack_when_none_is_owed(
    db: Database, router: Router, meta: DocumentMeta, way: str, outbound: OutboundSettings
) -> None:
    ids = routed(db, router, "ZAM-2", meta, way)
    with db.reader() as s:
        assert dmp_business_ack(s, outbound, ids["dmp"], accepted=True, now=NOW) is None


def test_masking_oru_reports_document_masking_and_destinations(
    db: Database, router: Router
) -> None:
    ids = routed(
        db, router, "ORU-1", transmission_meta(MASQUE_PS="Y", DESTMSSANTEPS="N"), "transmission"
    )
    with db.reader() as s:
        out = masking_report(s, OUTBOUND, ids["version"], now=NOW)
        assert masking_report(s, OutboundSettings(), ids["version"], now=NOW) is None
    assert out is not None and out.endpoint.port == 3002
    msg = parse_message(out.message)
    assert [i for i in (msg.get("PID-3.1", rep=1), msg.get("PID-3.1", rep=2))] == [INS, "IPP-7"]
    assert msg.get("MSH-5") == "DPI"
    assert base64.b64decode(msg.all("OBX")[0].get(5, 5)) == b"<ClinicalDocument/>"
    meta = {o.get(3, 1): o.get(5, 1) for o in msg.all("OBX") if o.get(3, 3) == "MetaDMPMSS"}
    assert meta["MASQUE_PS"] == "Y" and meta["DESTDMP"] == "Y"
    statuses = {
        o.get(3, 1): o.get(5, 1)
        for o in msg.all("OBX")
        if o.get(3, 3) == "PFIDeliveryStatus" and o.get(2) == "CWE"
    }
    assert statuses == {"DELIVERY_DMP": "PENDING", "DELIVERY_MSSANTE_PATIENT": "PENDING"}
