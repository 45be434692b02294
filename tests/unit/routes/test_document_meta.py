"""`document_versions.meta`, the contract between the documents stage and routing: read
back as written, built from the official transmission-volet ORU, and every malformed
key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pfi.routes import RecipientRole, RoutingInput, decide
from pfi.routes.document_meta import (
    DocumentMeta,
    DocumentMetaError,
    MetaRecipient,
    OrderNumbers,
    SourceMessage,
)
from pfi.routes.inputs import PatientFacts
from pfi.routes.stored_input import input_from_json, input_to_json
from pfi.transforms.cda.transmission import read_cda_transmission
from pfi.transforms.hl7 import parse_message
from tests.unit.routes.builders import INS, shipped_routes

VOLET = (
    Path(__file__).resolve().parents[2]
    / "fixtures/ci-sis/hl7V2-exemples/Vague 2/Trans_Doc-CDA-HL7V2"
    / "TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
)
ORU_INIT = VOLET / "ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"


def full_meta() -> DocumentMeta:
    return DocumentMeta(
        sender_metadata={"DESTDMP": "Y", "MASQUE_PS": "N", "CORPSMAIL_PS": "Bonjour,\nci-joint"},
        patient_may_not_reply=True,
        recipients=(
            MetaRecipient("dr.x@chu.mssante.fr", RecipientRole.PRESCRIBER, "Dr X", "81", "RPPS"),
            MetaRecipient("secretariat@chu.mssante.fr"),
        ),
        patient_address=f"{INS}@patient.mssante.fr",
        reply_to="secretariat@chu.mssante.fr",
        message=SourceMessage("015", "SIL-Y", "labo", "PFI-X", "Org-X", "ORU^R01", "T"),
        orders=OrderNumbers("98765431", "1001-E1", "ACC-1"),
        unique_document_number="DOC-12",
        warnings=("OBX 12 (CORPSMAIL_PS): Base64 truncated",),
    )


def test_meta_is_read_back_exactly_as_written() -> None:
    meta = full_meta()
    assert DocumentMeta.from_json(meta.to_json()) == meta
    assert DocumentMeta.from_json(None) == DocumentMeta()
    assert meta.to_json()["schema"] == 1


def test_meta_of_the_official_transmission_oru() -> None:
    msg = parse_message(ORU_INIT.read_bytes())
    transmission = read_cda_transmission(msg)
    meta = DocumentMeta.from_transmission(
        transmission,
        msg.header,
        prescriber_ids=["801234567897"],
        orders=OrderNumbers(placer="98765431", filler="1001-E1"),
    )
    assert meta.message == SourceMessage(
        "015", "SIL-Y", "labo", "PFI-X", "Organisation-X", "ORU^R01", "P"
    )
    assert meta.sender_metadata is not None
    assert {k: v for k, v in meta.sender_metadata.items() if not k.startswith("CORPSMAIL")} == {
        "MASQUE_PS": "N",
        "INVISIBLE_PATIENT": "N",
        "INVISIBLE_REP_LEGAUX": "N",
        "CONNEXION_SECRETE": "N",
        "MODIF_CONF_CODE": "N",
        "DESTDMP": "Y",
        "DESTMSSANTEPS": "Y",
        "DESTMSSANTEPAT": "Y",
        "ACK_RECEPTION": "Y",
        "ACK_LECTURE_MSS": "Y",
    }
    assert meta.sender_metadata["CORPSMAIL_PS"].startswith("Cher confr")
    assert meta.recipients == (
        MetaRecipient(
            "adam.hoda@test-ci-sis.mssante.fr",
            RecipientRole.PRESCRIBER,
            "Adam Hoda",
            "801234567897",
            "IDNPS",
        ),
    )
    assert meta.patient_address == "27707279035121518989@patient.mssante.fr"
    assert meta.reply_to == "adam.hoda@test-ci-sis.mssante.fr"
    # and routing reads it: DMP, the PRT RCT professional, the patient
    stored = DocumentMeta.from_json(meta.to_json())
    decision = decide(
        shipped_routes(),
        RoutingInput(
            source="SGL",
            document_kind="CR-BIO",
            patient=PatientFacts(ins_qualified=True, ins=INS),
            sender_metadata=stored.sender_metadata,
            recipients=stored.routing_recipients,
            patient_address=stored.patient_address,
        ),
    )
    assert sorted(d.key for d in decision.to_send) == [
        "dmp",
        "mss_patient",
        "mss_pro:adam.hoda@test-ci-sis.mssante.fr",
    ]


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ([], "meta: expected a JSON object, got list"),
        ({"schema": 2}, "meta.schema: this PFI reads schema 1, got 2"),
        ({"recipents": []}, "meta: unknown key(s) recipents"),
        ({"sender_metadata": {"DESTDMP": True}}, "meta.sender_metadata.DESTDMP: expected a string"),
        ({"sender_metadata": {"DEST_DMP": "Y"}}, "DEST_DMP not in the MetaDMPMSS table"),
        ({"recipients": [{"role": "copy"}]}, "meta.recipients[0].address: not a mail address"),
        (
            {"recipients": [{"address": "a@b.fr", "role": "boss"}]},
            "meta.recipients[0].role: expected prescriber or copy, got 'boss'",
        ),
        ({"patient_may_not_reply": "yes"}, "meta.patient_may_not_reply: expected true or false"),
        ({"message": {"sending_application": "SIL"}}, "meta.message.control_id: the MSH-10"),
        ({"orders": {"filler": 12}}, "meta.orders.filler: expected a string, got int"),
        ({"warnings": "x"}, "meta.warnings: expected a JSON array"),
    ],
)
def test_malformed_meta_names_the_key(meta: Any, message: str) -> None:
    with pytest.raises(DocumentMetaError) as exc:
        DocumentMeta.from_json(meta)
    assert message in str(exc.value)


def test_stored_routing_input_decides_the_same_again() -> None:
    meta = full_meta()
    routing_input = RoutingInput(
        source="SGL",
        document_kind="CR-BIO",
        document_code="11502-2",
        action="replacement",
        patient=PatientFacts.from_store(qualified=True, ins=INS, pam={"ZFA": {"ZFA-9": "INO"}}),
        sender_metadata=meta.sender_metadata,
        confidentiality="R",
        recipients=meta.routing_recipients,
        patient_address=meta.patient_address,
        patient_may_not_reply=True,
        delivered_before=frozenset({"dmp", "mss_pro:dr.x@chu.mssante.fr"}),
        released_holds=frozenset({"announcement"}),
        operator_masking={"INVISIBLE_REPRESENTANTS_LEGAUX": True},
    )
    back = input_from_json(input_to_json(routing_input))
    assert back == routing_input
    routes = shipped_routes()
    assert decide(routes, back).to_json() == decide(routes, routing_input).to_json()
