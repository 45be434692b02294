"""Documents received by MSSanté: XDM or bare CDA in, patient identity and action out,
and the MDM^T02/T10 to the DPI shaped like the CI-SIS volet's official examples."""

from __future__ import annotations

import base64
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from pfi.transforms.hl7 import parse_message
from pfi.transforms.hl7.mdm import MdmHeader, MdmMail, build_mdm_t02
from pfi.transforms.hl7.outgoing import ReplyHeader
from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.inbound import (
    InboundDocument,
    InboundRejection,
    read_inbound_document,
    read_inbound_documents,
)
from pfi.transforms.mssante.to_mdm import mdm_input_from_inbound
from pfi.transforms.mssante.xdm import XdmSender, build_xdm_zip
from tests.support.mss import APP, LPS_CDA_V1, LPS_CDA_V2, LPS_MDM_INIT, submission

SENDER = "thomas.eric@medecin.mssante.fr"
HEADER = MdmHeader(
    ReplyHeader("PFI-Y", "Organisation-Y", "RIS-Y", "Organisation-Y", "015"), "202106060931"
)


def _mail(*attachments: tuple[str, str, bytes], body: str = "Corps du courriel") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Dr Eric <{SENDER}>"
    msg["To"] = APP
    msg["Reply-To"] = "adam.hoda@test-ci-sis.mssante.fr"
    msg["Subject"] = "XDM/1.0/DDM+CR d'imagerie PAT-TROIS DOMINIQUE 28/03/1979"
    msg["Message-ID"] = "<in-1@medecin.mssante.fr>"
    msg["Disposition-Notification-To"] = SENDER
    msg.set_content(body)
    for filename, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def _xdm(cda: bytes, action: DocumentAction = DocumentAction.NEW) -> tuple[str, str, bytes]:
    data = build_xdm_zip(cda, submission(), XdmSender("Organisation-Y", SENDER), action=action)
    return ("IHE_XDM.zip", "application/zip", data)


def test_xdm_mail_gives_the_document_with_ins_and_mail_context():
    cda = LPS_CDA_V1.read_bytes()
    doc = read_inbound_document(_mail(_xdm(cda), ("cr.pdf", "application/pdf", b"%PDF-1.4")))
    assert isinstance(doc, InboundDocument), doc
    assert doc.source == "xdm" and doc.action is DocumentAction.NEW
    assert (doc.ins, doc.ins_oid) == ("279035121518989", "1.2.250.1.213.1.4.10")
    patient = doc.header.patient
    assert (patient.family_name, patient.given_name, patient.birth_date, patient.sex) == (
        "PAT-TROIS",
        "DOMINIQUE",
        "19790328",
        "F",
    )
    assert doc.cda == cda
    assert str(doc.header.id) == "1.2.250.1.71.4.2.2.120456789.71024000081"
    assert doc.mail.sender == SENDER and doc.mail.notify_to == SENDER
    assert doc.mail.reply_to == "adam.hoda@test-ci-sis.mssante.fr"
    assert doc.mail.body_text.strip() == "Corps du courriel"
    assert [a.filename for a in doc.attachments] == ["cr.pdf"]


def test_replacement_action_and_parent_id_come_from_xdm_and_cda():
    doc = read_inbound_document(_mail(_xdm(LPS_CDA_V2.read_bytes(), DocumentAction.REPLACE)))
    assert isinstance(doc, InboundDocument), doc
    assert doc.action is DocumentAction.REPLACE
    assert str(doc.header.parent_id) == "1.2.250.1.71.4.2.2.120456789.71024000081"


def test_bare_cda_attachment_is_read_too():
    doc = read_inbound_document(_mail(("cr.xml", "text/xml", LPS_CDA_V1.read_bytes())))
    assert isinstance(doc, InboundDocument), doc
    assert doc.source == "cda" and doc.ins == "279035121518989"


