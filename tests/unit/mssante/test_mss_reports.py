"""DSN, MDN, CI-SIS error mails and opposition auto-replies, tied to the message we sent."""

from __future__ import annotations

from datetime import UTC, datetime

from pfi.transforms.mssante.notifications import DsnRecipient, build_dsn, build_mdn
from pfi.transforms.mssante.reports import (
    RecipientStatus,
    ReportKind,
    parse_delivery_report,
)
from tests.support.mss import MSS_FIXTURES, pro_message

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

#: A bounce as Postfix writes it (headers-only return, ENVID echoed).
POSTFIX_BOUNCE = (MSS_FIXTURES / "postfix_bounce.eml").read_bytes()
#: The MDN example of the CI-SIS volet "LPS doc CDA courriel MSS" (struct-msg-mdn.md),
#: verbatim with its irregularities (no blank line after the part headers...).
CISIS_MDN_EXAMPLE = (MSS_FIXTURES / "cisis_mdn_example.eml").read_bytes()


def test_postfix_bounce_is_a_refusal_with_the_remote_reason():
    report = parse_delivery_report(POSTFIX_BOUNCE)
    assert report.kind is ReportKind.DSN
    assert report.original_message_id == "<pro-1@hopital.mssante.fr>"
    assert report.envelope_id == "pro-1@hopital.mssante.fr"
    assert report.reporter == "relay.operateur.mssante.fr"
    (rcpt,) = report.recipients
    assert rcpt.recipient == "inconnu@ch-b.mssante.fr"
    assert rcpt.status is RecipientStatus.REFUSED and rcpt.permanent
    assert rcpt.status_code == "5.1.1"
    assert rcpt.reason == (
        "550 5.1.1 <inconnu@ch-b.mssante.fr>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert rcpt.remote_mta == "mx.ch-b.mssante.fr"


def test_dsn_without_returned_headers_is_linked_by_its_envelope_id():
    stripped = POSTFIX_BOUNCE.split(
        b"--7F1A2C0086.1795013331/relay.operateur.mssante.fr\n"
        b"Content-Description: Undelivered Message Headers"
    )[0]
    report = parse_delivery_report(
        stripped + b"--7F1A2C0086.1795013331/relay.operateur.mssante.fr--\n"
    )
    assert report.original_message_id == "<pro-1@hopital.mssante.fr>"


def test_built_dsn_round_trips_delivered_delayed_and_failed():
    original = pro_message(["a@b.mssante.fr", "c@d.mssante.fr", "e@f.mssante.fr"]).as_bytes()
    dsn = build_dsn(
        original,
        [
            DsnRecipient("a@b.mssante.fr", "delivered", "2.0.0", "250 2.0.0 Ok"),
            DsnRecipient("c@d.mssante.fr", "delayed", "4.4.1", "421 4.4.1 try later"),
            DsnRecipient("e@f.mssante.fr", "failed", "5.7.1", "550 5.7.1 refused"),
        ],
        reporting_mta="relay.test",
        sender="MAILER-DAEMON@relay.test",
        to="pfi@hopital.mssante.fr",
        date=NOW,
        message_id="<dsn@relay.test>",
        envelope_id="pro-1@hopital.mssante.fr",
    )
    report = parse_delivery_report(dsn.as_bytes())
    assert report.original_message_id == "<pro-1@hopital.mssante.fr>"
    statuses = {r.recipient: r.status for r in report.recipients}
    assert statuses == {
        "a@b.mssante.fr": RecipientStatus.DELIVERED,
        "c@d.mssante.fr": RecipientStatus.DELAYED,
        "e@f.mssante.fr": RecipientStatus.REFUSED,
    }


def test_cisis_mdn_example_is_an_integration_error_902():
    report = parse_delivery_report(CISIS_MDN_EXAMPLE)
    assert report.kind is ReportKind.MDN
    assert report.original_message_id == "<199509192301.23456>"
    (rcpt,) = report.recipients
    assert rcpt.recipient == "serviceY_auto@chb.mssante.fr"
    assert rcpt.status is RecipientStatus.ERROR
    assert rcpt.error_code == "902"
    assert rcpt.reason == "Identifiant de patient inconnu"


def test_built_mdn_displayed_and_error_round_trip():
    original = pro_message(["dr@b.mssante.fr"], read_receipt=True).as_bytes()
    read = build_mdn(
        original,
        final_recipient="dr@b.mssante.fr",
        sender="dr@b.mssante.fr",
        date=NOW,
        message_id="<mdn1@b.mssante.fr>",
        disposition_type="displayed",
    )
    assert str(read["To"]) == "pfi@hopital.mssante.fr"
    report = parse_delivery_report(read.as_bytes())
    assert report.kind is ReportKind.MDN
    assert report.original_message_id == "<pro-1@hopital.mssante.fr>"
    assert report.recipients[0].status is RecipientStatus.DISPLAYED
    failed = build_mdn(
        original,
        final_recipient="dr@b.mssante.fr",
        sender="dr@b.mssante.fr",
        date=NOW,
        message_id="<mdn2@b.mssante.fr>",
        error=("903", "INS non présent dans le document"),
    )
    assert str(failed["Subject"]).startswith("[KO Intégration système !][903] XDM/1.0/DDM+")
    names = [p.get_filename() for p in failed.iter_attachments() if p.get_filename()]
    assert names == ["IHE_XDM.zip"]  # the original attachments given back, as the volet asks
    rcpt = parse_delivery_report(failed.as_bytes()).recipients[0]
    assert (rcpt.status, rcpt.error_code, rcpt.reason) == (
        RecipientStatus.ERROR,
        "903",
        "INS non présent dans le document",
    )


def test_cisis_standard_error_mail_is_recognised_by_its_subject():
    mail = (
        b"From: serviceY_auto@chb.mssante.fr\r\nTo: pfi@hopital.mssante.fr\r\n"
        b"Subject: =?utf-8?q?=5BErreur_d=E2=80=99int=C3=A9gration_!=5D=5B902=5D?= "
        b"XDM/1.0/DDM+ECHOGRAPHIE CORSE FIGATELLIX 12/10/1988\r\n"
        b"In-Reply-To: <pro-1@hopital.mssante.fr>\r\nMessage-ID: <e1@chb.mssante.fr>\r\n\r\n"
        b"Erreur detectee : Identifiant de patient inconnu\r\n"
    )
    report = parse_delivery_report(mail)
    assert report.kind is ReportKind.ERROR_MAIL
    assert report.original_message_id == "<pro-1@hopital.mssante.fr>"
    assert report.recipients[0].error_code == "902"


def _auto_reply(sender: str, text: str, auto: str = "auto-replied") -> bytes:
    return (
        f"From: {sender}\r\nTo: pfi@hopital.mssante.fr\r\nAuto-Submitted: {auto}\r\n"
        "Subject: =?utf-8?q?R=C3=A9ponse_automatique?=\r\n"
        "In-Reply-To: <pat-1@hopital.mssante.fr>\r\nMessage-ID: <ar@patient.mssante.fr>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}\r\n"
    ).encode()


def test_patient_opposition_auto_reply_is_a_refusal():
    report = parse_delivery_report(
        _auto_reply("279035121518989@patient.mssante.fr", "L'usager s'est OPPOSÉ à la messagerie.")
    )
    assert report.kind is ReportKind.OPPOSITION
    assert report.original_message_id == "<pat-1@hopital.mssante.fr>"
    (rcpt,) = report.recipients
    assert rcpt.recipient == "279035121518989@patient.mssante.fr"
    assert rcpt.status is RecipientStatus.REFUSED and rcpt.opposition
    assert "OPPOSÉ" in rcpt.reason


def test_other_auto_replies_and_ordinary_mail_are_not_reports():
    assert parse_delivery_report(_auto_reply("dr@b.mssante.fr", "Je suis absent, opposé.")) is None
    assert (
        parse_delivery_report(
            _auto_reply("279035121518989@patient.mssante.fr", "Message bien reçu.")
        )
        is None
    )
    assert (
        parse_delivery_report(
            _auto_reply("279035121518989@patient.mssante.fr", "opposition", auto="no")
        )
        is None
    )
    assert parse_delivery_report(pro_message(["a@b.mssante.fr"]).as_bytes()) is None
