"""A long Subject: PFI's SMTP adapter keeps it on its header line (XDM/1.0/DDM+ right after
the colon), and the simulator still reads it when folded the way the email package folds
it at 78 columns (right after the colon)."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from pfi.simulators.mssante.checks import decoded_header
from pfi.transforms.mssante.message import SUBJECT_PREFIX

LONG_SUBJECT = f"{SUBJECT_PREFIX}Compte rendu d'examens biologiques PAT-TROIS DOMINIQUE 28/03/1979"


def test_a_subject_folded_after_its_colon_is_read_unfolded_and_decoded() -> None:
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = LONG_SUBJECT
    raw = msg.as_bytes()
    assert raw.startswith(b"Subject:\r\n XDM/1.0/DDM+")  # the fold this test is about
    parsed = message_from_bytes(raw, policy=policy.compat32)
    assert decoded_header(str(parsed["Subject"])) == LONG_SUBJECT


def test_an_encoded_subject_folded_over_several_lines_keeps_its_words() -> None:
    folded = "\r\n =?utf-8?q?XDM/1=2E0/DDM+R=C3=A9sultat?=\r\n =?utf-8?q?_de_biologie?="
    assert decoded_header(folded) == f"{SUBJECT_PREFIX}Résultat de biologie"


def test_on_the_wire_a_long_subject_stays_on_its_header_line() -> None:
    from pfi.adapters.mssante.smtp import WIRE_POLICY

    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = LONG_SUBJECT
    raw = msg.as_bytes(policy=WIRE_POLICY)
    assert raw.startswith(f"Subject: {SUBJECT_PREFIX}".encode())
    assert str(message_from_bytes(raw, policy=policy.default)["Subject"]) == LONG_SUBJECT
