"""The routing input refuses inconsistent facts; the decision carries what the DMP, the
ledger and ops need (XDS masking codes, JSON, an explanation), and re-evaluates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pfi.routes import (
    HoldKind,
    Operation,
    Origin,
    Outcome,
    PatientFacts,
    Recipient,
    decide,
    reevaluate,
)
from pfi.transforms.xds import ns
from pfi.transforms.xds.model import MaskingFlags
from tests.unit.routes.builders import (
    INS,
    PATIENT_MAIL,
    PRESCRIBER_KEY,
    PROVISIONAL,
    QUALIFIED,
    imaging,
    lab,
    meta,
    shipped_routes,
)

ROUTES = shipped_routes()
HIDDEN_IMAGING = imaging(
    sender_metadata=meta(INVISIBLE_PATIENT="Y", DESTDMP="Y", DESTMSSANTEPAT="Y")
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"sender_metadata": meta(DESTDMP="X")},
            "MetaDMPMSS DESTDMP: expected Y or N (HL7 table 0136), got 'X'",
        ),
        ({"confidentiality": "U"}, "confidentiality: expected N, R or V"),
        (
            {"released_holds": {HoldKind.IDENTITY}},
            "released_holds: identity cannot be released by an act",
        ),
        (
            {"operator_masking": {"MASQUE": True}},
            "operator_masking: 'MASQUE' is not a masking flag",
        ),
        ({"document_kind": "CR-XYZ"}, "'CR-XYZ' is not a valid DocumentKind"),
        ({"action": "cancel"}, "'cancel' is not a valid Action"),
    ],
)
def test_inconsistent_routing_input_is_refused_with_what_is_wrong(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lab(**fields)


def test_a_qualified_identity_without_an_ins_is_refused() -> None:
    with pytest.raises(ValueError, match="a qualified identity needs its INS"):
        PatientFacts(ins_qualified=True)


def test_the_patient_mailbox_is_not_a_professional_recipient() -> None:
    with pytest.raises(ValueError, match="is the patient's mailbox: pass it as patient_address"):
        Recipient(PATIENT_MAIL)
    with pytest.raises(ValueError, match="not a mail address"):
        Recipient("dr.martin")


def test_patient_mail_address_exists_only_for_a_qualified_ins() -> None:
    assert QUALIFIED.mail_address == PATIENT_MAIL
    assert PROVISIONAL.mail_address == ""
    assert PatientFacts.from_store(qualified=True, ins=None, pam=None) == PatientFacts(False)
    assert PatientFacts.from_store(qualified=True, ins=INS, pam={"ZFA": {"ZFA-9": "IO^x"}}) == (
        PatientFacts(True, INS, dmp_opposition=True)
    )


def test_metadata_values_are_read_as_the_volet_spells_them() -> None:
    inp = lab(sender_metadata={"destdmp": " y ", "CORPSMAIL_PS": "Bonjour", "MASQUE_PS": "n"})
    assert inp.metadata is not None
    assert inp.metadata.flags == {"DESTDMP": True, "MASQUE_PS": False}
    assert inp.metadata.text("CORPSMAIL_PS") == "Bonjour"
    assert inp.metadata.flag("INVISIBLE_PATIENT") is None


def test_operator_masking_accepts_the_dmp_spelling_of_legal_representatives() -> None:
    inp = lab(operator_masking={"INVISIBLE_REPRESENTANTS_LEGAUX": True})
    assert inp.operator_masking == {"INVISIBLE_REP_LEGAUX": True}
    flag = decide(ROUTES, inp).masking.invisible_representants_legaux
    assert (flag.value, flag.origin) == (True, Origin.OPERATOR)


def test_masking_becomes_the_dmp_confidentiality_codes() -> None:
    decision = decide(
        ROUTES,
        lab(
            confidentiality="R",
            released_holds={HoldKind.REVIEW},
            sender_metadata=meta(
                MASQUE_PS="Y", INVISIBLE_PATIENT="Y", INVISIBLE_REP_LEGAUX="Y", DESTDMP="Y"
            ),
        ),
    )
    masking = decision.masking
    assert masking.confidentiality_codes() == (
        ("R", "2.16.840.1.113883.5.25"),
        ("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
        ("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13"),
        ("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13"),
    )
    assert ns.MASKING_CODE_SYSTEM == "1.2.250.1.213.1.1.4.13"
    assert masking.to_xds() == MaskingFlags(
        masque_ps=True,
        invisible_patient=True,
        invisible_representants_legaux=True,
        connexion_secrete=False,
    )


def test_decision_json_is_what_the_ledger_stores() -> None:
    decision = decide(ROUTES, lab(patient=PROVISIONAL))
    data = json.loads(json.dumps(decision.to_json()))
    dmp = next(d for d in data["destinations"] if d["key"] == "dmp")
    assert dmp == {
        "key": "dmp",
        "kind": "dmp",
        "role": "dmp",
        "address": "",
        "outcome": "hold",
        "operation": "submit",
        "reason": "INS not qualified",
        "holds": [
            {
                "kind": "identity",
                "reason": "INS not qualified",
                "released_by": ["identity qualified (INS with a qualifying PID-32 status)"],
            }
        ],
        "requested_by": [
            "route 'lab reports to DMP, prescriber, copies and patient'",
            "systematic DMP feeding of CR-BIO",
        ],
        "no_reply": False,
    }
    assert data["masking"]["INVISIBLE_PATIENT"] == {
        "value": False,
        "origin": "default",
        "note": "",
    }
    assert data["acks"] == {
        "ACK_RECEPTION": {"value": True, "origin": "default"},
        "ACK_LECTURE_MSS": {"value": False, "origin": "default"},
    }
    assert data["mail"]["CORPSMAIL_PATIENT"]["origin"] == "default"
    assert {"rule", "subject", "detail"} == set(data["trace"][0])


def test_explanation_tells_ops_which_rule_decided_what() -> None:
    decision = decide(
        ROUTES,
        imaging(sender_metadata=meta(INVISIBLE_PATIENT="Y", DESTDMP="Y", DESTMSSANTEPAT="Y")),
    )
    text = decision.explain()
    assert text.splitlines()[0] == (
        "route: 'imaging reports the radiologist holds for the announcement' (line 42)"
    )
    assert "  mss_patient: hold submit — announcement: patient not yet informed" in text
    assert "INVISIBLE_PATIENT=Y (sender)" in text
    assert "[sender] MetaDMPMSS: MASQUE_PS=N, INVISIBLE_PATIENT=Y" in text
    assert "[masking] INVISIBLE_PATIENT: Y from sender INVISIBLE_PATIENT=Y; kept by the " in text
    assert "[outcome] dmp: send submit" in text
    assert "warning: the sender set INVISIBLE_PATIENT=Y with DESTMSSANTEPAT=Y" in text


def test_holds_say_what_releases_them() -> None:
    decision = decide(
        ROUTES,
        imaging(sender_metadata=meta(INVISIBLE_PATIENT="Y", DESTDMP="Y", DESTMSSANTEPAT="Y")),
    )
    hold = decision.get("mss_patient").hold
    assert hold is not None and hold.kind is HoldKind.ANNOUNCEMENT
    assert hold.released_by == (
        "operator",
        "sender update (MODIF_CONF_CODE=Y, INVISIBLE_PATIENT=N)",
    )


def test_reevaluation_after_identity_qualification_sends_what_waited() -> None:
    first_input = lab(patient=PROVISIONAL)
    first = decide(ROUTES, first_input)
    assert {d.key for d in first.held} == {"dmp", "mss_patient"}
    updated, again = reevaluate(ROUTES, first_input, patient=QUALIFIED)
    assert updated.patient == QUALIFIED and updated.recipients == first_input.recipients
    assert [d.key for d in again.destinations] == [d.key for d in first.destinations]
    assert all(d.outcome is Outcome.SEND for d in again.destinations)
    assert again.get("mss_patient").address == PATIENT_MAIL
    assert again.get(PRESCRIBER_KEY).operation is Operation.SUBMIT


def test_reevaluation_accumulates_releases_and_operator_masking() -> None:
    step1, _ = reevaluate(ROUTES, HIDDEN_IMAGING, operator_masking={"MASQUE_PS": True})
    step2, decision = reevaluate(ROUTES, step1, released=[HoldKind.ANNOUNCEMENT])
    assert step2.released_holds == {HoldKind.ANNOUNCEMENT}
    assert step2.operator_masking == {"MASQUE_PS": True}
    assert decision.get("mss_patient").outcome is Outcome.SEND
    assert decision.masking.masque_ps.origin is Origin.OPERATOR
