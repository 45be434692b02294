"""The routing decision table: for each situation, every destination and its exact outcome.

Two route files: the shipped `config/routes.yaml` (what a hospital gets) and
`table_routes.yaml` (every feature of the language). Each row states the complete set of
destinations, so a destination that appears or disappears unexpectedly fails the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pfi.routes import (
    Action,
    HoldKind,
    Origin,
    Routes,
    RoutingDecision,
    RoutingInput,
    decide,
    load_routes,
)
from tests.unit.routes.builders import (
    ARCHIVE_KEY,
    COPY_KEY,
    NOT_OPPOSED,
    OLD_COPY_KEY,
    OPPOSED,
    OPPOSED_UNQUALIFIED,
    PATIENT_MAIL,
    PRESCRIBER,
    PRESCRIBER_KEY,
    PROVISIONAL,
    QUALIFIED,
    UNKNOWN_IDENTITY,
    dpi,
    imaging,
    lab,
    meta,
    shipped_routes,
)

TABLE_ROUTES_PATH = Path(__file__).with_name("table_routes.yaml")

INS_HOLD = "INS not qualified"
OPPOSITION = "refused by patient (opposition)"
RETAIN = "retain: held until released"
ANNOUNCEMENT = "announcement: patient not yet informed"
RADIOLOGIST = "announcement: the radiologist has not yet seen the patient"
MASQUE_PS = "MASQUE_PS: masked to professionals, not exchanged between professionals by MSSanté"
INVISIBLE = "INVISIBLE_PATIENT: not visible to the patient, not mailed to them"
REVIEW_R = "confidentiality R: restricted document held for review before DMP sharing"
REVIEW_V = "confidentiality V: restricted document held for review before DMP sharing"
ALL_ASKED = {"DESTDMP": "Y", "DESTMSSANTEPS": "Y", "DESTMSSANTEPAT": "Y"}


@dataclass
class Row:
    """One situation: the input, the complete expected destinations, and extras."""

    routes: str  # "shipped" or "table"
    given: RoutingInput
    expect: dict[str, str]
    route: str | type[Ellipsis] | None = ...
    masking: dict[str, tuple[bool, Origin]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    no_warnings: bool = False
    released: tuple[HoldKind, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def send(op: str = "submit") -> str:
    return f"send {op}"


def hold(*reasons: str, op: str = "submit") -> str:
    return f"hold {op}: " + "; ".join(reasons)


def refuse(reason: str, op: str = "submit") -> str:
    return f"refuse {op}: {reason}"


ROWS: dict[str, Row] = {
    # -- lab, no MetaDMPMSS: the shipped route decides ---------------------------------
    "lab-qualified-goes-everywhere": Row(
        "shipped",
        lab(),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
        route="lab reports to DMP, prescriber, copies and patient",
        no_warnings=True,
    ),
    "lab-provisional-identity-holds-dmp-and-patient": Row(
        "shipped",
        lab(patient=PROVISIONAL),
        {
            "dmp": hold(INS_HOLD),
            PRESCRIBER_KEY: send(),
            COPY_KEY: send(),
            "mss_patient": hold(INS_HOLD),
        },
    ),
    "lab-unknown-identity-holds-dmp-and-patient": Row(
        "shipped",
        lab(patient=UNKNOWN_IDENTITY),
        {
            "dmp": hold(INS_HOLD),
            PRESCRIBER_KEY: send(),
            COPY_KEY: send(),
            "mss_patient": hold(INS_HOLD),
        },
    ),
    "lab-patient-opposition-refuses-dmp-only": Row(
        "shipped",
        lab(patient=OPPOSED),
        {
            "dmp": refuse(OPPOSITION),
            PRESCRIBER_KEY: send(),
            COPY_KEY: send(),
            "mss_patient": send(),
        },
    ),
    "lab-opposition-wins-over-identity-hold": Row(
        "shipped",
        lab(patient=OPPOSED_UNQUALIFIED),
        {
            "dmp": refuse(OPPOSITION),
            PRESCRIBER_KEY: send(),
            COPY_KEY: send(),
            "mss_patient": hold(INS_HOLD),
        },
    ),
    "lab-informed-without-opposition-feeds-dmp": Row(
        "shipped",
        lab(patient=NOT_OPPOSED),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
    ),
    "lab-without-known-recipients-warns": Row(
        "shipped",
        lab(recipients=()),
        {"dmp": send(), "mss_patient": send()},
        warnings=("sends to the prescriber but no prescriber MSSanté address is known",),
    ),
    "lab-correction-replaces-where-earlier-versions-went": Row(
        "shipped",
        lab(
            action=Action.REPLACEMENT,
            delivered_before={"dmp", PRESCRIBER_KEY, "mss_patient"},
        ),
        {
            "dmp": send("replace"),
            PRESCRIBER_KEY: send("replace"),
            COPY_KEY: send("submit"),
            "mss_patient": send("replace"),
        },
    ),
    "lab-correction-reaches-a-recipient-no-longer-listed": Row(
        "shipped",
        lab(
            action=Action.REPLACEMENT,
            recipients=(PRESCRIBER,),
            delivered_before={"dmp", PRESCRIBER_KEY, OLD_COPY_KEY},
        ),
        {
            "dmp": send("replace"),
            PRESCRIBER_KEY: send("replace"),
            OLD_COPY_KEY: send("replace"),
            "mss_patient": send("submit"),
        },
        no_warnings=True,
    ),
    "lab-deletion-goes-exactly-where-earlier-versions-went": Row(
        "shipped",
        lab(action=Action.DELETION, delivered_before={"dmp", PRESCRIBER_KEY}),
        {"dmp": send("delete"), PRESCRIBER_KEY: send("delete")},
    ),
    "lab-deletion-of-a-never-delivered-document-goes-nowhere-and-says-so": Row(
        "shipped",
        lab(action=Action.DELETION),
        {},
        warnings=("no destination",),
    ),
    "lab-deletion-for-a-now-doubtful-identity-waits-for-it": Row(
        "shipped",
        lab(
            action=Action.DELETION,
            patient=PROVISIONAL,
            delivered_before={"dmp", PRESCRIBER_KEY, "mss_patient"},
        ),
        {
            "dmp": hold(INS_HOLD, op="delete"),
            PRESCRIBER_KEY: send("delete"),
            "mss_patient": hold(INS_HOLD, op="delete"),
        },
    ),
    "lab-deletion-ignores-patient-opposition": Row(
        "shipped",
        lab(action=Action.DELETION, patient=OPPOSED, delivered_before={"dmp"}),
        {"dmp": send("delete")},
    ),
    "lab-restricted-document-waits-for-review-before-dmp": Row(
        "shipped",
        lab(confidentiality="R"),
        {"dmp": hold(REVIEW_R), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
    ),
    "lab-restricted-document-goes-once-review-released": Row(
        "shipped",
        lab(confidentiality="R", released_holds={HoldKind.REVIEW}),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
    ),
    "lab-very-restricted-document-the-sender-sends-to-dmp-goes": Row(
        "shipped",
        lab(confidentiality="V", sender_metadata=meta(**ALL_ASKED)),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
    ),
    # -- with MetaDMPMSS: the sender decides, routes add -------------------------------
    "sender-asks-everything-route-agrees": Row(
        "shipped",
        lab(sender_metadata=meta(**ALL_ASKED)),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
        no_warnings=True,
    ),
    "sender-destdmp-n-on-lab-report-is-refused-not-dropped": Row(
        "shipped",
        lab(sender_metadata=meta(DESTMSSANTEPS="Y", DESTMSSANTEPAT="Y")),
        {
            "dmp": refuse("sender set DESTDMP=N: systematic DMP feeding of CR-BIO not applied"),
            PRESCRIBER_KEY: send(),
            COPY_KEY: send(),
            "mss_patient": send(),
        },
        warnings=("CR-BIO not sent to the DMP: the sender set DESTDMP=N",),
    ),
    "sender-destdmp-n-on-other-document-means-no-dmp": Row(
        "shipped",
        dpi(sender_metadata=meta(DESTMSSANTEPS="Y")),
        {COPY_KEY: send()},
        no_warnings=True,
    ),
    "sender-destmssantepat-n-keeps-route-from-mailing-patient": Row(
        "shipped",
        lab(sender_metadata=meta(DESTDMP="Y", DESTMSSANTEPS="Y")),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send()},
    ),
    "sender-asks-patient-mail-route-does-not-list-it-kept-with-warning": Row(
        "shipped",
        dpi(sender_metadata=meta(DESTDMP="Y", DESTMSSANTEPAT="Y")),
        {"dmp": send(), "mss_patient": send()},
        warnings=(
            "route 'documents from the patient record' does not send to mss_patient "
            "(DESTMSSANTEPAT=Y), which the sender asked for: kept",
        ),
    ),
    "sender-asks-professionals-without-any-address-refused-with-reason": Row(
        "shipped",
        dpi(sender_metadata=meta(DESTMSSANTEPS="Y"), recipients=()),
        {
            "mss_pro:": refuse(
                "no professional MSSanté address known (DESTMSSANTEPS=Y without a PRT RCT address)"
            )
        },
    ),
    "sender-masque-ps-holds-professional-mails": Row(
        "shipped",
        lab(sender_metadata=meta(MASQUE_PS="Y", DESTDMP="Y", DESTMSSANTEPS="Y")),
        {"dmp": send(), PRESCRIBER_KEY: hold(MASQUE_PS), COPY_KEY: hold(MASQUE_PS)},
        masking={"masque_ps": (True, Origin.SENDER)},
        warnings=("MASQUE_PS=Y with DESTMSSANTEPS=Y",),
    ),
    "sender-invisible-patient-holds-patient-mail": Row(
        "shipped",
        dpi(sender_metadata=meta(INVISIBLE_PATIENT="Y", DESTDMP="Y", DESTMSSANTEPAT="Y")),
        {"dmp": send(), "mss_patient": hold(INVISIBLE)},
        masking={"invisible_patient": (True, Origin.SENDER)},
        warnings=("INVISIBLE_PATIENT=Y with DESTMSSANTEPAT=Y",),
    ),
    "sender-legal-representatives-flag-reaches-the-dmp": Row(
        "shipped",
        lab(sender_metadata=meta(INVISIBLE_REP_LEGAUX="Y", **ALL_ASKED)),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
        masking={
            "invisible_representants_legaux": (True, Origin.SENDER),
            "invisible_patient": (False, Origin.SENDER),
        },
    ),
    # -- imaging and the announcement --------------------------------------------------
    "radiologist-hides-report-dmp-goes-invisible-no-patient-mail-asked": Row(
        "shipped",
        imaging(sender_metadata=meta(INVISIBLE_PATIENT="Y", DESTDMP="Y", DESTMSSANTEPS="Y")),
        {"dmp": send(), PRESCRIBER_KEY: send()},
        route="imaging reports the radiologist holds for the announcement",
        masking={"invisible_patient": (True, Origin.SENDER)},
    ),
    "radiologist-hides-report-patient-mail-held-for-announcement": Row(
        "shipped",
        imaging(sender_metadata=meta(INVISIBLE_PATIENT="Y", **ALL_ASKED)),
        {"dmp": send(), PRESCRIBER_KEY: send(), "mss_patient": hold(ANNOUNCEMENT)},
        masking={"invisible_patient": (True, Origin.SENDER)},
    ),
    "announcement-released-by-operator-makes-report-visible-and-mails-patient": Row(
        "shipped",
        imaging(
            sender_metadata=meta(INVISIBLE_PATIENT="Y", **ALL_ASKED),
            released_holds={HoldKind.ANNOUNCEMENT},
        ),
        {"dmp": send(), PRESCRIBER_KEY: send(), "mss_patient": send()},
        masking={"invisible_patient": (False, Origin.ROUTE)},
    ),
    "imaging-without-announcement-goes-everywhere": Row(
        "shipped",
        imaging(),
        {"dmp": send(), PRESCRIBER_KEY: send(), "mss_patient": send()},
        route="imaging reports to DMP, prescriber and patient",
    ),
    "sender-new-version-making-report-visible-releases-announcement": Row(
        "shipped",
        imaging(
            action=Action.REPLACEMENT,
            sender_metadata=meta(MODIF_CONF_CODE="Y", **ALL_ASKED),
            delivered_before={"dmp", PRESCRIBER_KEY},
        ),
        {"dmp": send("replace"), PRESCRIBER_KEY: send("replace"), "mss_patient": send()},
        masking={"invisible_patient": (False, Origin.SENDER)},
        released=(HoldKind.ANNOUNCEMENT,),
    ),
    "sender-masking-update-of-the-same-version-updates-the-dmp-only": Row(
        "shipped",
        imaging(
            sender_metadata=meta(MODIF_CONF_CODE="Y", **ALL_ASKED),
            delivered_before={"dmp", PRESCRIBER_KEY},
        ),
        {
            "dmp": send("update_masking"),
            PRESCRIBER_KEY: refuse("already delivered: a mailbox cannot take a masking update"),
            "mss_patient": send(),
        },
        masking={"invisible_patient": (False, Origin.SENDER)},
        released=(HoldKind.ANNOUNCEMENT,),
    ),
    "masking-update-does-not-mail-earlier-recipients-again": Row(
        "shipped",
        lab(
            sender_metadata=meta(MODIF_CONF_CODE="Y", MASQUE_PS="Y", DESTDMP="Y"),
            delivered_before={"dmp", PRESCRIBER_KEY, "mss_patient"},
        ),
        {"dmp": send("update_masking")},
        masking={"masque_ps": (True, Origin.SENDER)},
        released=(HoldKind.ANNOUNCEMENT,),
    ),
    "operator-hides-report-from-patient": Row(
        "shipped",
        lab(operator_masking={"INVISIBLE_PATIENT": True}),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": hold(INVISIBLE)},
        masking={"invisible_patient": (True, Origin.OPERATOR)},
    ),
    "operator-unmasks-for-professionals-over-the-sender": Row(
        "shipped",
        lab(
            sender_metadata=meta(MASQUE_PS="Y", DESTDMP="Y", DESTMSSANTEPS="Y"),
            operator_masking={"MASQUE_PS": False},
        ),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send()},
        masking={"masque_ps": (False, Origin.OPERATOR)},
    ),
    "patient-address-from-prt-differs-from-ins-the-ins-wins": Row(
        "shipped",
        lab(
            sender_metadata=meta(DESTDMP="Y", DESTMSSANTEPAT="Y"),
            patient_address="quelquun.dautre@patient.mssante.fr",
        ),
        {"dmp": send(), "mss_patient": send()},
        warnings=("differs from the INS address 279035121518989@patient.mssante.fr",),
        extra={"patient_address": PATIENT_MAIL},
    ),
    "patient-may-not-reply-when-the-sender-says-fin": Row(
        "shipped",
        lab(sender_metadata=meta(DESTDMP="Y", DESTMSSANTEPAT="Y"), patient_may_not_reply=True),
        {"dmp": send(), "mss_patient": send()},
        extra={"no_reply": True},
    ),
    "connexion-secrete-travels-with-the-dmp-delivery": Row(
        "shipped",
        imaging(sender_metadata=meta(CONNEXION_SECRETE="Y", DESTDMP="Y")),
        {"dmp": send()},
        extra={"connexion_secrete": True},
    ),
    "unknown-metadata-names-are-reported": Row(
        "shipped",
        lab(sender_metadata={**meta(DESTDMP="Y"), "ZZ_LOCAL": "x"}),
        {"dmp": send()},
        warnings=("MetaDMPMSS names not in the volet ignored: ZZ_LOCAL",),
    ),
    # -- the language: conditions, holds, options (table_routes.yaml) ------------------
    "genetics-retained-until-released": Row(
        "table",
        lab(document_code="51969-4"),
        {"dmp": hold(RETAIN), PRESCRIBER_KEY: hold(RETAIN), "mss_patient": hold(RETAIN)},
        route="genetics retained until the geneticist releases",
    ),
    "genetics-released-goes-everywhere": Row(
        "table",
        lab(document_code="51969-4", released_holds={HoldKind.RETAIN}),
        {"dmp": send(), PRESCRIBER_KEY: send(), "mss_patient": send()},
    ),
    "genetics-retained-and-identity-holds-both-named": Row(
        "table",
        lab(document_code="51969-4", patient=PROVISIONAL),
        {
            "dmp": hold(INS_HOLD, RETAIN),
            PRESCRIBER_KEY: hold(RETAIN),
            "mss_patient": hold(INS_HOLD, RETAIN),
        },
    ),
    "genetics-withdrawal-is-not-retained": Row(
        "table",
        lab(
            document_code="51969-4",
            action=Action.DELETION,
            delivered_before={"dmp", PRESCRIBER_KEY},
        ),
        {"dmp": send("delete"), PRESCRIBER_KEY: send("delete")},
    ),
    "condition-on-identity-selects-its-route": Row(
        "table",
        lab(patient=PROVISIONAL),
        {"dmp": hold(INS_HOLD), PRESCRIBER_KEY: send()},
        route="lab reports for a provisional identity",
    ),
    "systematic-dmp-added-to-a-route-without-dmp": Row(
        "table",
        lab(),
        {"dmp": send(), PRESCRIBER_KEY: send()},
        route="lab reports, prescriber only",
        no_warnings=True,
    ),
    "route-without-the-senders-destinations-keeps-them-and-warns": Row(
        "table",
        lab(sender_metadata=meta(**ALL_ASKED)),
        {"dmp": send(), PRESCRIBER_KEY: send(), COPY_KEY: send(), "mss_patient": send()},
        warnings=(
            "route 'lab reports, prescriber only' does not send to dmp (DESTDMP=Y), "
            "mss_copies (DESTMSSANTEPS=Y), mss_patient (DESTMSSANTEPAT=Y), which the sender "
            "asked for: kept",
        ),
    ),
    "condition-on-action-lets-a-deletion-fall-through": Row(
        "table",
        lab(action=Action.DELETION, delivered_before={"dmp"}),
        {"dmp": send("delete")},
        route=None,
    ),
    "restricted-document-from-a-route-waits-for-review": Row(
        "table",
        lab(confidentiality="V"),
        {"dmp": hold(REVIEW_V), PRESCRIBER_KEY: send()},
    ),
    "imaging-announcement-holds-dmp-too-with-the-routes-reason": Row(
        "table",
        imaging(),
        {"dmp": hold(RADIOLOGIST), PRESCRIBER_KEY: send(), "mss_patient": hold(RADIOLOGIST)},
        route="imaging without MetaDMPMSS waits for the announcement",
        masking={"invisible_patient": (True, Origin.ROUTE)},
    ),
    "imaging-announcement-released-sends-dmp-visible": Row(
        "table",
        imaging(released_holds={HoldKind.ANNOUNCEMENT}),
        {"dmp": send(), PRESCRIBER_KEY: send(), "mss_patient": send()},
        masking={"invisible_patient": (False, Origin.ROUTE)},
    ),
    "announcement-forces-invisible-even-when-sender-says-visible": Row(
        "table",
        imaging(document_code="18747-6", sender_metadata=meta(**ALL_ASKED)),
        {"dmp": send(), PRESCRIBER_KEY: send(), "mss_patient": hold(ANNOUNCEMENT)},
        route="CT reports, an announcement no sender update can lift",
        masking={"invisible_patient": (True, Origin.ROUTE)},
    ),
    "announcement-the-sender-may-not-lift-stays": Row(
        "table",
        imaging(
            document_code="18747-6",
            action=Action.REPLACEMENT,
            sender_metadata=meta(MODIF_CONF_CODE="Y", DESTDMP="Y", DESTMSSANTEPAT="Y"),
            delivered_before={"dmp"},
        ),
        {"dmp": send("replace"), "mss_patient": hold(ANNOUNCEMENT)},
        masking={"invisible_patient": (True, Origin.ROUTE)},
        released=(),
    ),
    "always-destinations-go-despite-the-senders-n": Row(
        "table",
        dpi(sender_metadata=meta(DESTMSSANTEPAT="Y")),
        {"dmp": send(), ARCHIVE_KEY: send(), "mss_patient": send()},
        route="DPI letters, archived always",
        extra={"no_reply": True},
    ),
    "dpi-letter-without-metadata-follows-its-route": Row(
        "table",
        dpi(),
        {"dmp": send(), COPY_KEY: send(), ARCHIVE_KEY: send(), "mss_patient": send()},
    ),
    "route-masking-applies-when-the-sender-says-nothing": Row(
        "table",
        RoutingInput(source="EXT", document_kind="other", patient=OPPOSED),
        {"dmp": refuse(OPPOSITION), "mss_patient": send()},
        masking={
            "masque_ps": (True, Origin.ROUTE),
            "invisible_representants_legaux": (True, Origin.ROUTE),
            "invisible_patient": (False, Origin.DEFAULT),
        },
    ),
    "no-route-matches-systematic-dmp-still-applies": Row(
        "table",
        RoutingInput(source="LABO9", document_kind="CR-BIO", patient=QUALIFIED),
        {"dmp": send()},
        route=None,
    ),
}


@pytest.fixture(scope="module")
def route_files() -> dict[str, Routes]:
    return {"shipped": shipped_routes(), "table": load_routes(TABLE_ROUTES_PATH)}


def rendered(decision: RoutingDecision) -> dict[str, str]:
    out = {}
    for d in decision.destinations:
        text = f"{d.outcome.value} {d.operation.value}"
        if d.reason:
            text += f": {d.reason}"
        out[d.key] = text
    return out


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_routing_decision_table(row: Row, route_files: dict[str, Routes]) -> None:
    decision = decide(route_files[row.routes], row.given)
    assert rendered(decision) == row.expect, decision.explain()
    if row.route is not ...:
        assert decision.route == row.route
    for attr, (value, origin) in row.masking.items():
        flag = getattr(decision.masking, attr)
        assert (flag.value, flag.origin) == (value, origin), decision.explain()
    for text in row.warnings:
        assert any(text in w for w in decision.warnings), decision.warnings
    if row.no_warnings:
        assert decision.warnings == ()
    assert decision.released_holds == row.released
    if "patient_address" in row.extra:
        assert decision.get("mss_patient").address == row.extra["patient_address"]
    if "no_reply" in row.extra:
        assert decision.get("mss_patient").no_reply is row.extra["no_reply"]
    if "connexion_secrete" in row.extra:
        assert decision.masking.connexion_secrete is row.extra["connexion_secrete"]


def test_the_table_covers_both_route_files_and_every_outcome(
    route_files: dict[str, Routes],
) -> None:
    outcomes = {text.split(" ", 1)[0] for row in ROWS.values() for text in row.expect.values()}
    assert outcomes == {"send", "hold", "refuse"}
    assert {row.routes for row in ROWS.values()} == {"shipped", "table"}
    assert len(ROWS) >= 50
