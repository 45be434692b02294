"""HL7 release triggers: which messages release which holds, for which document."""

from __future__ import annotations

from pathlib import Path

from pfi.routes import HoldKind, ReleaseSignal, load_routes, match_release
from pfi.transforms.hl7 import parse_message

ROUTES = load_routes(Path(__file__).with_name("table_routes.yaml"))


def oru(*obx: str, filler: str = "LAB-2024-0042", trigger: str = "R01") -> bytes:
    segments = [
        f"MSH|^~\\&|SIL|LABO|PFI|CHU-X|20240306111154||ORU^{trigger}^ORU_R01|MSG1|P|2.5",
        "PID|1||000003^^^CHU-X&1.2.250.1.999.1&ISO^PI",
        f"OBR|1|ORD-1^DPI|{filler}^SIL||||||||||||||||||||||F",
        *obx,
    ]
    return "\r".join(segments).encode() + b"\r"


def orm(order_status: str, filler: str = "RIS-778") -> bytes:
    segments = [
        "MSH|^~\\&|RIS|IMG|PFI|CHU-X|20240306111154||ORM^O01^ORM_O01|MSG2|P|2.5",
        "PID|1||000003^^^CHU-X&1.2.250.1.999.1&ISO^PI",
        f"ORC|SC|ORD-9^DPI|{filler}^RIS||{order_status}",
    ]
    return "\r".join(segments).encode() + b"\r"


def test_release_message_names_the_document_whose_hold_it_releases() -> None:
    msg = parse_message(oru("OBX|1|CE|LIBERATION^Libération||Y"))
    assert match_release(ROUTES, msg, source="SGL") == (
        ReleaseSignal(
            trigger="geneticist release",
            releases=HoldKind.RETAIN,
            key_kind="filler_order_number",
            key_value="LAB-2024-0042",
        ),
    )


def test_conditions_on_one_segment_must_hold_on_the_same_occurrence() -> None:
    # LIBERATION in one OBX and Y in another is not a release.
    split = parse_message(oru("OBX|1|CE|LIBERATION||N", "OBX|2|CE|GLU||Y"))
    assert match_release(ROUTES, split, source="SGL") == ()
    later = parse_message(oru("OBX|1|CE|GLU||Y", "OBX|2|CE|LIBERATION||y"))
    assert [s.trigger for s in match_release(ROUTES, later, source="SGL")] == ["geneticist release"]


def test_other_sources_and_message_types_do_not_release() -> None:
    msg = parse_message(oru("OBX|1|CE|LIBERATION||Y"))
    assert match_release(ROUTES, msg, source="RIS") == ()
    other_event = parse_message(oru("OBX|1|CE|LIBERATION||Y", trigger="R30"))
    assert match_release(ROUTES, other_event, source="SGL") == ()


def test_announcement_release_from_the_ris_order_status() -> None:
    done = match_release(ROUTES, parse_message(orm("CM")), source="RIS")
    assert [(s.releases, s.key_value) for s in done] == [(HoldKind.ANNOUNCEMENT, "RIS-778")]
    assert match_release(ROUTES, parse_message(orm("IP")), source="RIS") == ()


def test_a_matching_release_without_a_document_is_reported_not_skipped() -> None:
    (signal,) = match_release(ROUTES, parse_message(orm("CM", filler="")), source="RIS")
    assert signal.key_value == ""
    assert signal.problem == (
        "release trigger 'RIS announcement done' matched but ORC-3.1 is empty: no document "
        "to release"
    )


def test_message_code_alone_matches_every_event_of_that_type(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes: []\nrelease_triggers:\n  - name: any mdm\n    message: MDM\n"
        "    where: {TXA-17: AU}\n    document_key: {field: TXA-12.1, kind: document_id}\n"
    )
    routes = load_routes(path)
    mdm = (
        b"MSH|^~\\&|RIS|IMG|PFI|CHU-X|20240306111154||MDM^T08^MDM_T02|M3|P|2.6\r"
        b"TXA|1|18748-4|TEXT|202212160932||||||||1.2.250.1.71.4.2.2.1.81^Org|||||AU\r"
    )
    (signal,) = match_release(routes, parse_message(mdm), source="RIS")
    assert (signal.key_kind, signal.key_value) == ("document_id", "1.2.250.1.71.4.2.2.1.81")
