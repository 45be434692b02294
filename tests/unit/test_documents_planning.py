"""Which version a message makes: the planning rules on stored set states (no database)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pfi.config.documents import DocumentsSettings
from pfi.documents.ids import built_set_id, message_fingerprint, set_key
from pfi.documents.mappings import LoincMappings
from pfi.documents.planning import (
    BatchState,
    NoVersion,
    VersionPlan,
    parse_instance_id,
    plan_imaging,
    plan_lab,
    plan_transmission,
)
from pfi.documents.reading import (
    DocumentRefused,
    ImagingReading,
    LabReading,
    NotADocument,
    TransmissionReading,
    read_document_message,
)
from pfi.documents.repository import SetState, VersionState
from pfi.identity.traits import IdentityRules
from pfi.transforms.hl7 import Hl7Error, parse_message
from tests.support.documents import (
    MDM_DEL,
    MDM_INIT_B64,
    MDM_RPLC,
    ORU_INIT,
    ORU_RPLC,
    SGL_MAPPING,
    oru,
    with_control_id,
)
from tests.support.ris import RIS

SETTINGS = DocumentsSettings()
OIDS = SETTINGS.oids
RULES = IdentityRules(
    frozenset({"VALI"}),
    frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.10"}),
    ZoneInfo("Europe/Paris"),
)
MAPPINGS = LoincMappings({"SGL": SGL_MAPPING})


def record(raw: bytes, source: str = "SGL", message_id: int = 1) -> dict:
    header = parse_message(raw).header
    return {
        "message_id": message_id,
        "source": source,
        "sender": header.sender,
        "control_id": header.control_id,
        "message_type": header.message_type,
        "version": header.version,
        "charset": header.charset,
        "patient_key": header.patient_key(),
        "received_at": datetime(2024, 1, 4, 10, 0, tzinfo=UTC),
        "raw": raw,
    }


def read(raw: bytes, source: str = "SGL", message_id: int = 1):
    return read_document_message(record(raw, source, message_id), SETTINGS, MAPPINGS, RULES)


def empty() -> BatchState:
    return BatchState({}, {}, {})


def stored(plan: VersionPlan, message_id: int, status: str = "valid", fp: str = "") -> BatchState:
    batch = empty()
    batch.planned(plan, message_id, status, fp)
    return batch


# -- reading --------------------------------------------------------------------------
def test_adt_and_other_types_are_not_documents() -> None:
    raw = b"MSH|^~\\&|GAM|CHU|PFI|CHU|20240101||ADT^A01|1|P|2.5\rPID|1||IPP1^^^CHU&1.2.3&ISO^PI\r"
    assert isinstance(read(raw), NotADocument)


def test_transmission_profile_is_way_a_and_plain_oru_way_b() -> None:
    assert isinstance(read(ORU_INIT.read_bytes(), "DPI"), TransmissionReading)
    lab = read(oru("01_numeric_biochemistry"))
    assert isinstance(lab, LabReading)
    assert lab.request == "F1001"


def test_plain_oru_from_a_source_without_documents_entry_is_refused_with_the_fix() -> None:
    with pytest.raises(DocumentRefused, match=r"documents\.sources has no entry for DPI"):
        read(oru("01_numeric_biochemistry"), "DPI")


def test_plain_oru_that_cannot_be_a_report_raises_the_hl7_error() -> None:
    with pytest.raises(Hl7Error, match="OBR-32"):
        read(oru("r01_missing_validator"))


def test_mdm_transmission_document_type_comes_from_its_loinc_code() -> None:
    reading = read(MDM_INIT_B64.read_bytes(), "DPI")
    assert isinstance(reading, TransmissionReading)
    assert reading.document_type == "CR-IMG"


# -- way (b) --------------------------------------------------------------------------
def test_first_report_of_a_request_is_version_one_with_stable_ids() -> None:
    plan = plan_lab(read(oru("01_numeric_biochemistry")), empty(), OIDS)
    assert isinstance(plan, VersionPlan)
    assert (plan.version, plan.action, plan.replaces_uid) == (1, "INITIAL", None)
    assert plan.set_id == f"{OIDS.set_id_root}^SGL-F1001"
    assert plan.document_uid == f"{OIDS.document_id_root}^SGL-F1001.1"
    assert plan.document_ids is not None and plan.document_ids.version == 1


def test_correction_planned_in_the_same_batch_is_version_two_replacing_one() -> None:
    batch = empty()
    first = plan_lab(read(oru("01_numeric_biochemistry"), message_id=1), batch, OIDS)
    assert isinstance(first, VersionPlan)
    batch.planned(first, 1, "valid", "fp1")
    second = plan_lab(read(oru("08_correction"), message_id=2), batch, OIDS)
    assert isinstance(second, VersionPlan)
    assert (second.version, second.action) == (2, "REPLACEMENT")
    assert second.replaces_uid == first.document_uid
    assert second.expected_version == 1
    assert second.document_ids is not None
    assert second.document_ids.replaces == parse_instance_id(first.document_uid)


def test_same_report_resent_under_a_new_control_id_makes_no_version() -> None:
    first_reading = read(oru("01_numeric_biochemistry", "A"), message_id=1)
    plan = plan_lab(first_reading, empty(), OIDS)
    assert isinstance(plan, VersionPlan)
    batch = stored(plan, 1, fp=first_reading.fingerprint)
    again = plan_lab(read(oru("01_numeric_biochemistry", "B"), message_id=2), batch, OIDS)
    assert isinstance(again, NoVersion) and "re-sent unchanged" in again.reason


def test_message_already_applied_makes_no_version() -> None:
    reading = read(oru("01_numeric_biochemistry"), message_id=7)
    plan = plan_lab(reading, empty(), OIDS)
    assert isinstance(plan, VersionPlan)
    again = plan_lab(reading, stored(plan, 7), OIDS)
    assert isinstance(again, NoVersion) and "already produced version 1" in again.reason


def test_held_version_is_rebuilt_in_place_only_once_its_hold_is_released() -> None:
    reading = read(oru("10_unmapped_code_hold"), message_id=3)
    plan = plan_lab(reading, empty(), OIDS)
    assert isinstance(plan, VersionPlan)
    held = stored(plan, 3, "held")
    assert isinstance(plan_lab(reading, held, OIDS), NoVersion)  # hold still open
    version = held.version_of_message(3)
    assert version is not None
    released = dataclasses.replace(version, open_unmapped_hold=False)
    state = held.set(plan.set_id)
    assert state is not None
    batch = BatchState(
        {plan.set_id: dataclasses.replace(state, latest=released)},
        {},
        {3: released},
    )
    rebuild = plan_lab(reading, batch, OIDS)
    assert isinstance(rebuild, VersionPlan)
    assert (rebuild.rebuild_of, rebuild.version, rebuild.document_uid) == (
        released.id,
        1,
        plan.document_uid,
    )


def test_cancellation_withdraws_the_last_document_and_only_once() -> None:
    batch = empty()
    first = plan_lab(read(oru("01_numeric_biochemistry"), message_id=1), batch, OIDS)
    assert isinstance(first, VersionPlan)
    batch.planned(first, 1, "valid", "fp")
    cancel = plan_lab(read(oru("09_cancellation"), message_id=2), batch, OIDS)
    assert isinstance(cancel, VersionPlan)
    assert (cancel.version, cancel.action, cancel.document_uid) == (
        2,
        "DELETION",
        first.document_uid,
    )
    batch.planned(cancel, 2, "withdrawn")
    again = plan_lab(read(oru("09_cancellation", "again"), message_id=3), batch, OIDS)
    assert isinstance(again, NoVersion) and "already withdrawn" in again.reason


def test_cancellation_of_a_request_without_document_makes_nothing() -> None:
    plan = plan_lab(read(oru("09_cancellation")), empty(), OIDS)
    assert isinstance(plan, NoVersion) and "no document was built" in plan.reason


def test_preliminary_results_make_no_version_yet() -> None:
    plan = plan_lab(read(oru("19_preliminary_only")), empty(), OIDS)
    assert isinstance(plan, NoVersion) and "preliminary" in plan.reason


def test_correction_without_order_number_is_refused() -> None:
    raw = oru("08_correction")
    lines = [
        line if not line.startswith((b"ORC|", b"OBR|")) else _without_orders(line)
        for line in raw.split(b"\r")
    ]
    with pytest.raises(DocumentRefused, match="without an order number"):
        plan_lab(read(b"\r".join(lines)), empty(), OIDS)


def _without_orders(line: bytes) -> bytes:
    """ORC-2/3/4 and OBR-2/3 emptied: placer, filler and group numbers."""
    fields = line.split(b"|")
    for n in (2, 3, 4) if line.startswith(b"ORC|") else (2, 3):
        if n < len(fields):
            fields[n] = b""
    return b"|".join(fields)


def test_version_superseding_a_held_one_closes_its_hold() -> None:
    batch = empty()
    first = plan_lab(read(oru("01_numeric_biochemistry"), message_id=1), batch, OIDS)
    assert isinstance(first, VersionPlan)
    batch.planned(first, 1, "held", "fp")
    second = plan_lab(read(oru("08_correction"), message_id=2), batch, OIDS)
    assert isinstance(second, VersionPlan)
    assert second.supersedes_held is not None


# -- way (a) --------------------------------------------------------------------------
def test_official_oru_replacement_joins_the_set_of_the_initial() -> None:
    batch = empty()
    init = plan_transmission(read(ORU_INIT.read_bytes(), "DPI", 1), batch)
    assert isinstance(init, VersionPlan)
    batch.planned(init, 1, "valid")
    rplc = plan_transmission(read(with_control_id(ORU_RPLC.read_bytes(), "2"), "DPI", 2), batch)
    assert isinstance(rplc, VersionPlan)
    assert (rplc.set_id, rplc.version, rplc.action) == (init.set_id, 2, "REPLACEMENT")
    # the example's RPLC names ...12, not the initial's id ...9: kept, with a warning
    assert rplc.replaces_uid == "1.2.250.1.213.1.1.12"
    assert "latest version PFI knows" in rplc.warnings[0]


def test_mdm_without_set_id_chains_by_the_replaced_document_id() -> None:
    batch = empty()
    init = plan_transmission(read(MDM_INIT_B64.read_bytes(), "DPI", 1), batch)
    assert isinstance(init, VersionPlan)
    assert init.set_id == init.document_uid  # no setId: the first version's id
    batch.planned(init, 1, "valid")
    rplc = plan_transmission(read(MDM_RPLC.read_bytes(), "DPI", 2), batch)
    assert isinstance(rplc, VersionPlan)
    assert (rplc.set_id, rplc.version) == (init.set_id, 2)
    assert not rplc.warnings
    batch.planned(rplc, 2, "valid")
    delete = plan_transmission(read(MDM_DEL.read_bytes(), "DPI", 3), batch)
    assert isinstance(delete, VersionPlan)
    assert (delete.set_id, delete.version, delete.action, delete.document_uid) == (
        init.set_id,
        3,
        "DELETION",
        rplc.document_uid,
    )


def test_initial_reusing_a_stored_set_id_is_refused() -> None:
    reading = read(ORU_INIT.read_bytes(), "DPI", 1)
    assert isinstance(reading, TransmissionReading)
    state = SetState(
        document_id=10,
        set_id="1.2.250.1.213.1.1.9",
        patient_id=1,
        status="active",
        current_version=1,
        latest=_version(10, "1.2.250.1.213.1.1.9", "other-document"),
        latest_document=None,
    )
    with pytest.raises(DocumentRefused, match="sent as a replacement"):
        plan_transmission(reading, BatchState({state.set_id: state}, {}, {}))


def test_same_cda_sent_again_makes_no_version() -> None:
    batch = empty()
    init = plan_transmission(read(ORU_INIT.read_bytes(), "DPI", 1), batch)
    assert isinstance(init, VersionPlan)
    batch.planned(init, 1, "valid")
    again = plan_transmission(read(ORU_INIT.read_bytes(), "DPI", 2), batch)
    assert isinstance(again, NoVersion) and "already stored" in again.reason


def test_deletion_of_a_document_pfi_never_received_is_kept_with_a_warning() -> None:
    plan = plan_transmission(read(MDM_DEL.read_bytes(), "DPI", 1), empty())
    assert isinstance(plan, VersionPlan)
    assert (plan.version, plan.action) == (1, "DELETION")
    assert "never received" in plan.warnings[0]


def _version(document_id: int, set_id: str, uid: str) -> VersionState:
    return VersionState(
        id=1,
        document_id=document_id,
        set_id=set_id,
        version=1,
        action="INITIAL",
        status="valid",
        document_uid=uid,
        replaces_uid=None,
        message_id=99,
        fingerprint="",
        open_unmapped_hold=False,
        release_policy="",
    )


# -- ids ------------------------------------------------------------------------------
def test_set_key_keeps_a_readable_request_number() -> None:
    assert set_key("SGL", "F1001") == "SGL-F1001"
    assert str(built_set_id("1.2.3", "SGL", "F1001")) == "1.2.3^SGL-F1001"


def test_set_key_of_odd_or_long_request_numbers_is_safe_and_unique() -> None:
    a = set_key("SGL", "REQ 12/34")
    b = set_key("SGL", "REQ_12_34")
    assert a != b and " " not in a and "/" not in a
    long = set_key("SGL", "X" * 100)
    assert len(long) <= 4 + 40


def test_fingerprint_ignores_msh_but_not_results() -> None:
    raw = oru("01_numeric_biochemistry")
    resent = with_control_id(raw, "OTHER")
    changed = raw.replace(b"||4.89|", b"||4.90|")
    fp = message_fingerprint(parse_message(raw))
    assert message_fingerprint(parse_message(resent)) == fp
    assert message_fingerprint(parse_message(changed)) != fp


def test_mapping_paths_default_to_the_loinc_dir() -> None:
    assert SETTINGS.mapping_path("SGL") == Path("config/loinc/SGL.csv")


# -- way (b), CR-IMG ------------------------------------------------------------------
def ris(name: str, control_id: str | None = None) -> bytes:
    raw = (RIS / f"{name}.hl7").read_bytes()
    return with_control_id(raw, control_id) if control_id else raw


def test_plain_ris_report_is_an_imaging_reading_keyed_on_the_accession_number() -> None:
    reading = read(ris("03_oru_dicom_study_uid"), "RIS")
    assert isinstance(reading, ImagingReading)
    assert reading.request == "ACC1003"
    plan = plan_imaging(reading, empty(), OIDS)
    assert isinstance(plan, VersionPlan)
    assert (plan.document_type, plan.document_code, plan.version, plan.action) == (
        "CR-IMG",
        "18748-4",
        1,
        "INITIAL",
    )
    assert plan.set_id == f"{OIDS.set_id_root}^RIS-ACC1003"
    assert plan.document_uid == f"{OIDS.document_id_root}^RIS-ACC1003.1"


def test_mdm_t11_is_a_document_message_only_from_a_cr_img_source() -> None:
    raw = ris("13_mdm_t11_cancellation")
    assert isinstance(read(raw, "DPI"), NotADocument)
    assert isinstance(read(raw, "SGL"), NotADocument)
    reading = read(raw, "RIS")
    assert isinstance(reading, ImagingReading) and reading.request == "ACC1005"


def test_imaging_correction_replaces_and_cancellation_withdraws_in_one_batch() -> None:
    batch = empty()
    first_reading = read(ris("03_oru_dicom_study_uid"), "RIS", message_id=1)
    first = plan_imaging(first_reading, batch, OIDS)
    assert isinstance(first, VersionPlan)
    batch.planned(first, 1, "valid", first_reading.fingerprint)
    second = plan_imaging(read(ris("06_oru_correction"), "RIS", message_id=2), batch, OIDS)
    assert isinstance(second, VersionPlan)
    assert (second.version, second.action, second.replaces_uid) == (
        2,
        "REPLACEMENT",
        first.document_uid,
    )
    assert second.document_ids is not None and second.document_ids.version == 2
    batch.planned(second, 2, "valid", "fp2")
    cancel = plan_imaging(read(ris("07_oru_cancellation"), "RIS", message_id=3), batch, OIDS)
    assert isinstance(cancel, VersionPlan)
    assert (cancel.version, cancel.action, cancel.document_uid) == (
        3,
        "DELETION",
        second.document_uid,
    )


def test_preliminary_or_unchanged_imaging_report_makes_no_version() -> None:
    wait = plan_imaging(read(ris("14_preliminary"), "RIS"), empty(), OIDS)
    assert isinstance(wait, NoVersion) and "preliminary" in wait.reason
    reading = read(ris("01_oru_text_only", "A"), "RIS", message_id=1)
    plan = plan_imaging(reading, empty(), OIDS)
    assert isinstance(plan, VersionPlan)
    again = plan_imaging(
        read(ris("01_oru_text_only", "B"), "RIS", message_id=2),
        stored(plan, 1, fp=reading.fingerprint),
        OIDS,
    )
    assert isinstance(again, NoVersion) and "re-sent unchanged" in again.reason


def test_cancellation_of_an_exam_never_documented_makes_nothing() -> None:
    plan = plan_imaging(read(ris("07_oru_cancellation"), "RIS"), empty(), OIDS)
    assert isinstance(plan, NoVersion) and "exam ACC1003" in plan.reason
