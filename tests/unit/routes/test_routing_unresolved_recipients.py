"""Professionals the annuaire could not resolve: a refused destination each, with the
reason and a warning, never a silent drop; kept through the stored input."""

from __future__ import annotations

from pfi.routes import Outcome, RecipientRole, decide
from pfi.routes.inputs import UnresolvedRecipient
from pfi.routes.stored_input import input_from_json, input_to_json
from tests.unit.routes.builders import PRESCRIBER, PRESCRIBER_KEY, lab, meta, shipped_routes

ROUTES = shipped_routes()
NOBODY = UnresolvedRecipient(RecipientRole.COPY, "19999999999", "not in the annuaire", "Dr X")
NO_BOX = UnresolvedRecipient(RecipientRole.PRESCRIBER, "10001234567", "has no mailbox")


def test_each_unresolved_professional_is_a_refused_destination_with_its_reason() -> None:
    decision = decide(
        ROUTES,
        lab(
            recipients=(PRESCRIBER,),
            unresolved_recipients=(NOBODY,),
            recipient_notes=("prescriber Dr Martin (10003) -> dr.martin@chu-x.mssante.fr",),
        ),
    )
    by_key = {d.key: d for d in decision.destinations}
    refused = by_key["mss_pro:unresolved:19999999999"]
    assert (refused.outcome, refused.role, refused.address) == (
        Outcome.REFUSE,
        "copy",
        "unresolved:19999999999",
    )
    assert refused.refusal == (
        "no MSSanté address for the copy Dr X (19999999999): not in the annuaire"
    )
    assert by_key[PRESCRIBER_KEY].outcome is Outcome.SEND
    assert refused.refusal in decision.warnings
    assert any(s.rule == "annuaire" for s in decision.trace)


def test_an_unresolved_prescriber_replaces_the_no_address_warning() -> None:
    decision = decide(ROUTES, lab(recipients=(), unresolved_recipients=(NO_BOX,)))
    assert [d.key for d in decision.destinations if d.outcome is Outcome.REFUSE] == [
        "mss_pro:unresolved:10001234567"
    ]
    assert not any("no prescriber MSSanté address is known" in w for w in decision.warnings)
    assert sum("10001234567" in w for w in decision.warnings) == 1


def test_the_sender_asking_for_professionals_also_gets_the_refusal() -> None:
    decision = decide(
        ROUTES,
        lab(
            sender_metadata=meta(DESTMSSANTEPS="Y"), recipients=(), unresolved_recipients=(NOBODY,)
        ),
    )
    keys = {d.key: d.outcome for d in decision.destinations}
    assert keys["mss_pro:unresolved:19999999999"] is Outcome.REFUSE
    assert "mss_pro:" not in keys  # no anonymous "no address" row besides it


def test_unresolved_recipients_survive_the_stored_input() -> None:
    inp = lab(unresolved_recipients=(NOBODY,), recipient_notes=("a note",))
    again = input_from_json(input_to_json(inp))
    assert again.unresolved_recipients == (NOBODY,)
    assert again.recipient_notes == ("a note",)
    assert decide(ROUTES, again) == decide(ROUTES, inp)
