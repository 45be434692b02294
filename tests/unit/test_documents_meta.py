"""What a version keeps for routing: MetaDMPMSS as sent, recipients, JSON round trip."""

from __future__ import annotations

import dataclasses

import pytest

from pfi.documents.meta import (
    PractitionerRef,
    VersionMeta,
    imaging_people,
    metadata_as_sent,
    transmission_people,
)
from pfi.documents.reading import ImagingReading, read_document_message
from pfi.routes.document_meta import DocumentMeta
from pfi.routes.inputs import PatientFacts, RecipientRole, RoutingInput
from pfi.routes.model import DocumentKind
from pfi.transforms.cda.transmission import read_cda_transmission
from pfi.transforms.hl7 import parse_message
from tests.support.documents import MDM_INIT_B64, ORU_INIT
from tests.support.ris import RIS
from tests.unit.test_documents_planning import MAPPINGS, RULES, SETTINGS, record


def test_metadata_as_sent_keeps_what_the_sender_said_and_omits_what_it_did_not() -> None:
    oru = read_cda_transmission(parse_message(ORU_INIT.read_bytes())).metadata
    values = metadata_as_sent(oru)
    assert values["DESTDMP"] == "Y" and values["MASQUE_PS"] == "N"
    assert values["ACK_LECTURE_MSS"] == "Y"
    assert values["CORPSMAIL_PS"].startswith("Cher confrère")
    mdm = read_cda_transmission(parse_message(MDM_INIT_B64.read_bytes())).metadata
    assert metadata_as_sent(mdm)["INVISIBLE_PATIENT"] == "Y"
    assert "CORPSMAIL_PATIENT" not in metadata_as_sent(mdm)  # not sent: absent, not empty
    unsent = dataclasses.replace(mdm, ack_reception=None, ack_lecture_mss=None)
    assert "ACK_RECEPTION" not in metadata_as_sent(unsent)
    assert "ACK_LECTURE_MSS" not in metadata_as_sent(unsent)


def test_prt_recipient_naming_the_prescriber_is_a_prescriber_recipient() -> None:
    t = read_cda_transmission(parse_message(ORU_INIT.read_bytes()))
    rct = next(p for p in t.recipients if not p.is_patient)
    meta = VersionMeta(
        way="transmission",
        message_type="ORU^R01",
        control_id="1",
        sender="A|B",
        sender_metadata=metadata_as_sent(t.metadata),
        people=transmission_people(t, {rct.person_id}),
    )
    (recipient,) = meta.routing_recipients()
    assert recipient.address == "adam.hoda@test-ci-sis.mssante.fr"
    assert recipient.role is RecipientRole.PRESCRIBER
    assert meta.patient_address.endswith("@patient.mssante.fr")
    assert meta.sender_participant is not None
    assert meta.sender_participant.organization_id == "1120459876"
    assert meta.reply_to == "adam.hoda@test-ci-sis.mssante.fr"


def test_meta_survives_its_json_form_and_feeds_a_routing_input() -> None:
    t = read_cda_transmission(parse_message(ORU_INIT.read_bytes()))
    meta = VersionMeta(
        way="transmission",
        message_type="ORU^R01",
        control_id="1",
        sender="A|B",
        sender_metadata=metadata_as_sent(t.metadata),
        people=transmission_people(t, set()),
        warnings=("w",),
    )
    again = VersionMeta.from_json(meta.to_json())
    assert again == meta
    routing = RoutingInput(
        source="DPI",
        document_kind=DocumentKind.CR_BIO,
        patient=PatientFacts(ins_qualified=True, ins="279035121518989"),
        sender_metadata=again.sender_metadata_for_routing(),
        recipients=again.routing_recipients(),
        patient_address=again.patient_address,
        patient_may_not_reply=again.patient_may_not_reply,
    )
    assert routing.metadata is not None and routing.metadata.flag("DESTDMP") is True


def test_built_document_people_carry_rpps_for_the_annuaire() -> None:
    meta = VersionMeta(
        way="built",
        message_type="ORU^R01",
        control_id="1",
        sender="SGL|LABO",
        people=(PractitionerRef(role="prescriber", id="10003456789", id_type="RPPS"),),
    )
    assert meta.routing_recipients() == ()  # no address yet: resolved by RPPS downstream
    assert meta.to_json()["people"][0]["id_type"] == "RPPS"


@pytest.mark.parametrize("extra", [{"unknown_future_key": 1}])
def test_meta_written_by_a_newer_version_still_reads(extra: dict) -> None:
    data = VersionMeta(way="built", message_type="ORU^R01", control_id="1", sender="x").to_json()
    assert VersionMeta.from_json(data | extra).way == "built"


def test_imaging_meta_gives_routing_the_accession_number_and_prt_recipients() -> None:

    prt = (
        b"\rPRT||||RCT^Destinataire|10003456789^MARTIN^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO"
        b"^^^^RPPS||||||||||^^X.400^paul.martin@test.mssante.fr"
    )
    raw = (RIS / "03_oru_dicom_study_uid.hl7").read_bytes().rstrip(b"\r") + prt
    reading = read_document_message(record(raw, "RIS"), SETTINGS, MAPPINGS, RULES)
    assert isinstance(reading, ImagingReading)
    meta = VersionMeta(
        way="built",
        message_type="ORU^R01",
        control_id="R03",
        sender="RIS|IMAGERIE_CHU",
        people=imaging_people(reading.report, reading.participants),
        accession_number="ACC1003",
    )
    routed = DocumentMeta.from_json(meta.to_json())
    assert routed.orders.accession == "ACC1003"
    (recipient,) = routed.recipients
    assert (recipient.address, recipient.role) == (
        "paul.martin@test.mssante.fr",
        RecipientRole.PRESCRIBER,
    )
    roles = [p.role for p in meta.people]
    assert roles == ["prescriber", "validator", "recipient"]
