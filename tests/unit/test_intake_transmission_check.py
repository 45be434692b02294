"""Intake answers AE for a transmission-volet message whose CDA PFI will not send."""

from __future__ import annotations

from pfi.config.model import SourceSettings
from pfi.intake.policy import assess, check_transmission
from tests.support.documents import MDM_INIT, ORU_DEL, ORU_INIT, oru

SOURCE = SourceSettings(port=2575, allowed_message_types=["ORU^R01", "MDM", "ADT"])


def judged(raw: bytes):
    return check_transmission(assess(raw, SOURCE, truncated=False, size=len(raw)), raw)


def test_official_initial_is_accepted() -> None:
    assert judged(ORU_INIT.read_bytes()).status == "accepted"


def test_orc_and_obx11_disagreeing_is_an_ae_at_obx11() -> None:
    raw = ORU_INIT.read_bytes().replace(b"ORC|NW|", b"ORC|CA|", 1)
    result = judged(raw)
    assert (result.status, result.decision.code) == ("rejected", "AE")
    assert result.decision.error is not None
    assert str(result.decision.error.location) == "OBX-11"


def test_cda_of_another_patient_is_an_ae_at_pid3_with_code_904() -> None:
    result = judged(ORU_DEL.read_bytes())
    assert result.decision.code == "AE"
    assert result.decision.error is not None
    assert result.decision.error.application_code == "904"


def test_undecodable_cda_is_an_ae_naming_obx5() -> None:
    result = judged(MDM_INIT.read_bytes())
    assert result.decision.code == "AE"
    assert "not well-formed XML" in (result.reason or "")


def test_plain_lab_oru_is_not_checked_here() -> None:
    raw = oru("r01_missing_validator")  # way (b): the documents stage refuses it
    assert judged(raw).status == "accepted"
