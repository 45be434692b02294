"""Real SMTP and IMAP over 127.0.0.1: PFI's adapters against the strict MSSanté simulator."""

from __future__ import annotations

import io
import smtplib
import time
import zipfile

import httpx
import pytest

from pfi.adapters.mssante.imap import FetchedMail, MssImapPoller
from pfi.adapters.mssante.smtp import MssSmtpSender, OutcomeKind
from pfi.config.mssante import MssImapSettings, MssSmtpSettings
from pfi.simulators.mssante import MssSimulator
from pfi.transforms.hl7 import parse_message
from pfi.transforms.hl7.mdm import MdmHeader, build_mdm_t02
from pfi.transforms.hl7.outgoing import ReplyHeader
from pfi.transforms.mssante.inbound import InboundDocument, read_inbound_document
from pfi.transforms.mssante.reports import RecipientStatus, ReportKind, parse_delivery_report
from pfi.transforms.mssante.to_mdm import mdm_input_from_inbound
from pfi.transforms.mssante.xdm import XdmSender, build_xdm_zip
from tests.support.mss import (
    APP,
    APP_PASSWORD,
    INS,
    LPS_CDA_V1,
    PATIENT_ADDRESS,
    patient_message,
    pro_message,
    submission,
)

DR = "dr.house@ch-b.mssante.fr"
UNKNOWN = "inconnu@ch-b.mssante.fr"


def _sender(sim: MssSimulator, **settings: object) -> MssSmtpSender:
    return MssSmtpSender(
        MssSmtpSettings(host="127.0.0.1", port=sim.smtp_port, tls_mode="none", **settings)  # type: ignore[arg-type]
    )


def _poller(sim: MssSimulator) -> MssImapPoller:
    return MssImapPoller(
        MssImapSettings(
            host="127.0.0.1",
            port=sim.imap_port,
            tls_mode="none",
            username=APP,
            password=APP_PASSWORD,  # type: ignore[arg-type]
        )
    )


def _reports(sim: MssSimulator) -> list:
    with _poller(sim) as poller:
        mails = poller.fetch_unseen()
        poller.mark_processed([m.uid for m in mails])
    return [parse_delivery_report(m.raw) for m in mails]


def test_pro_and_patient_messages_reach_their_mailboxes_and_pass_the_xdm_checks(mss):
    with _sender(mss) as sender:
        pro = sender.send(pro_message([DR], read_receipt=True))
        pat = sender.send(patient_message(patient_no_reply=True))
    assert [(o.recipient, o.kind, o.code) for o in pro + pat] == [
        (DR, OutcomeKind.ACCEPTED, 250),
        (PATIENT_ADDRESS, OutcomeKind.ACCEPTED, 250),
    ]
    api = httpx.Client(base_url=mss.http_url, timeout=10)
    (received,) = api.get("/_sim/messages", params={"to": DR}).json()
    assert received["subject"] == "XDM/1.0/DDM+CR de biologie PAT-TROIS DOMINIQUE 28/03/1979"
    assert received["headers"]["Disposition-Notification-To"] == [APP]
    (xdm,) = [a for a in received["attachments"] if a["filename"] == "IHE_XDM.zip"]
    assert xdm["xdm"]["problems"] == []
    assert xdm["xdm"]["files"] == [
        "INDEX.HTM",
        "README.TXT",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
    ]
    assert xdm["xdm"]["documents"][0]["patient_id"].startswith(f"{INS}^^^")
    (to_patient,) = api.get("/_sim/messages", params={"to": PATIENT_ADDRESS}).json()
    assert to_patient["headers"]["X-MSS-MES"] == ["FIN"]
    assert api.get("/_sim/rejected").json() == []


