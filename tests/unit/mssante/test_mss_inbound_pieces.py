"""Pure pieces of the inbound integration: the DPI's ACK, the MDM's PID-3, what is a
report rather than a document, the `mssante.inbound` settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from pfi.config import ConfigError, load_settings
from pfi.config.mssante import MssanteSettings
from pfi.inbound.reception import is_report, mail_key, parse_mail
from pfi.transforms.hl7.ack_read import read_ack
from pfi.transforms.hl7.mdm import MdmHeader, MdmPatientId, build_mdm_t02
from pfi.transforms.hl7.outgoing import ReplyHeader
from pfi.transforms.mssante.inbound import InboundDocument, read_inbound_document
from pfi.transforms.mssante.notifications import DsnRecipient, build_dsn, build_mdn
from pfi.transforms.mssante.to_mdm import for_local_patient, mdm_input_from_inbound
from tests.support.mss_inbound import document_mail

MSH = "MSH|^~\\&|DPI||PFI||20261125||ACK^T02^ACK|A1|P|2.6"


def test_ack_accepted_and_refused_with_err8_msa3_or_code_label():
    assert read_ack(f"{MSH}\rMSA|AA|C1\r".encode()).accepted
    err = "ERR|||204^Unknown key^HL70357|E||||Patient inconnu"
    refused = read_ack(f"{MSH}\rMSA|AE|C1\r{err}\r".encode())
    assert (refused.accepted, refused.code, refused.control_id, refused.text) == (
        False,
        "AE",
        "C1",
        "Patient inconnu",
    )
    assert read_ack(f"{MSH}\rMSA|AR|C1|Bad message\r".encode()).text == "Bad message"
    assert read_ack(f"{MSH}\rMSA|AE|C1\rERR|||207^Application error^HL70357|E\r".encode()).text == (
        "Application error"
    )
    assert read_ack(f"{MSH}\rMSA|CE|C1\r".encode()).code == "CE"


def test_an_answer_without_msa_is_not_accepted_and_says_why():
    reading = read_ack(f"{MSH}\rZZZ|1\r".encode())
    assert not reading.accepted and reading.text.startswith("answer has no MSA segment")
    assert not read_ack(b"garbage").accepted


def _doc() -> InboundDocument:
    doc = read_inbound_document(document_mail("<u-1@cabinet.mssante.fr>"))
    assert isinstance(doc, InboundDocument)
    return doc


def test_mdm_pid3_carries_our_ins_then_our_ipp_and_not_the_senders_ids():
    header = MdmHeader(ReplyHeader("PFI", "CHU-X", "DPI", "", "C1"), "20261125100000")
    data = for_local_patient(
        mdm_input_from_inbound(_doc(), header),
        local_ids=(MdmPatientId("IPP-1", "1.2.250.1.999.1.1", "CHU-X", "PI"),),
        ins=MdmPatientId("279035121518989", "1.2.250.1.213.1.4.10", type_code="INS"),
        identity_status="VALI",
    )
    pid = next(s for s in build_mdm_t02(data).decode().split("\r") if s.startswith("PID|"))
    fields = pid.split("|")
    assert fields[3] == (
        "279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
        "~IPP-1^^^CHU-X&1.2.250.1.999.1.1&ISO^PI"
    )
    assert fields[32] == "VALI"


def test_a_patient_without_any_identifier_cannot_be_sent():
    header = MdmHeader(ReplyHeader("PFI", "", "DPI", "", "C1"), "20261125100000")
    with pytest.raises(ValueError, match="neither INS nor local identifier"):
        for_local_patient(
            mdm_input_from_inbound(_doc(), header), local_ids=(), ins=None, identity_status=""
        )


def test_dsn_and_mdn_are_reports_not_documents():
    original = document_mail("<sent@hopital.mssante.fr>")
    when = datetime(2026, 11, 25, tzinfo=UTC)
    dsn = build_dsn(
        original,
        [DsnRecipient("x@y.mssante.fr", "failed", "5.1.1")],
        reporting_mta="mta",
        sender="MAILER-DAEMON@y.mssante.fr",
        to="pfi@hopital.mssante.fr",
        date=when,
        message_id="<dsn@y>",
    )
    assert is_report(dsn.as_bytes())
    assert not is_report(original)
    with_notify = original.replace(
        b"Subject:", b"Disposition-Notification-To: pfi@hopital.mssante.fr\r\nSubject:", 1
    )
    mdn = build_mdn(
        with_notify,
        final_recipient="x@y.mssante.fr",
        sender="x@y.mssante.fr",
        date=when,
        message_id="<mdn@y>",
    )
    assert is_report(mdn.as_bytes())


def test_a_mail_without_message_id_is_keyed_by_its_bytes():
    raw = b"From: a@b.mssante.fr\r\nSubject: s\r\n\r\nbody\r\n"
    key = mail_key(parse_mail(raw), raw)
    assert key.startswith("<sha256:") and key == mail_key(parse_mail(raw), raw)
    assert key != mail_key(parse_mail(raw + b"x"), raw + b"x")


def test_inbound_settings_need_the_dpi_and_forbid_unknown_keys():
    with pytest.raises(ValidationError, match=r"inbound\.dpi"):
        MssanteSettings.model_validate({"inbound": {}})
    with pytest.raises(ValidationError, match=r"inbound\.dpi\.hots"):
        MssanteSettings.model_validate(
            {"inbound": {"dpi": {"host": "127.0.0.1", "port": 2600, "hots": "x"}}}
        )


def test_inbound_config_error_names_file_line_and_key(tmp_path: Path):
    path = tmp_path / "pfi.yaml"
    path.write_text(
        "mssante:\n  inbound:\n    dpi: {host: 127.0.0.1, port: 2600}\n    mailbx: Documents\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    problems = [str(p) for p in error.value.problems]
    assert any(
        p.startswith(f"{path}:4: mssante.inbound.mailbx: unknown key; expected one of: dpi,")
        for p in problems
    ), problems


def test_a_patients_opposition_auto_reply_is_left_to_the_outbound_side():
    reply = (
        b"From: 279035121518989@patient.mssante.fr\r\nTo: pfi@hopital.mssante.fr\r\n"
        b"Auto-Submitted: auto-replied\r\nSubject: Reponse automatique\r\n"
        b"In-Reply-To: <pat-1@hopital.mssante.fr>\r\nMessage-ID: <ar@patient.mssante.fr>\r\n\r\n"
        b"L'usager s'est oppose a la messagerie.\r\n"
    )
    assert is_report(reply)
