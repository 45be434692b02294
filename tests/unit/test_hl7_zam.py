"""Business acknowledgements ZAM^Z01/Z02/Z03 as the CI-SIS transmission volet specifies
them, compared with the official examples of ansforge/hl7V2-exemples."""

from __future__ import annotations

from datetime import datetime

import pytest

from pfi.transforms.hl7 import Hl7Message, parse_message
from pfi.transforms.hl7.outgoing import ReplyHeader
from pfi.transforms.hl7.zam import (
    DMP_ERROR_SYSTEM,
    SMTP_ERROR_SYSTEM,
    ZamError,
    build_zam_z01,
    build_zam_z02,
    build_zam_z03,
)

NOW = datetime(2021, 6, 6, 9, 33)
HEADER = ReplyHeader("PFI-X", "Organisation-X", "SIL-Y", "labo", "017")

#: ansforge/hl7V2-exemples, commit 2f8f22c8739c2b1e2d66436a051536c976204f9c, "Vague 2/
#: Trans_Doc-CDA-HL7V2/TRANSMISSION_DOCS_CDA_EN_HL7V2_V2.1/ORU/Transmission initiale ORU/
#: Message metier reception DMP" (segments as published; the volet's tables name the
#: coding systems of OBX-5 and ERR-5 expandedYes-NoIndicator and DMP_ERROR_CODE).
OFFICIAL_Z01 = (
    "MSH|^~\\&|PFI-X|Organisation-X|SIL-Y|labo|202106060933||ZAM^Z01^ZAM_Z01|017|P|2.6|||||"
    "FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2\r"
    "EVN||20211005152908\r"
    "OBX|1|CWE|ACK_RECEPTION_DMP^Accusé de réception DMP^AckMetierZAM|015|N^^HL70136||||||F|\r"
    "ERR|||207^Application internal error^HL70357|E|DMPClosed^DMP fermé^DMPERRORCODE\r"
)
#: Same repository and folder, "Message metier reception MSS".
OFFICIAL_Z02 = (
    "MSH|^~\\&|PFI-X|Organisation-X|SIL-Y|labo|202106060934||ZAM^Z02^ZAM_Z01|018|P|2.6|||||FRA|"
    "8859/15|||2.1^CISIS_CDA_HL7_V2\r"
    "EVN||20211005152908\r"
    "OBX|1|CWE|ACK_RECEPTION_MSS^Accusé de réception MSSanté^AckMetierZAM|015|"
    "Y^^expandedYes-NoIndicator||||||F|\r"
    "OBX|2|XTN|DESTINATAIRE_MSS^Destinataire MSSanté^AckMetierZAM|801234567897|"
    "^^X.400^adam.hoda@medecin.mssante.fr||||||F|\r"
)

FIELDS = ("MSH-3", "MSH-4", "MSH-5", "MSH-6", "MSH-9", "MSH-12", "MSH-17", "MSH-21")


def raw(msg: Hl7Message, path: str) -> str:
    """A whole field as sent (MSH-9 is ZAM^Z01^ZAM_Z01, not only its first component)."""
    name, number = path.split("-")
    segment = msg.first(name)
    assert segment is not None, name
    return segment.raw(int(number))


def test_dmp_refusal_has_the_official_structure() -> None:
    ours = parse_message(
        build_zam_z01(
            HEADER,
            original_control_id="015",
            accepted=False,
            now=NOW,
            error=ZamError("DMPClosed", "DMP fermé", DMP_ERROR_SYSTEM),
        )
    )
    theirs = parse_message(OFFICIAL_Z01.encode("utf-8"))
    assert [s.name for s in ours] == [s.name for s in theirs] == ["MSH", "EVN", "OBX", "ERR"]
    for path in FIELDS:
        assert raw(ours, path) == raw(theirs, path), path
    for path in ("OBX-1", "OBX-2", "OBX-3.1", "OBX-3.2", "OBX-3.3", "OBX-4", "OBX-5.1"):
        assert ours.get(path) == theirs.get(path), path
    assert ours.get("OBX-5.3") == "expandedYes-NoIndicator"
    assert ours.get("OBX-11") == "F"
    assert (ours.get("ERR-3.1"), ours.get("ERR-4")) == ("207", "E")
    assert (ours.get("ERR-5.1"), ours.get("ERR-5.2")) == ("DMPClosed", "DMP fermé")
    assert ours.get("ERR-5.3") == "DMP_ERROR_CODE"
    assert ours.get("MSH-7") == "20210606093300"
    assert ours.get("MSH-18") == "UNICODE UTF-8"


