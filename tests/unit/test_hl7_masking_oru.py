"""The ORU with masking data to the DPI: the volet's ORU shape, MetaDMPMSS as applied,
one status per destination; checked with PFI's reader and with hl7apy as an oracle."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hl7apy.parser import parse_message as hl7apy_parse

from pfi.transforms.hl7 import parse_message
from pfi.transforms.hl7.masking_oru import (
    DestinationStatus,
    DocumentMasking,
    MaskingReport,
    OruPatient,
    OruPatientId,
    build_masking_oru,
)
from pfi.transforms.hl7.outgoing import ReplyHeader

INS = "279035121518989"
HEADER = ReplyHeader("PFI", "CHU-X", "DPI", "CHU-X", "P1712345678000")
NOW = datetime(2024, 3, 8, 10, 30)
PATIENT = OruPatient(
    ids=(
        OruPatientId(INS, "1.2.250.1.213.1.4.10", "ASIP-SANTE-INS-NIR", "INS"),
        OruPatientId("IPP-1", "1.2.250.1.999.1", "CHU-X", "PI"),
    ),
    family="DUPONT",
    given="JEAN",
    birth_date="19790328",
    sex="M",
    identity_status="VALI",
)


def report(**overrides: object) -> MaskingReport:
    values: dict[str, object] = {
        "patient": PATIENT,
        "action": "initial",
        "document_uid": "1.2.250.1.999.2^CR-1",
        "type_code": "18748-4",
        "type_display": "CR d'imagerie",
        "placer_order": "PL-1",
        "filler_order": "RIS-777",
        "masking": DocumentMasking(invisible_patient=True),
        "destinations": (
            DestinationStatus("dmp", "delivered", at=datetime(2024, 3, 8, 9, 0, tzinfo=UTC)),
            DestinationStatus("mss_pro", "delivered", address="dr.martin@chu-x.mssante.fr"),
            DestinationStatus(
                "mss_patient",
                "held",
                address=f"{INS}@patient.mssante.fr",
                reason="announcement: patient not yet informed",
            ),
        ),
        "cda": b"<ClinicalDocument/>",
    }
    values.update(overrides)
    return MaskingReport(**values)  # type: ignore[arg-type]


def test_oru_carries_document_masking_and_destination_statuses() -> None:
    raw = build_masking_oru(report(), HEADER, now=NOW)
    msg = parse_message(raw)
    msh = msg.first("MSH")
    assert msh is not None
    assert (msh.raw(9), msh.raw(12), msh.raw(21)) == (
        "ORU^R01^ORU_R01",
        "2.5",
        "2.1^CISIS_CDA_HL7_V2",
    )
    assert msg.get("PID-3.1") == INS and msg.get("PID-32") == "VALI"
    assert (msg.get("ORC-1"), msg.get("ORC-3"), msg.get("OBR-25")) == ("NW", "RIS-777", "F")
    first = msg.all("OBX")[0]
    assert first.get(2) == "ED" and base64.b64decode(first.get(5, 5)) == b"<ClinicalDocument/>"
    meta = {o.get(3, 1): o.get(5, 1) for o in msg.all("OBX") if o.get(3, 3) == "MetaDMPMSS"}
    assert meta == {
        "MASQUE_PS": "N",
        "INVISIBLE_PATIENT": "Y",
        "INVISIBLE_REP_LEGAUX": "N",
        "CONNEXION_SECRETE": "N",
        "DESTDMP": "Y",
        "DESTMSSANTEPS": "Y",
        "DESTMSSANTEPAT": "Y",
    }
    statuses = [
        (o.get(3, 1), o.get(4), o.get(5, 1))
        for o in msg.all("OBX")
        if o.get(3, 3) == "PFIDeliveryStatus" and o.get(2) == "CWE"
    ]
    assert statuses == [
        ("DELIVERY_DMP", "1", "DELIVERED"),
        ("DELIVERY_MSSANTE_PS", "2", "DELIVERED"),
        ("DELIVERY_MSSANTE_PATIENT", "3", "HELD"),
    ]
    addresses = {o.get(4): o.get(5, 4) for o in msg.all("OBX") if o.get(2) == "XTN"}
    assert addresses == {"2": "dr.martin@chu-x.mssante.fr", "3": f"{INS}@patient.mssante.fr"}
    assert msg.get("NTE-3") == "announcement: patient not yet informed"
    dmp = next(o for o in msg.all("OBX") if o.get(3, 1) == "DELIVERY_DMP")
    assert dmp.get(14) == "20240308090000"


def test_hl7apy_reads_it_as_an_oru_r01_2_5() -> None:
    text = build_masking_oru(report(), HEADER, now=NOW).decode("utf-8")
    theirs = hl7apy_parse(text, find_groups=False)
    assert theirs.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert theirs.pid.pid_3[0].cx_1.value == INS
    assert theirs.obr.obr_4.to_er7() == "18748-4^CR d'imagerie^LN"


def test_refused_destination_reads_as_not_sent_and_deletion_as_withdrawal() -> None:
    msg = parse_message(
        build_masking_oru(
            report(
                action="deletion",
                cda=None,
                destinations=(
                    DestinationStatus("dmp", "refused", reason="refused by patient (opposition)"),
                ),
            ),
            HEADER,
            now=NOW,
        )
    )
    assert (msg.get("ORC-1"), msg.get("OBR-25")) == ("CA", "X")
    first = msg.all("OBX")[0]
    assert (first.get(2), first.get(5, 1), first.get(11)) == (
        "RP",
        "1.2.250.1.999.2^CR-1",
        "D",
    )
    meta = {o.get(3, 1): o.get(5, 1) for o in msg.all("OBX") if o.get(3, 3) == "MetaDMPMSS"}
    assert meta["DESTDMP"] == "N"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"action": "replace"}, "action: initial, replacement or deletion"),
        ({"destinations": (DestinationStatus("fax", "delivered"),)}, "destination kind"),
        ({"destinations": (DestinationStatus("dmp", "lost"),)}, "destination status"),
        ({"document_uid": ""}, "document id"),
    ],
)
def test_bad_report_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_masking_oru(report(**overrides), HEADER, now=NOW)
