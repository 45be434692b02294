"""ACKs: MSH built from the message, MSA-2 = MSH-10, ERR per version, enhanced mode."""

from __future__ import annotations

from datetime import UTC, datetime

from pfi.transforms.hl7 import ErrorCode, ErrorLocation, Hl7Error, parse_message, read_header
from pfi.transforms.hl7.ack import AckDecision, build_ack, should_send_accept_ack

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ORU = (
    "MSH|^~\\&|LAB|HOSP|PFI|HOSP|20240101120000||ORU^R01^ORU_R01|MSG0001|P|{version}|||{acc}|"
    "{app}||8859/1\rPID|1||123^^^HOSP^PI\r"
)


def oru(version: str = "2.5", acc: str = "", app: str = "") -> bytes:
    return ORU.format(version=version, acc=acc, app=app).encode()


def test_aa_swaps_sender_and_receiver_and_echoes_control_id() -> None:
    header = read_header(oru(), "8859/1")
    ack = parse_message(build_ack(header, AckDecision("AA"), now=NOW), "8859/1")
    assert ack.get("MSH-3") == "PFI" and ack.get("MSH-5") == "LAB"
    assert ack.get("MSH-4") == "HOSP" and ack.get("MSH-6") == "HOSP"
    assert ack.get("MSH-9") == "ACK" and ack.get("MSH-9.2") == "R01"
    assert ack.get("MSH-12") == "2.5"
    assert ack.get("MSH-18") == "8859/1"
    assert ack.get("MSA-1") == "AA" and ack.get("MSA-2") == "MSG0001"
    assert ack.first("ERR") is None


def test_ae_carries_an_err_segment_with_code_location_and_text_in_v25() -> None:
    header = read_header(oru(), "8859/1")
    err = Hl7Error(
        ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 is empty | really", ErrorLocation("PID", field=3)
    )
    ack = parse_message(build_ack(header, AckDecision("AE", err), now=NOW), "8859/1")
    assert ack.get("MSA-1") == "AE"
    assert ack.get("ERR-2.1") == "PID" and ack.get("ERR-2.3") == "3"
    assert ack.get("ERR-3.1") == "101" and ack.get("ERR-3.3") == "HL70357"
    assert ack.get("ERR-4") == "E"
    assert ack.get("ERR-8") == "PID-3 is empty | really"


def test_v23_err_uses_err1() -> None:
    header = read_header(oru("2.3"), "8859/1")
    err = Hl7Error(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "no", ErrorLocation("MSH", field=9))
    ack = parse_message(build_ack(header, AckDecision("AR", err), now=NOW), "8859/1")
    err_seg = ack.first("ERR")
    assert err_seg is not None
    assert err_seg.get(1, 1) == "MSH" and err_seg.get(1, 3) == "9"
    assert err_seg.get(1, 4, 1) == "200"


def test_enhanced_mode_answers_with_commit_codes() -> None:
    header = read_header(oru(acc="AL", app="NE"), "8859/1")
    ack = parse_message(build_ack(header, AckDecision("AA"), now=NOW), "8859/1")
    assert ack.get("MSA-1") == "CA"


def test_enhanced_mode_conditions_decide_whether_to_answer() -> None:
    def sends(acc: str, code: str) -> bool:
        return should_send_accept_ack(read_header(oru(acc=acc), "8859/1"), code)

    assert sends("AL", "AA") and sends("AL", "AE")
    assert not sends("NE", "AA") and not sends("NE", "AE")
    assert not sends("ER", "AA") and sends("ER", "AE")
    assert sends("SU", "AA") and not sends("SU", "AR")
    assert sends("", "AA")


def test_nack_without_readable_msh_is_still_a_valid_message() -> None:
    err = Hl7Error(ErrorCode.SEGMENT_SEQUENCE_ERROR, "no MSH", ErrorLocation("MSH"))
    ack = parse_message(build_ack(None, AckDecision("AE", err), now=NOW), "8859/1")
    assert ack.get("MSA-1") == "AE" and ack.get("ERR-3.1") == "100"