def test_dmp_acceptance_carries_no_error() -> None:
    msg = parse_message(build_zam_z01(HEADER, original_control_id="015", accepted=True, now=NOW))
    assert [s.name for s in msg] == ["MSH", "EVN", "OBX"]
    assert msg.get("OBX-5.1") == "Y"


def test_mss_reception_has_the_official_structure_in_latin9() -> None:
    header = ReplyHeader("PFI-X", "Organisation-X", "SIL-Y", "labo", "018", charset="8859/15")
    data = build_zam_z02(
        header,
        original_control_id="015",
        delivered=True,
        recipient="adam.hoda@medecin.mssante.fr",
        recipient_id="801234567897",
        now=NOW,
    )
    assert "réception".encode("iso8859-15") in data
    ours = parse_message(data, "8859/15")
    theirs = parse_message(OFFICIAL_Z02.encode("iso8859-15"), "8859/15")
    assert [s.name for s in ours] == [s.name for s in theirs]
    for path in (*FIELDS, "OBX-3", "OBX-4", "OBX-5"):
        assert raw(ours, path) == raw(theirs, path), path
    second_ours, second_theirs = ours.all("OBX")[1], theirs.all("OBX")[1]
    for field in (2, 3, 4, 5, 11):
        assert second_ours.raw(field) == second_theirs.raw(field)


def test_mss_read_ack_names_the_reader_and_the_error() -> None:
    msg = parse_message(
        build_zam_z03(
            HEADER,
            original_control_id="015",
            processed=False,
            reader="secretariat@cabinet.mssante.fr",
            now=NOW,
            error=ZamError("902", "Identifiant patient inconnu", "applicationErrorCondition"),
        )
    )
    assert raw(msg, "MSH-9") == "ZAM^Z03^ZAM_Z01"
    assert msg.get("OBX-3.1") == "ACK_LECTURE_MSS"
    assert msg.all("OBX")[1].get(3, 1) == "LECTEUR_MSS"
    assert msg.all("OBX")[1].get(5, 4) == "secretariat@cabinet.mssante.fr"
    assert raw(msg, "ERR-5") == "902^Identifiant patient inconnu^applicationErrorCondition"


def test_delimiters_in_texts_are_escaped() -> None:
    data = build_zam_z01(
        ReplyHeader("PFI", "CHU|X", "SIL^Y", "labo", "1"),
        original_control_id="A|B",
        accepted=False,
        now=NOW,
        error=ZamError("E1", "refus: code^texte|détail", DMP_ERROR_SYSTEM),
    )
    msg = parse_message(data)
    assert msg.get("MSH-4") == "CHU|X" and msg.get("MSH-5") == "SIL^Y"
    assert msg.get("OBX-4") == "A|B"
    assert msg.get("ERR-5.2") == "refus: code^texte|détail"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accepted": False}, "status N needs the error"),
        ({"accepted": True, "original_control_id": " "}, "OBX-4: the MSH-10"),
        (
            {"accepted": True, "error": ZamError("1", "x", SMTP_ERROR_SYSTEM)},
            "status Y cannot carry an error of severity E",
        ),
        (
            {"accepted": False, "error": ZamError("1", "x", DMP_ERROR_SYSTEM, severity="X")},
            "ERR-4: one of E, F, I, W",
        ),
    ],
)
def test_inconsistent_acks_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"original_control_id": "015", "now": NOW, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_zam_z01(HEADER, **args)  # type: ignore[arg-type]


def test_charset_outside_the_volet_is_refused() -> None:
    header = ReplyHeader("PFI", "CHU", "SIL", "labo", "1", charset="8859/1")
    with pytest.raises(ValueError, match="UNICODE UTF-8 or 8859/15"):
        build_zam_z01(header, original_control_id="1", accepted=True, now=NOW)