def test_broken_xdm_is_refused_by_the_simulator_with_the_reason(mss):
    msg = pro_message([DR], message_id="<broken@hopital.mssante.fr>")
    part = next(p for p in msg.iter_attachments() if p.get_filename() == "IHE_XDM.zip")
    src = zipfile.ZipFile(io.BytesIO(part.get_payload(decode=True)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in src.namelist():
            if name != "README.TXT":
                data = src.read(name)
                if name.endswith("METADATA.XML"):
                    data = data.replace(
                        b"<rim:Value>DOC0001.XML</rim:Value>", b"<rim:Value>DOC9.XML</rim:Value>"
                    )
                zf.writestr(name, data)
    part.set_content(out.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.zip")
    with _sender(mss) as sender:
        (outcome,) = sender.send(msg)
    assert outcome.kind is OutcomeKind.REFUSED and outcome.code == 554
    assert outcome.enhanced_status == "5.6.0"
    assert "README.TXT missing" in outcome.reply
    assert "DOC9.XML" in outcome.reply
    assert mss.messages_for(DR) == []
    (rejected,) = httpx.get(f"{mss.http_url}/_sim/rejected").json()
    assert any("README.TXT missing" in p for p in rejected["problems"])


def test_unknown_address_bounces_a_dsn_read_back_over_imap_as_a_refusal(mss):
    mss.configure(unknown=[UNKNOWN])
    with _sender(mss) as sender:
        outcomes = sender.send(pro_message([DR, UNKNOWN], message_id="<b1@hopital.mssante.fr>"))
    assert {o.recipient: o.kind for o in outcomes} == {
        DR: OutcomeKind.ACCEPTED,
        UNKNOWN: OutcomeKind.ACCEPTED,  # the relay took it; bounce later
    }
    reports = [r for r in _reports(mss) if r is not None]
    failures = [
        (r.original_message_id, x)
        for r in reports
        if r.kind is ReportKind.DSN
        for x in r.recipients
        if x.status is RecipientStatus.REFUSED
    ]
    assert len(failures) == 1
    original, refusal = failures[0]
    assert original == "<b1@hopital.mssante.fr>"
    assert refusal.recipient == UNKNOWN and refusal.status_code == "5.1.1"
    assert "User unknown" in refusal.reason
    delivered = [
        x.recipient for r in reports for x in r.recipients if x.status is RecipientStatus.DELIVERED
    ]
    assert delivered == [DR]  # ACK_RECEPTION: the relay was asked for success DSNs too


def test_unknown_address_refused_at_rcpt_is_a_permanent_smtp_refusal(mss):
    mss.configure(unknown=[UNKNOWN], unknown_mode="reject")
    with _sender(mss) as sender:
        outcomes = {o.recipient: o for o in sender.send(pro_message([DR, UNKNOWN]))}
    assert outcomes[DR].kind is OutcomeKind.ACCEPTED
    assert outcomes[UNKNOWN].kind is OutcomeKind.REFUSED
    assert (outcomes[UNKNOWN].code, outcomes[UNKNOWN].enhanced_status) == (550, "5.1.1")
    assert "User unknown" in outcomes[UNKNOWN].reply
    assert len(mss.messages_for(DR)) == 1


def test_opposed_patient_auto_reply_is_read_as_a_refusal(mss):
    mss.configure(opposed=[PATIENT_ADDRESS])
    with _sender(mss, request_dsn=False) as sender:
        (outcome,) = sender.send(patient_message(message_id="<op@hopital.mssante.fr>"))
    assert outcome.kind is OutcomeKind.ACCEPTED
    (report,) = _reports(mss)
    assert report.kind is ReportKind.OPPOSITION
    assert report.original_message_id == "<op@hopital.mssante.fr>"
    (rcpt,) = report.recipients
    assert rcpt.recipient == PATIENT_ADDRESS
    assert rcpt.status is RecipientStatus.REFUSED and rcpt.opposition
    assert mss.messages_for(PATIENT_ADDRESS) == []


def test_mdn_from_the_recipient_is_parsed_read_and_error(mss):
    with _sender(mss, request_dsn=False) as sender:
        sender.send(pro_message([DR], message_id="<r1@hopital.mssante.fr>", read_receipt=True))
    api = httpx.Client(base_url=mss.http_url, timeout=10)
    assert (
        api.post(
            "/_sim/mdn", json={"message_id": "<r1@hopital.mssante.fr>", "recipient": DR}
        ).status_code
        == 200
    )
    mss.send_mdn(
        "<r1@hopital.mssante.fr>",
        DR,
        disposition="processed",
        error=("902", "Identifiant patient inconnu"),
    )
    reports = _reports(mss)
    assert [r.kind for r in reports] == [ReportKind.MDN, ReportKind.MDN]
    assert {r.original_message_id for r in reports} == {"<r1@hopital.mssante.fr>"}
    read, failed = (r.recipients[0] for r in reports)
    assert (read.recipient, read.status) == (DR, RecipientStatus.DISPLAYED)
    assert (failed.status, failed.error_code, failed.reason) == (
        RecipientStatus.ERROR,
        "902",
        "Identifiant patient inconnu",
    )


def test_one_smtp_connection_carries_many_messages(mss):
    with _sender(mss, request_dsn=False) as sender:
        for n in range(5):
            (outcome,) = sender.send(
                pro_message([DR], message_id=f"<reuse-{n}@hopital.mssante.fr>")
            )
            assert outcome.accepted
        assert sender.connections_opened == 1
    assert mss.state.smtp_connections == 1
    assert {m.connection for m in mss.messages_for(DR)} == {1}
    assert len(mss.messages_for(DR)) == 5


def test_connection_is_renewed_after_the_configured_count(mss):
    with _sender(mss, request_dsn=False, max_messages_per_connection=2) as sender:
        for n in range(5):
            assert sender.send(pro_message([DR], message_id=f"<n-{n}@hopital.mssante.fr>"))[
                0
            ].accepted
    assert mss.state.smtp_connections == 3
    assert [m.connection for m in mss.messages_for(DR)] == [1, 1, 2, 2, 3]


def test_sender_reconnects_when_the_relay_dropped_the_idle_connection():
    with (
        MssSimulator(
            smtp_port=0,
            imap_port=0,
            http_port=0,
            mailboxes={APP: APP_PASSWORD},
            smtp_idle_timeout_s=0.3,
        ) as sim,
        _sender(sim, request_dsn=False) as sender,
    ):
        assert sender.send(pro_message([DR], message_id="<i1@hopital.mssante.fr>"))[0].accepted
        time.sleep(0.8)  # the relay closes the idle connection after 0.3 s
        (outcome,) = sender.send(pro_message([DR], message_id="<i2@hopital.mssante.fr>"))
        assert outcome.accepted, outcome
        assert sender.connections_opened == 2
        assert len(sim.messages_for(DR)) == 2


def test_relay_down_is_a_transient_failure_for_every_recipient():
    with MssSimulator(smtp_port=0, imap_port=0, http_port=0) as sim:
        port = sim.smtp_port
    sender = MssSmtpSender(
        MssSmtpSettings(host="127.0.0.1", port=port, tls_mode="none", timeout_s=2)
    )
    outcomes = sender.send(pro_message([DR, "x@y.mssante.fr"]))
    assert [o.kind for o in outcomes] == [OutcomeKind.TRANSIENT, OutcomeKind.TRANSIENT]
    assert all(o.code is None and "Connection" in o.reply for o in outcomes), outcomes


def test_inbound_xdm_mail_becomes_an_inbound_document_and_an_mdm(mss):
    from email.message import EmailMessage

    cda = LPS_CDA_V1.read_bytes()
    mail = EmailMessage()
    mail["From"] = "thomas.eric@medecin.mssante.fr"
    mail["To"] = APP
    mail["Subject"] = "XDM/1.0/DDM+CR d'imagerie PAT-TROIS DOMINIQUE 28/03/1979"
    mail["Message-ID"] = "<inbound-1@medecin.mssante.fr>"
    mail.set_content("Corps du courriel")
    mail.add_attachment(
        build_xdm_zip(
            cda, submission(), XdmSender("Organisation-Y", "thomas.eric@medecin.mssante.fr")
        ),
        maintype="application",
        subtype="zip",
        filename="IHE_XDM.zip",
    )
    response = httpx.post(
        f"{mss.http_url}/_sim/inject", params={"mailbox": APP}, content=mail.as_bytes()
    )
    assert response.status_code == 200, response.text
    handled: list[FetchedMail] = []
    with _poller(mss) as poller:
        assert poller.poll(handled.append) == 1
        assert poller.fetch_unseen() == []  # marked \Seen once handled
    doc = read_inbound_document(handled[0].raw)
    assert isinstance(doc, InboundDocument), doc
    assert (doc.ins, doc.ins_oid) == (INS, "1.2.250.1.213.1.4.10")
    header = MdmHeader(ReplyHeader("PFI", "HOPITAL", "DPI", "HOPITAL", "MSS0001"), "202611251000")
    mdm = parse_message(build_mdm_t02(mdm_input_from_inbound(doc, header)), "UNICODE UTF-8")
    assert mdm.header.message_type == "MDM^T02"
    assert (mdm.get("PID-3"), mdm.get("PID-3.4.2"), mdm.get("PID-3.5")) == (
        INS,
        "1.2.250.1.213.1.4.10",
        "INS",
    )
    assert mdm.get("MSH-21.2") == "CISIS_CDA_HL7_LPS"


def test_poll_leaves_unseen_what_the_handler_failed_on(mss):
    mss.inject(
        APP, b"From: a@b.mssante.fr\r\nTo: pfi@hopital.mssante.fr\r\nSubject: one\r\n\r\nx\r\n"
    )
    mss.inject(
        APP, b"From: a@b.mssante.fr\r\nTo: pfi@hopital.mssante.fr\r\nSubject: two\r\n\r\ny\r\n"
    )

    def fail_on_two(mail: FetchedMail) -> None:
        if b"Subject: two" in mail.raw:
            raise RuntimeError("DPI unreachable")

    with _poller(mss) as poller:
        with pytest.raises(RuntimeError, match="DPI unreachable"):
            poller.poll(fail_on_two)
        remaining = poller.fetch_unseen()
    assert [b"Subject: two" in m.raw for m in remaining] == [True]
    box = httpx.get(f"{mss.http_url}/_sim/mailbox", params={"user": APP}).json()
    assert [(m["subject"], m["flags"]) for m in box] == [("one", ["\\Seen"]), ("two", [])]


def test_imap_login_with_a_wrong_password_is_a_clear_error(mss):
    from pfi.adapters.mssante.imap import MssImapError

    poller = MssImapPoller(
        MssImapSettings(
            host="127.0.0.1",
            port=mss.imap_port,
            tls_mode="none",
            username=APP,
            password="nope",  # type: ignore[arg-type]
        )
    )
    with pytest.raises(MssImapError, match=r"AUTHENTICATIONFAILED|invalid credentials"):
        poller.fetch_unseen()


def test_simulator_refuses_a_message_without_the_mss_subject(mss):
    msg = pro_message([DR])
    msg.replace_header("Subject", "Résultats")
    with smtplib.SMTP("127.0.0.1", mss.smtp_port, timeout=10) as smtp:
        code, _ = smtp.ehlo()
        assert code == 250 and smtp.has_extn("dsn")
        with pytest.raises(smtplib.SMTPDataError) as error:
            smtp.sendmail(APP, [DR], msg.as_bytes())
    assert error.value.smtp_code == 554
    assert b"Subject must start with 'XDM/1.0/DDM+'" in error.value.smtp_error
