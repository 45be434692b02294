"""The MSSanté message: subject, headers, body and attachments as the CI-SIS volets say."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from pfi.config.mssante import MssTemplates
from pfi.transforms.mssante.action import DocumentAction
from pfi.transforms.mssante.message import (
    Audience,
    MssOptions,
    MssPatient,
    build_mss_message,
    mss_subject,
)
from pfi.transforms.mssante.xdm_read import check_xdm_zip
from tests.support.mss import (
    NOW,
    PATIENT,
    PATIENT_ADDRESS,
    SENDER,
    document,
    patient_message,
    pro_message,
)


def _body(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_subject_follows_the_xdm_ddm_pattern_with_french_birth_date():
    patient = MssPatient("Pat-Trois", "Dominique", date(1979, 3, 28), "x")
    assert (
        mss_subject("CR d'imagerie médicale", patient)
        == "XDM/1.0/DDM+CR d'imagerie médicale PAT-TROIS Dominique 28/03/1979"
    )


def test_professional_message_headers_and_attachments():
    msg = pro_message(
        ["dr.house@hopital-b.mssante.fr", "labo@hopital-b.mssante.fr"],
        reply_to=("secretariat@hopital.mssante.fr",),
        read_receipt=True,
    )
    assert str(msg["From"]) == "PFI Hôpital <pfi@hopital.mssante.fr>"
    assert str(msg["To"]) == "dr.house@hopital-b.mssante.fr, labo@hopital-b.mssante.fr"
    assert str(msg["Reply-To"]) == "secretariat@hopital.mssante.fr"
    assert str(msg["Disposition-Notification-To"]) == "pfi@hopital.mssante.fr"
    assert str(msg["Subject"]) == "XDM/1.0/DDM+CR de biologie PAT-TROIS DOMINIQUE 28/03/1979"
    assert msg["X-MSS-MES"] is None
    assert msg["Sender"] is None
    assert str(msg["Message-ID"]) == "<pro-1@hopital.mssante.fr>"
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["IHE_XDM.zip"]
    assert attachments[0].get_content_type() == "application/zip"
    assert check_xdm_zip(attachments[0].get_payload(decode=True)) == []
    assert "Veuillez trouver ci-joint le document « CR de biologie »" in _body(msg)
    assert msg.as_bytes().count(b"\r\n") > 10  # SMTP line endings, ready to send


def test_no_read_receipt_header_unless_asked():
    assert pro_message(["a@b.mssante.fr"])["Disposition-Notification-To"] is None


def test_patient_message_carries_fin_when_no_reply_is_wanted():
    msg = patient_message(patient_no_reply=True, body="Bonjour, voici votre résultat.")
    assert str(msg["X-MSS-MES"]) == "FIN"
    assert str(msg["To"]) == PATIENT_ADDRESS
    assert _body(msg) == "Bonjour, voici votre résultat.\n"
    assert patient_message()["X-MSS-MES"] is None


def test_sender_body_wins_and_replacement_notice_heads_it():
    msg = build_mss_message(
        document(action=DocumentAction.REPLACE),
        PATIENT,
        ["a@b.mssante.fr"],
        Audience.PROFESSIONAL,
        SENDER,
        MssTemplates(),
        message_id="<r@hopital.mssante.fr>",
        date=NOW,
        options=MssOptions(body="Cher confrère, ci-joint le CR corrigé."),
    )
    body = _body(msg)
    assert body.startswith("Ce document « CR de biologie » remplace la version")
    assert body.endswith("Cher confrère, ci-joint le CR corrigé.\n")


def test_deletion_uses_the_deletion_notice_and_the_template():
    msg = build_mss_message(
        document(action=DocumentAction.DELETE),
        PATIENT,
        ["a@b.mssante.fr"],
        Audience.PROFESSIONAL,
        SENDER,
        MssTemplates(professional="Signé : $organisation"),
        message_id="<d@hopital.mssante.fr>",
        date=NOW,
    )
    assert _body(msg) == (
        "Le document « CR de biologie » précédemment transmis a été retiré par son auteur : "
        "il doit être supprimé et ne doit plus être utilisé.\n\nSigné : Hôpital de test\n"
    )


def test_pdf_rendering_follows_the_archive_with_a_readable_name():
    msg = build_mss_message(
        document(pdf=b"%PDF-1.7 test"),
        PATIENT,
        ["a@b.mssante.fr"],
        Audience.PROFESSIONAL,
        SENDER,
        MssTemplates(),
        message_id="<p@hopital.mssante.fr>",
        date=NOW,
    )
    names = [a.get_filename() for a in msg.iter_attachments()]
    assert names == ["IHE_XDM.zip", "20240115_CR_de_biologie_PAT-TROIS_DOMINIQUE.pdf"]
    pdf = list(msg.iter_attachments())[1]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_payload(decode=True) == b"%PDF-1.7 test"


@pytest.mark.parametrize(
    ("audience", "recipients", "error"),
    [
        (Audience.PROFESSIONAL, [PATIENT_ADDRESS], "patient address"),
        (Audience.PATIENT, ["dr@b.mssante.fr"], "not in the patient domain"),
        (Audience.PATIENT, ["123456789012345@patient.mssante.fr"], "not this patient's INS"),
        (Audience.PROFESSIONAL, [], "no recipient"),
        (Audience.PROFESSIONAL, ["Dr X <x@b.mssante.fr>"], "single plain e-mail address"),
    ],
)
def test_wrong_recipients_are_refused_with_the_reason(audience, recipients, error):
    with pytest.raises(ValueError, match=error):
        build_mss_message(
            document(),
            PATIENT,
            recipients,
            audience,
            SENDER,
            MssTemplates(),
            message_id="<x@hopital.mssante.fr>",
            date=NOW,
        )


def test_naive_date_and_bad_message_id_are_refused():
    kwargs = dict(
        document=document(),
        patient=PATIENT,
        recipients=["a@b.mssante.fr"],
        audience=Audience.PROFESSIONAL,
        sender=SENDER,
        templates=MssTemplates(),
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        build_mss_message(**kwargs, message_id="<a@b>", date=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="message_id"):
        build_mss_message(**kwargs, message_id="no-brackets@b", date=NOW)
