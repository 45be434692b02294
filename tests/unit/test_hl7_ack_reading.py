"""Reading a peer's answer to a message PFI sent (ZAM, masking ORU)."""

from __future__ import annotations

import pytest

from pfi.config.outbound import OutboundRetry
from pfi.delivery.hl7_sender import backoff_s
from pfi.transforms.hl7.ack_reading import read_peer_ack

MSH = "MSH|^~\\&|DPI|CHU|PFI|CHU|20240308103000||ACK|A1|P|2.5\r"


@pytest.mark.parametrize("code", ["AA", "CA", "aa"])
def test_accepting_codes_are_accepted(code: str) -> None:
    ack = read_peer_ack(f"{MSH}MSA|{code}|P1\r".encode(), "P1")
    assert ack.accepted and ack.text == ""


def test_refusal_carries_the_peers_text_from_msa_3_else_err() -> None:
    assert read_peer_ack(f"{MSH}MSA|AE|P1|patient inconnu\r".encode(), "P1").text == (
        "patient inconnu"
    )
    err = f"{MSH}MSA|AR|P1\rERR||PID^1^3|204^Unknown key identifier^HL70357|E||||IPP absent\r"
    ack = read_peer_ack(err.encode(), "P1")
    assert (ack.accepted, ack.code, ack.text) == (False, "AR", "IPP absent")
    bare = read_peer_ack(f"{MSH}MSA|AE|P1\r".encode(), "P1")
    assert bare.text == "refused with AE"


def test_ack_of_another_message_is_not_an_acceptance() -> None:
    ack = read_peer_ack(f"{MSH}MSA|AA|P2\r".encode(), "P1")
    assert not ack.accepted and "'P2', not 'P1'" in ack.text


def test_answer_that_is_not_an_ack_is_a_refusal_that_says_so() -> None:
    assert "without MSA" in read_peer_ack(MSH.encode(), "P1").text
    assert not read_peer_ack(b"HTTP/1.1 400 Bad Request\r\n", "P1").accepted


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    retry = OutboundRetry(initial_backoff_s=5, max_backoff_s=30)
    assert [backoff_s(n, retry) for n in range(1, 6)] == [5, 10, 20, 30, 30]


def test_retry_settings_refuse_a_cap_below_the_initial_delay() -> None:
    with pytest.raises(ValueError, match="max_backoff_s"):
        OutboundRetry(initial_backoff_s=60, max_backoff_s=10)
