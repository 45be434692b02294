"""Way (a): the official CI-SIS transmission messages, and what must be rejected."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pfi.transforms.cda.transmission import (
    DocumentAction,
    ParticipantRole,
    is_cda_transmission,
    read_cda_transmission,
)
from pfi.transforms.hl7 import ErrorCode, Hl7Error, parse_message

OFFICIAL = (
    Path(__file__).parents[1]
    / "fixtures/ci-sis/hl7V2-exemples/Vague 2/Trans_Doc-CDA-HL7V2"
    / "TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1"
)
ORU_INIT = OFFICIAL / "ORU/Transmission initiale ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7"
ORU_RPLC = OFFICIAL / "ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7"
ORU_DEL = OFFICIAL / "ORU/Suppression ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7"
ORU_DEL_CDA = OFFICIAL / "ORU/Suppression ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml"
MDM_INIT = OFFICIAL / "MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1.er7"
MDM_INIT_B64 = OFFICIAL / "MDM/Transmission initiale MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7"
MDM_RPLC = OFFICIAL / "MDM/Remplacement MDM/message_MDM_CR_Radio_RPLC_N1.er7"
MDM_DEL = OFFICIAL / "MDM/Suppression MDM/message_MDM_CR_Radio_DEL_N1.er7"


def read(path: Path):
    return read_cda_transmission(parse_message(path.read_bytes()))


def text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def reparse(raw: str):
    return read_cda_transmission(parse_message(raw.encode("utf-8")))


def replace_cda(raw: str, cda: bytes) -> str:
    """The same message with another CDA in OBX 1 (OBX-5.5)."""
    lines = raw.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    for i, line in enumerate(lines):
        if line.startswith("OBX|1|ED|"):
            fields = line.split("|")
            comps = fields[5].split("^")
            comps[4] = base64.b64encode(cda).decode()
            fields[5] = "^".join(comps)
            lines[i] = "|".join(fields)
    return "\r".join(lines)


@pytest.mark.parametrize(
    ("path", "action", "doc_id", "version"),
    [
        (ORU_INIT, DocumentAction.INITIAL, "1.2.250.1.213.1.1.9", 1),
        (ORU_RPLC, DocumentAction.REPLACEMENT, "1.2.250.1.213.1.1.13", 2),
        (MDM_INIT_B64, DocumentAction.INITIAL, "1.2.250.1.71.4.2.2.120456789.71024000081", 1),
        (MDM_RPLC, DocumentAction.REPLACEMENT, "1.2.250.1.71.4.2.2.120456789.71024000082", 2),
        (MDM_DEL, DocumentAction.DELETION, "1.2.250.1.71.4.2.2.120456789.71024000082", 2),
    ],
)
def test_official_message_is_accepted_with_its_action(path, action, doc_id, version):
    t = read(path)
    assert t.action is action
    assert str(t.summary.id) == doc_id
    assert t.summary.version_number == version
    assert t.cda.lstrip(b"\xef\xbb\xbf").startswith(b"<")
    assert t.summary.ins is not None and t.summary.ins.extension == "279035121518989"


def test_official_oru_replacement_names_the_replaced_document():
    t = read(ORU_RPLC)
    assert str(t.summary.replaced_document_id) == "1.2.250.1.213.1.1.12"
    assert str(t.summary.set_id) == "1.2.250.1.213.1.1.9"
    assert t.summary.code == "11502-2"
    assert t.summary.title == "Compte rendu d'examens biologiques"
    assert ("1.2.250.1.213.1.1.1.55", "2023.01") in [
        (i.root, i.extension) for i in t.summary.template_ids
    ]


def test_official_oru_metadata_and_participants_are_read():
    t = read(ORU_INIT)
    m = t.metadata
    assert (m.masque_ps, m.invisible_patient, m.dest_dmp, m.dest_mssante_ps) == (
        False,
        False,
        True,
        True,
    )
    assert m.dest_mssante_patient and m.ack_reception and m.ack_lecture_mss
    assert m.corpsmail_ps.startswith("Cher confrère")
    assert t.sender.person_id == "801234567866" and t.sender.organization_id == "1120459876"
    assert t.sender.organization_id_type == "FINEG"
    assert [r.mssante_address for r in t.recipients if not r.is_patient] == [
        "adam.hoda@test-ci-sis.mssante.fr"
    ]
    assert [r.person_id_type for r in t.recipients if r.is_patient] == ["INS"]
    assert t.reply_to == "adam.hoda@test-ci-sis.mssante.fr"
    # The official ORU's CORPSMAIL_PS Base64 is truncated: decoded as far as it goes, reported.
    assert t.warnings and "CORPSMAIL_PS" in t.warnings[0]


def test_official_mdm_metadata_masks_the_document_from_the_patient():
    t = read(MDM_INIT_B64)
    assert t.metadata.invisible_patient and t.metadata.invisible_rep_legaux
    assert t.metadata.connexion_secrete and not t.metadata.dest_mssante_patient
    assert t.unique_document_number == "1.2.250.1.71.4.2.2.120456789.71024000081"
    assert t.participants[0].role is ParticipantRole.SENDER


def test_official_mdm_replacement_carries_the_parent_document_number():
    t = read(MDM_RPLC)
    assert t.parent_document_number == "1.2.250.1.71.4.2.2.120456789.71024000081"
    assert t.metadata.modif_conf_code


def test_official_mdm_without_base64_variant_carries_a_placeholder_and_is_rejected():
    # Its OBX-5.5 decodes to "Document medcial au format CDA niveau 1", not XML; the
    # "_Base64" variant next to it carries the real document (accepted above).
    with pytest.raises(Hl7Error) as err:
        read(MDM_INIT)
    assert err.value.code is ErrorCode.DATA_TYPE_ERROR
    assert "not well-formed" in err.value.text
    assert str(err.value.location) == "OBX-5.5"


def test_official_oru_deletion_as_published_is_rejected_for_patient_mismatch():
    # The published message embeds an older CDA of another patient (INS 277076322082910)
    # while PID-3 is 279035121518989: a deletion for the wrong patient is never sent.
    with pytest.raises(Hl7Error) as err:
        read(ORU_DEL)
    assert err.value.application_code == "904"
    assert str(err.value.location) == "PID-3"
    assert "277076322082910" in err.value.text


def test_official_oru_deletion_with_its_companion_cda_is_a_deletion():
    t = reparse(replace_cda(text(ORU_DEL), ORU_DEL_CDA.read_bytes()))
    assert t.action is DocumentAction.DELETION
    # The companion file is version 2 sent by the replacement example: the one to delete.
    assert str(t.summary.id) == "1.2.250.1.213.1.1.13"
    assert t.summary.version_number == 2


def test_all_transmission_messages_are_recognised_by_their_profile():
    for path in (ORU_INIT, ORU_RPLC, ORU_DEL, MDM_INIT, MDM_INIT_B64, MDM_RPLC, MDM_DEL):
        assert is_cda_transmission(parse_message(path.read_bytes()))


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("ORC|NW|", "ORC|RO|", "OBX-11"),
        ("ORC|NW|", "ORC|CA|", "OBX-11"),
        ("ORC|NW|", "ORC|XO|", "ORC-1"),
    ],
)
def test_orc_and_obx11_that_disagree_are_rejected(old, new, where):
    with pytest.raises(Hl7Error) as err:
        reparse(text(ORU_INIT).replace(old, new, 1))
    assert str(err.value.location) == where


def test_mdm_event_that_disagrees_with_orc_is_rejected():
    raw = text(MDM_INIT_B64).replace("MDM^T02^MDM_T02", "MDM^T10^MDM_T02", 1)
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert str(err.value.location) == "ORC-1"
    assert "T10" in err.value.text


def test_message_without_cda_obx_is_rejected():
    raw = "\r".join(
        line
        for line in text(ORU_INIT).replace("\n", "\r").split("\r")
        if not line.startswith(("OBX|1|ED", "PRT"))
    )
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert err.value.code is ErrorCode.REQUIRED_FIELD_MISSING
    assert "no OBX of type ED" in err.value.text


def test_base64_that_does_not_decode_is_rejected():
    raw = text(ORU_INIT).replace("^Base64^PD94", "^Base64^P!94", 1)
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert err.value.code is ErrorCode.DATA_TYPE_ERROR
    assert "'!' is not base64" in err.value.text


def test_cda_that_is_not_well_formed_is_rejected():
    raw = replace_cda(text(ORU_INIT), b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id")
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert "not well-formed" in err.value.text


def test_cda_of_another_patient_is_rejected():
    cda = ORU_DEL_CDA.read_bytes().replace(b'extension="279035121518989"', b'extension="1"', 1)
    with pytest.raises(Hl7Error) as err:
        reparse(replace_cda(text(ORU_DEL), cda))
    assert err.value.application_code == "904"


def test_ipp_of_the_same_domain_that_differs_is_rejected():
    raw = text(ORU_INIT).replace(
        "|||279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207||",
        "|||279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207"
        "~999^^^HOP&1.2.3.4.567.8.9.10&ISO^PI||",
        1,
    )
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert "999" in err.value.text and err.value.application_code == "902"


def test_missing_metadata_is_rejected():
    raw = "\r".join(
        line for line in text(ORU_INIT).replace("\n", "\r").split("\r") if "DESTDMP" not in line
    )
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert "DESTDMP" in err.value.text


def test_dmp_destination_without_sender_prt_is_rejected():
    raw = "\r".join(
        line
        for line in text(ORU_INIT).replace("\n", "\r").split("\r")
        if not line.startswith("PRT||UC||SB")
    )
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert "PRT SB" in err.value.text


def test_replacement_without_rplc_in_the_cda_is_rejected():
    raw = text(ORU_INIT).replace("ORC|NW|", "ORC|RO|", 1)
    raw = raw.replace("||||||F|\rPRT||UC||SB", "||||||C|\rPRT||UC||SB", 1)
    raw = raw.replace("||||||F|\nPRT||UC||SB", "||||||C|\nPRT||UC||SB", 1)
    with pytest.raises(Hl7Error) as err:
        reparse(raw)
    assert "RPLC" in err.value.text