def test_document_without_ins_is_rejected_903():
    cda = LPS_CDA_V1.read_bytes().replace(b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4.5"')
    result = read_inbound_document(_mail(("cr.xml", "text/xml", cda)))
    assert isinstance(result, InboundRejection)
    assert result.error_code == "903"
    assert "carries no INS" in result.reason and "1.2.3.4.5^279035121518989" in result.reason


def test_ins_without_its_traits_is_rejected_905():
    cda = LPS_CDA_V1.read_bytes().replace(b'<birthTime value="19790328">', b"<birthTime>")
    result = read_inbound_document(_mail(("cr.xml", "text/xml", cda)))
    assert isinstance(result, InboundRejection)
    assert (result.error_code, result.error_label) == ("905", "L'INS transmis n'est pas complet")
    assert "birth date" in result.reason


@pytest.mark.parametrize(
    ("attachment", "expected"),
    [
        (("IHE_XDM.zip", "application/zip", b"not a zip"), "not a zip archive"),
        (("notes.txt", "text/plain", b"hello"), "no IHE_XDM.zip nor CDA document attached"),
    ],
)
def test_unusable_mail_is_rejected_906_with_the_reason(attachment, expected):
    (result,) = read_inbound_documents(_mail(attachment))
    assert isinstance(result, InboundRejection)
    assert result.error_code == "906" and expected in result.reason


def test_mdm_t02_parses_back_and_matches_the_official_example_structure():
    doc = read_inbound_document(_mail(_xdm(LPS_CDA_V1.read_bytes())))
    raw = build_mdm_t02(mdm_input_from_inbound(doc, HEADER))
    ours = parse_message(raw, "UNICODE UTF-8")
    official = parse_message(LPS_MDM_INIT.read_bytes(), "UNICODE UTF-8")
    assert [s.name for s in ours] == [s.name for s in official]
    for path in (
        "MSH-9",
        "MSH-9.2",
        "MSH-9.3",
        "MSH-12",
        "MSH-17",
        "MSH-18",
        "MSH-21",
        "MSH-21.2",
        "PID-3.1",
        "PID-3.4.1",
        "PID-3.4.2",
        "PID-3.5",
        "PID-5.1",
        "PID-5.2",
        "PID-7",
        "PID-8",
        "PV1-2",
        "ORC-1",
        "OBR-4.1",
        "OBR-4.3",
        "TXA-1",
        "TXA-2",
        "TXA-3",
        "TXA-12",
        "TXA-17",
        "TXA-22",
        "OBX-2",
        "OBX-3.1",
        "OBX-5.2",
        "OBX-5.3",
        "OBX-5.4",
        "OBX-11",
    ):
        assert ours.get(path) == official.get(path), path
    assert ours.header.message_type == "MDM^T02"
    assert base64.b64decode(ours.first("OBX").get(5, 5)) == doc.cda
    prts = ours.all("PRT")
    assert [p.get(4) for p in prts] == ["SB", "RCT", "REPLY"]
    assert [p.get(15, 4) for p in prts] == [SENDER, APP, "adam.hoda@test-ci-sis.mssante.fr"]
    assert prts[0].get(5) == "801234564895" and prts[0].get(5, 13) == "IDNPS"
    mail_obx = ours.all("OBX")[1]
    assert mail_obx.get(3) == "<in-1@medecin.mssante.fr>"
    assert mail_obx.get(3, 2).startswith("XDM/1.0/DDM+CR d'imagerie")
    assert base64.b64decode(mail_obx.get(5, 5)).decode().strip() == "Corps du courriel"
    flags = [(o.get(3), o.get(5)) for o in ours.all("OBX")[2:]]
    assert [c for c, _ in flags] == [o.get(3) for o in official.all("OBX")[2:]]
    assert [v for _, v in flags] == ["N", "N", "N", "N"]


def test_replacement_becomes_mdm_t10_with_the_replaced_id():
    doc = read_inbound_document(_mail(_xdm(LPS_CDA_V2.read_bytes(), DocumentAction.REPLACE)))
    msg = parse_message(build_mdm_t02(mdm_input_from_inbound(doc, HEADER)), "UNICODE UTF-8")
    assert msg.get("MSH-9") == "MDM" and msg.get("MSH-9.2") == "T10"
    assert msg.get("ORC-1") == "RO" and msg.first("OBX").get(11) == "C"
    assert msg.get("TXA-13") == "1.2.250.1.71.4.2.2.120456789.71024000081"


def test_delimiters_in_mail_subject_are_escaped():
    doc = read_inbound_document(_mail(_xdm(LPS_CDA_V1.read_bytes())))
    data = mdm_input_from_inbound(doc, HEADER)
    data = replace(data, mail=MdmMail("<a|b@c>", "R&D ^ x~y"))
    msg = parse_message(build_mdm_t02(data), "UNICODE UTF-8")
    assert msg.all("OBX")[1].get(3) == "<a|b@c>"
    assert msg.all("OBX")[1].get(3, 2) == "R&D ^ x~y"


def test_archive_inside_a_forwarded_mail_is_not_this_mails_document():
    forwarded = EmailMessage()
    forwarded["Subject"] = "Fwd"
    forwarded.set_content("see attached")
    forwarded.add_attachment(
        message_from_bytes(_mail(_xdm(LPS_CDA_V1.read_bytes())), policy=policy.default)
    )
    parsed = message_from_bytes(forwarded.as_bytes(), policy=policy.default)
    assert "application/zip" in [p.get_content_type() for p in parsed.walk()]  # it is in there
    (result,) = read_inbound_documents(forwarded.as_bytes())
    assert isinstance(result, InboundRejection) and result.error_code == "906"
