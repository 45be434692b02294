"""Reading HL7 v2: separators, escapes, repetitions, charsets, versions, Z segments."""

from __future__ import annotations

import pytest
from hl7apy.parser import parse_message as hl7apy_parse

from pfi.transforms.hl7 import ErrorCode, Hl7Error, parse_message, read_header
from pfi.transforms.hl7.dtm import parse_date

ADT = (
    "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306111154||ADT^A01^ADT_A01|3975|P|2.5^FRA^2.11|||"
    "||FRA|{charset}|FR||2.11^IHE_FRANCE-2.11-PAM\r"
    "EVN||20240306111154\r"
    "PID|1||000003^^^CHU-X&000897406&N^PI~279035121518989^^^ASIP-SANTE-INS-NIR&"
    "1.2.250.1.213.1.4.10&ISO^INS||{name}^H\\E\\l\\S\\ne^^^^^L||19790328|F|||||||||||||||||||||||"
    "|VALI\r"
    "ZFA|ACTIF|20240306111154\r"
)


def adt(charset: str = "UNICODE UTF-8", name: str = "NOËL") -> str:
    return ADT.format(charset=charset, name=name)


def test_header_fields_are_read_from_msh() -> None:
    h = read_header(adt().encode("utf-8"), "8859/1")
    assert (h.sending_application, h.sending_facility) == ("GAM", "CHU-X")
    assert h.message_type == "ADT^A01"
    assert h.message_structure == "ADT_A01"
    assert h.control_id == "3975"
    assert h.version == "2.5" and h.version_field == "2.5^FRA^2.11"
    assert h.profiles == ("2.11^IHE_FRANCE-2.11-PAM",)
    assert h.identity_status == "VALI"
    ins = next(i for i in h.patient_ids if i.type_code == "INS")
    assert (ins.value, ins.authority_oid) == ("279035121518989", "1.2.250.1.213.1.4.10")
    assert h.patient_key() == "000003^CHU-X"


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [("UNICODE UTF-8", "utf-8"), ("8859/1", "latin-1"), ("8859/15", "iso8859-15")],
)
def test_accents_decode_in_the_declared_charset(charset: str, encoding: str) -> None:
    msg = parse_message(adt(charset, "HÉLÈNE-NOËL").encode(encoding), "ASCII")
    assert msg.get("PID-5.1") == "HÉLÈNE-NOËL"


def test_source_default_charset_applies_when_msh18_is_empty() -> None:
    raw = adt("", "NOËL").encode("latin-1")
    assert parse_message(raw, "8859/1").get("PID-5.1") == "NOËL"


def test_bytes_invalid_in_the_declared_charset_are_a_data_type_error() -> None:
    raw = adt("UNICODE UTF-8", "NOËL").encode("latin-1")
    with pytest.raises(Hl7Error) as info:
        read_header(raw, "8859/1")
    assert info.value.code is ErrorCode.DATA_TYPE_ERROR
    assert "not valid UNICODE UTF-8" in info.value.text


def test_unknown_charset_is_named_in_the_error() -> None:
    with pytest.raises(Hl7Error) as info:
        read_header(adt("EBCDIC").encode(), "8859/1")
    assert info.value.code is ErrorCode.TABLE_VALUE_NOT_FOUND
    assert "EBCDIC" in info.value.text


def test_escape_sequences_are_decoded() -> None:
    msg = parse_message(adt().encode(), "8859/1")
    assert msg.get("PID-5.2") == "H\\l^ne"


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"])
def test_segment_separators_cr_lf_and_crlf_are_accepted(newline: str) -> None:
    raw = adt().replace("\r", newline).encode()
    msg = parse_message(raw, "8859/1")
    assert [s.name for s in msg] == ["MSH", "EVN", "PID", "ZFA"]


def test_custom_encoding_characters_from_msh2() -> None:
    raw = (
        b"MSH#$*@!#LAB#SITE#PFI#SITE#20240101##ORU$R01#1#P#2.5\r"
        b"PID#1##123$$$LAB!1.2.3$PI*456$$$OTHER$PI##DOE$JOHN@S@\r"
    )
    msg = parse_message(raw, "8859/1")
    pid = msg.first("PID")
    assert pid is not None
    assert [pid.get(3, 1, rep=r) for r in (1, 2)] == ["123", "456"]
    assert pid.get(3, 4, 2) == "1.2.3"
    assert pid.get(5, 2) == "JOHN$"


def test_z_segments_are_kept() -> None:
    msg = parse_message(adt().encode(), "8859/1")
    zfa = msg.first("ZFA")
    assert zfa is not None and zfa.get(1) == "ACTIF"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6"])
def test_supported_versions_are_read(version: str) -> None:
    raw = adt().replace("|2.5^FRA^2.11|", f"|{version}|").encode()
    assert read_header(raw, "8859/1").version == version


def test_unsupported_version_is_a_reject() -> None:
    raw = adt().replace("|2.5^FRA^2.11|", "|2.8|").encode()
    with pytest.raises(Hl7Error) as info:
        read_header(raw, "8859/1")
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION_ID and info.value.reject


@pytest.mark.parametrize(
    ("mutation", "code", "where"),
    [
        (lambda m: m.replace("ADT^A01^ADT_A01", ""), ErrorCode.REQUIRED_FIELD_MISSING, "MSH-9"),
        (lambda m: m.replace("|3975|", "||"), ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10"),
        (lambda m: m.split("PID|")[0], ErrorCode.SEGMENT_SEQUENCE_ERROR, "PID"),
        (
            lambda m: m.replace(
                "000003^^^CHU-X&000897406&N^PI~279035121518989^^^ASIP-SANTE-INS-"
                "NIR&1.2.250.1.213.1.4.10&ISO^INS",
                "",
            ),
            ErrorCode.REQUIRED_FIELD_MISSING,
            "PID-3",
        ),
        (lambda m: "EVN|x\r" + m, ErrorCode.SEGMENT_SEQUENCE_ERROR, "MSH"),
    ],
)
def test_what_the_type_requires_is_checked(mutation, code: ErrorCode, where: str) -> None:
    with pytest.raises(Hl7Error) as info:
        read_header(mutation(adt()).encode(), "8859/1")
    assert info.value.code is code
    assert str(info.value.location) == where


def test_our_reader_agrees_with_hl7apy_on_the_fields_it_reads() -> None:
    text = adt("8859/1", "DUPONT")
    ours = parse_message(text.encode("latin-1"), "8859/1")
    theirs = hl7apy_parse(text, find_groups=False)
    assert ours.get("MSH-10") == theirs.msh.msh_10.value
    assert ours.get("PID-3.1", rep=2) == theirs.pid.pid_3[1].cx_1.value
    assert ours.get("PID-7") == theirs.pid.pid_7.value
    assert ours.get("PID-8") == theirs.pid.pid_8.value


def test_dates_are_read_or_rejected() -> None:
    assert str(parse_date("19790328")) == "1979-03-28"
    assert parse_date("19791328") is None
    assert parse_date("") is None
