"""`document_versions.meta` as routing reads it (the documents stage's VersionMeta JSON):
read back as written, the official transmission-volet ORU routed from it, and every
malformed key named."""

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
        way="transmission",
        sender_metadata={"DESTDMP": "Y", "MASQUE_PS": "N", "CORPSMAIL_PS": "Bonjour,\nci-joint"},
        patient_may_not_reply=True,
        recipients=(
            MetaRecipient("dr.x@chu.mssante.fr", RecipientRole.PRESCRIBER, "Dr X", "81", "RPPS"),
            MetaRecipient("secretariat@chu.mssante.fr", RecipientRole.COPY, "Secrétariat"),
            MetaRecipient("dr.y@cabinet.mssante.fr", RecipientRole.PRESCRIBER, "Dr Y"),
        ),
        patient_address=f"{INS}@patient.mssante.fr",
        reply_to="secretariat@chu.mssante.fr",
        message=SourceMessage("015", "SIL-Y", "labo", "ORU^R01"),
        orders=OrderNumbers("98765431", "1001-E1", "ACC-1"),
        unique_document_number="DOC-12",
        warnings=("OBX 12 (CORPSMAIL_PS): Base64 truncated",),
    )


def test_meta_is_read_back_exactly_as_written() -> None:
    meta = full_meta()
    assert DocumentMeta.from_json(meta.to_json()) == meta
    assert DocumentMeta.from_json(None) == DocumentMeta()


def version_meta_of_transmission(raw: bytes) -> dict[str, Any]:
    """The JSON the documents stage writes for a transmission-volet message (its
    VersionMeta: MetaDMPMSS as sent, every PRT participant, the ORC-12 prescriber)."""
    msg = parse_message(raw)
    t = read_cda_transmission(msg)
    roles = {"SB": "sender", "RCT": "recipient", "REPLY": "reply"}
    people: list[dict[str, Any]] = [
        {
            "role": roles[p.role.value],
            "id": p.person_id,
            "id_type": p.person_id_type,
            "id_authority": p.person_id_authority,
            "family": p.family,
            "given": p.given,
            "prefix": "",
            "organization_id": p.organization_id,
            "organization_id_type": p.organization_id_type,
            "organization_name": p.organization_name,
            "device_id": p.device_id,
            "mssante_address": p.mssante_address,
            "is_patient": p.is_patient,
        }
        for p in t.participants
    ]
    people.append({"role": "prescriber", "id": "801234567897"})
    m = t.metadata
    flags = {
        "MASQUE_PS": m.masque_ps,
        "INVISIBLE_PATIENT": m.invisible_patient,
        "INVISIBLE_REP_LEGAUX": m.invisible_rep_legaux,
        "CONNEXION_SECRETE": m.connexion_secrete,
        "MODIF_CONF_CODE": m.modif_conf_code,
        "DESTDMP": m.dest_dmp,
        "DESTMSSANTEPS": m.dest_mssante_ps,
        "DESTMSSANTEPAT": m.dest_mssante_patient,
        "ACK_RECEPTION": m.ack_reception,
        "ACK_LECTURE_MSS": m.ack_lecture_mss,
    }
    metadata = {k: "Y" if v else "N" for k, v in flags.items() if v is not None}
    if m.corpsmail_ps is not None:
        metadata["CORPSMAIL_PS"] = m.corpsmail_ps
    return {
        "way": "transmission",
        "message_type": msg.header.message_type,
        "control_id": msg.header.control_id,
        "sender": msg.header.sender,
        "sender_metadata": metadata,
        "people": people,
        "patient_may_not_reply": m.patient_may_not_reply,
        "placer_order": "",
        "filler_order": "",
        "cda_version_number": t.summary.version_number,
        "txa_unique_document_number": t.unique_document_number,
        "txa_parent_document_number": t.parent_document_number,
        "unmapped_codes": [],
        "fingerprint": "",
        "warnings": list(t.warnings),
        "release_policy": "",  # a key routing does not read is ignored
    }


def test_meta_of_the_official_transmission_oru_routes_as_the_sender_asked() -> None:
    meta = DocumentMeta.from_json(version_meta_of_transmission(ORU_INIT.read_bytes()))
    assert meta.message == SourceMessage("015", "SIL-Y", "labo", "ORU^R01", "P")
    assert meta.sender_metadata is not None
    assert meta.sender_metadata["DESTDMP"] == "Y" and meta.sender_metadata["ACK_RECEPTION"] == "Y"
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
    decision = decide(
        shipped_routes(),
        RoutingInput(
            source="SGL",
            document_kind="CR-BIO",
            patient=PatientFacts(ins_qualified=True, ins=INS),
            sender_metadata=meta.sender_metadata,
            recipients=meta.routing_recipients,
            patient_address=meta.patient_address,
        ),
    )
    assert sorted(d.key for d in decision.to_send) == [
        "dmp",
        "mss_patient",
        "mss_pro:adam.hoda@test-ci-sis.mssante.fr",
    ]


def test_way_b_prescriber_and_copies_with_resolved_addresses_are_recipients() -> None:
    meta = DocumentMeta.from_json(
        {
            "way": "built",
            "people": [
                {
                    "role": "prescriber",
                    "id": "10003",
                    "family": "MARTIN",
                    "given": "Paul",
                    "mssante_address": "paul.martin@chu-x.mssante.fr",
                },
                {"role": "copy", "id": "10004", "family": "DURAND"},  # address not resolved
                {"role": "copy", "id": "10005", "mssante_address": "PAUL.MARTIN@chu-x.mssante.fr"},
                {"role": "validator", "id": "20001", "family": "BIOLOGISTE"},
            ],
            "placer_order": "PL-1",
            "filler_order": "LAB-2",
        }
    )
    assert meta.recipients == (
        MetaRecipient(
            "paul.martin@chu-x.mssante.fr", RecipientRole.PRESCRIBER, "Paul MARTIN", "10003"
        ),
    )
    assert meta.orders == OrderNumbers("PL-1", "LAB-2")
    assert meta.message is None


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ([], "meta: expected a JSON object, got list"),
        ({"sender_metadata": {"DESTDMP": True}}, "meta.sender_metadata.DESTDMP: expected a string"),
        ({"sender_metadata": {"DEST_DMP": "Y"}}, "DEST_DMP not in the MetaDMPMSS table"),
        ({"people": {}}, "meta.people: expected a JSON array"),
        ({"people": ["x"]}, "meta.people[0]: expected a JSON object, got str"),
        (
            {"people": [{"role": "boss", "mssante_address": "a@b.fr"}]},
            "meta.people[0].role: expected one of recipient, sender, reply",
        ),
        (
            {"people": [{"role": "recipient", "mssante_address": "nobody"}]},
            "meta.people[0].mssante_address: not a mail address: 'nobody'",
        ),
        (
            {"people": [{"role": "recipient", "mssante_address": "a@b.fr", "is_patient": "no"}]},
            "meta.people[0].is_patient: expected true or false",
        ),
        ({"patient_may_not_reply": "yes"}, "meta.patient_may_not_reply: expected true or false"),
        ({"filler_order": 12}, "meta.filler_order: expected a string, got int"),
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
