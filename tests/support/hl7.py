"""HL7 test messages built the way hospital systems send them."""

from __future__ import annotations


def adt_a01(
    control_id: str,
    ipp: str,
    *,
    family: str = "DUPONT",
    given: str = "JEAN",
    ins: str | None = None,
    status: str = "PROV",
    trigger: str = "A01",
    event_time: str = "20240306111154",
    charset: str = "UNICODE UTF-8",
    sender: str = "GAM",
    birth_date: str = "19790328",
    extra_segments: str = "",
) -> str:
    ids = f"{ipp}^^^CHU-X&1.2.250.1.999.1&ISO^PI"
    if ins:
        ids += f"~{ins}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
    return (
        f"MSH|^~\\&|{sender}|CHU-X|PFI|CHU-X|{event_time}||ADT^{trigger}^ADT_A01|{control_id}|P|"
        f"2.5^FRA^2.11|||||FRA|{charset}|FR||2.11^IHE_FRANCE-2.11-PAM\r"
        f"EVN||{event_time}\r"
        f"PID|1||{ids}||{family}^{given}^{given}^^^^L||{birth_date}|M|||"
        f"^^^^^^BDL^^75056|||||||||||||||||||||{status}\r"
        f"PV1|1|I\r{extra_segments}"
    )


def encode(message: str, charset: str = "UNICODE UTF-8") -> bytes:
    codec = {"UNICODE UTF-8": "utf-8", "8859/1": "latin-1", "8859/15": "iso8859-15"}.get(
        charset, "ascii"
    )
    return message.encode(codec)
