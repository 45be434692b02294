"""The routing decision: where one document goes, with which visibility, what waits.

`decide` is pure and deterministic: the same `RoutingInput` gives the same decision, so
the routing stage re-runs it whenever a fact changes (identity qualified, hold released,
operator masking) instead of patching stored decisions; `reevaluate` is that re-run.

Rules, in the order they apply (each leaves a `TraceStep`):

1. Destinations come from the sender's MetaDMPMSS when the message has it (DESTDMP,
   DESTMSSANTEPS for every professional recipient, DESTMSSANTEPAT), else from the first
   matching route. A route adds destinations, and holds; it never removes what the sender
   asked (kept, with a warning) and does not add what the sender refused (N) unless its
   destination says `always: true` (never for the patient).
2. The DMP is fed systematically for `defaults.dmp_always_for` (CR-BIO, CR-IMG), unless
   the sender said DESTDMP=N (then recorded as refused, with a warning).
3. A replacement also goes where earlier versions went; a deletion goes exactly there.
4. The DMP only for a qualified INS (else held "INS not qualified"), never against the
   patient's known opposition (refused "refused by patient (opposition)").
5. The patient's mailbox (INS@patient.mssante.fr) only for a qualified INS, never while
   an announcement hold or INVISIBLE_PATIENT applies: held, released with the hold.
6. MASQUE_PS: no mail between professionals (held while it applies).
7. Holds: announcement (DMP sent invisible to the patient, or held; patient mail held),
   retain (everything held). A withdrawal (deletion) is never delayed by them.
8. Masking per flag: operator, else sender, else route, else N; an active announcement
   hold forces INVISIBLE_PATIENT, and its release makes the document visible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pfi.routes.inputs import (
    DestinationKind,
    PatientFacts,
    Recipient,
    RecipientRole,
    RoutingInput,
    UnresolvedRecipient,
    destination_key,
)
from pfi.routes.metadata import SenderMetadata
from pfi.routes.model import Action, HoldKind, HoldRule, Routes
from pfi.routes.outcome import (
    AckRequests,
    Destination,
    Hold,
    MailContent,
    Masking,
    MaskingFlag,
    Operation,
    Origin,
    Outcome,
    RoutingDecision,
    TraceStep,
)
from pfi.routes.plan import RoutePlan

__all__ = [
    "Destination",
    "Hold",
    "RoutingDecision",
    "RoutingInput",
    "decide",
    "reevaluate",
]

INS_NOT_QUALIFIED = "INS not qualified"
PATIENT_OPPOSITION = "refused by patient (opposition)"
MASQUE_PS_REASON = (
    "MASQUE_PS: masked to professionals, not exchanged between professionals by MSSanté"
)
INVISIBLE_PATIENT_REASON = "INVISIBLE_PATIENT: not visible to the patient, not mailed to them"
RELEASE_BY_IDENTITY = "identity qualified (INS with a qualifying PID-32 status)"
RELEASE_BY_OPERATOR = "operator"
RELEASE_BY_SENDER_VISIBILITY = "sender update (MODIF_CONF_CODE=Y, INVISIBLE_PATIENT=N)"

_MASKING_ATTRS = (
    ("MASQUE_PS", "masque_ps"),
    ("INVISIBLE_PATIENT", "invisible_patient"),
    ("INVISIBLE_REP_LEGAUX", "invisible_rep_legaux"),
)
_ROLE_TARGET = {RecipientRole.PRESCRIBER: "mss_prescriber", RecipientRole.COPY: "mss_copies"}


def decide(routes: Routes, routing_input: RoutingInput) -> RoutingDecision:
    """Decide where the document goes; pure, deterministic, never raises on a fact."""
    return _Decider(routes, routing_input).run()


def reevaluate(
    routes: Routes,
    routing_input: RoutingInput,
    *,
    patient: PatientFacts | None = None,
    released: Iterable[HoldKind] = (),
    operator_masking: Mapping[str, bool] | None = None,
) -> tuple[RoutingInput, RoutingDecision]:
    """Decide again after a fact changed; returns the updated input to store with it."""
    changes: dict[str, object] = {}
    if patient is not None:
        changes["patient"] = patient
    released = frozenset(HoldKind(h) for h in released)
    if released:
        changes["released_holds"] = routing_input.released_holds | released
    if operator_masking is not None:
        changes["operator_masking"] = {**routing_input.operator_masking, **operator_masking}
    updated = dataclasses.replace(routing_input, **changes)  # type: ignore[arg-type]
    return updated, decide(routes, updated)


@dataclass
class _Want:
    """A destination someone asked for, before the rules settle its outcome."""

    kind: DestinationKind
    role: str
    address: str = ""
    requested_by: list[str] = field(default_factory=list)
    sender_asked: bool = False
    refusal: str = ""
    no_reply: bool = False
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = destination_key(self.kind, self.address)


class _Decider:
    def __init__(self, routes: Routes, routing_input: RoutingInput) -> None:
        self.routes = routes
        self.inp = routing_input
        self.meta: SenderMetadata | None = routing_input.metadata
        self.patient = routing_input.patient
        self.deleting = routing_input.action is Action.DELETION
        self.trace: list[TraceStep] = []
        self.warnings: list[str] = []
        self.released: set[HoldKind] = set(routing_input.released_holds)
        self.released_now: list[HoldKind] = []
        self.route: RoutePlan | None = None
        self.hold_rule: HoldRule | None = None
        self.unresolved_warned: set[str] = set()
        self.modif_conf = self._sender_says("MODIF_CONF_CODE") is True
        # MODIF_CONF_CODE=Y on the same document (not a new version): only its masking
        # changes. A replacement with MODIF_CONF_CODE=Y (the volet's T10 example) is a
        # new version that carries the new masking itself.
        self.masking_update_only = self.modif_conf and routing_input.action is Action.INITIAL

    # -- helpers -------------------------------------------------------------------------

    def _step(self, rule: str, subject: str, detail: str) -> None:
        self.trace.append(TraceStep(rule, subject, detail))

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        self._step("warning", "decision", text)

    def _sender_says(self, name: str) -> bool | None:
        return self.meta.flag(name) if self.meta is not None else None

    @property
    def announcement_active(self) -> bool:
        return (
            self.hold_rule is not None
            and self.hold_rule.kind == "announcement"
            and HoldKind.ANNOUNCEMENT not in self.released
            and not self.deleting
        )

    @property
    def retain_active(self) -> bool:
        return (
            self.hold_rule is not None
            and self.hold_rule.kind == "retain"
            and HoldKind.RETAIN not in self.released
            and not self.deleting
        )

    # -- the decision --------------------------------------------------------------------

    def run(self) -> RoutingDecision:
        self._check_metadata()
        self._match_route()
        self._apply_sender_release()
        self._trace_route_hold()
        masking = self._masking()
        wants = self._deletion_wants() if self.deleting else self._delivery_wants()
        destinations = tuple(self._settle(w, masking) for w in wants.values())
        if not destinations:
            self._warn(
                "no destination: the sender asked for none and no route or rule sends this "
                "document anywhere"
            )
        return RoutingDecision(
            route=self.route.name if self.route else None,
            route_line=self.route.line if self.route else None,
            destinations=destinations,
            masking=masking,
            acks=self._acks(),
            mail=self._mail(),
            released_holds=tuple(self.released_now),
            trace=tuple(self.trace),
            warnings=tuple(self.warnings),
        )

    def _check_metadata(self) -> None:
        meta = self.meta
        if meta is None:
            self._step("sender", "MetaDMPMSS", "absent: destinations and masking from routes")
            return
        said = ", ".join(f"{k}={'Y' if v else 'N'}" for k, v in meta.flags.items())
        self._step("sender", "MetaDMPMSS", said or "no flag")
        if meta.unknown:
            self._warn("MetaDMPMSS names not in the volet ignored: " + ", ".join(meta.unknown))
        if meta.says_yes("MASQUE_PS") and meta.says_yes("DESTMSSANTEPS"):
            self._warn(
                "the sender set MASQUE_PS=Y with DESTMSSANTEPS=Y, a combination outside the "
                "volet's MSSanté matrix: professional mails held while masked"
            )
        if meta.says_yes("INVISIBLE_PATIENT") and meta.says_yes("DESTMSSANTEPAT"):
            self._warn(
                "the sender set INVISIBLE_PATIENT=Y with DESTMSSANTEPAT=Y, a combination "
                "outside the volet's MSSanté matrix: the patient mail is held while invisible"
            )
        if self.deleting and self.modif_conf:
            self._warn("MODIF_CONF_CODE=Y on a deletion: ignored, the document is withdrawn")

    def _match_route(self) -> None:
        inp = self.inp
        flags = {
            attr: self._sender_says(hl7) is True for hl7, attr in _MASKING_ATTRS
        }  # no MetaDMPMSS: every flag N
        facts = (
            inp.source,
            inp.document_kind.value,
            inp.document_code,
            inp.action.value,
            inp.confidentiality,
            self.meta is not None,
            self.patient.ins_qualified,
            flags,
        )
        self.route = next((r for r in self.routes.plan() if r.matches(*facts)), None)
        if self.route is None:
            self._step(
                "route",
                "routes",
                f"none matched {inp.source} {inp.document_kind.value} {inp.action.value}",
            )
            return
        where = f" (line {self.route.line})" if self.route.line else ""
        self._step("route", "routes", f"{self.route.name!r}{where} matched")
        self.hold_rule = self.route.hold

    def _apply_sender_release(self) -> None:
        """A visibility update from the sender (MODIF_CONF_CODE=Y, INVISIBLE_PATIENT=N) is
        the radiologist saying the patient may now see the document: it releases the
        announcement hold, whichever route held the earlier version, unless the route
        this update matches says `released_by_sender: false`."""
        if self.deleting or HoldKind.ANNOUNCEMENT in self.released:
            return
        if not (self.modif_conf and self._sender_says("INVISIBLE_PATIENT") is False):
            return
        rule = self.hold_rule
        if rule is not None and rule.kind == "announcement" and not rule.sender_releases:
            self._step(
                "hold",
                HoldKind.ANNOUNCEMENT.value,
                "not released by the sender's visibility update (released_by_sender: false)",
            )
            return
        self.released.add(HoldKind.ANNOUNCEMENT)
        self.released_now.append(HoldKind.ANNOUNCEMENT)
        self._step(
            "hold",
            HoldKind.ANNOUNCEMENT.value,
            "any pending announcement hold on this document is released by the sender's "
            "visibility update (MODIF_CONF_CODE=Y, INVISIBLE_PATIENT=N)",
        )

    def _trace_route_hold(self) -> None:
        if self.hold_rule is None:
            return
        kind = HoldKind(self.hold_rule.kind)
        state = "released" if kind in self.released else "applies"
        if self.deleting:
            state = "does not delay a withdrawal"
        self._step("hold", kind.value, f"route hold {state}")

    # -- masking -------------------------------------------------------------------------

    def _masking(self) -> Masking:
        route = self.route
        dmp_options = route.dmp if route else None
        flags: dict[str, MaskingFlag] = {}
        for hl7, attr in _MASKING_ATTRS:
            sender = self._sender_says(hl7)
            if hl7 in self.inp.operator_masking:
                value = self.inp.operator_masking[hl7]
                flag = MaskingFlag(value, Origin.OPERATOR, "set by an operator")
            elif sender is not None:
                flag = MaskingFlag(sender, Origin.SENDER, f"{hl7}={'Y' if sender else 'N'}")
            elif dmp_options is not None and getattr(dmp_options, attr) is not None:
                value = bool(getattr(dmp_options, attr))
                flag = MaskingFlag(value, Origin.ROUTE, f"route {route.name!r}")  # type: ignore[union-attr]
            else:
                flag = MaskingFlag(False, Origin.DEFAULT)
            flags[attr] = flag
        flags["invisible_patient"] = self._announcement_visibility(flags["invisible_patient"])
        for hl7, attr in _MASKING_ATTRS:
            flag = flags[attr]
            if flag.value or flag.origin is not Origin.DEFAULT:
                shown = "Y" if flag.value else "N"
                self._step("masking", hl7, f"{shown} from {flag.origin.value} {flag.note}".strip())
        return Masking(
            masque_ps=flags["masque_ps"],
            invisible_patient=flags["invisible_patient"],
            invisible_representants_legaux=flags["invisible_rep_legaux"],
            connexion_secrete=self._sender_says("CONNEXION_SECRETE") is True,
            confidentiality=self.inp.confidentiality,
        )

    def _announcement_visibility(self, flag: MaskingFlag) -> MaskingFlag:
        """An announcement hold owns the patient's view of the document: invisible while
        it applies, visible once released (an operator's own masking still wins then)."""
        rule = self.hold_rule
        if rule is None or rule.kind != "announcement" or self.deleting:
            return flag
        if self.announcement_active:
            if flag.value:
                return dataclasses.replace(flag, note=f"{flag.note}; kept by the announcement hold")
            note = "announcement hold: invisible to the patient until release"
            if flag.origin is Origin.OPERATOR:
                note += " (the operator's unmasking waits for the release)"
            return MaskingFlag(True, Origin.ROUTE, note)
        if flag.origin is Origin.OPERATOR:
            return flag
        return MaskingFlag(
            False, Origin.ROUTE, "announcement hold released: visible to the patient"
        )

    # -- who asked for what --------------------------------------------------------------

    def _delivery_wants(self) -> dict[str, _Want]:
        wants: dict[str, _Want] = {}
        for note in self.inp.recipient_notes:
            self._step("annuaire", "recipients", note)
        self._sender_wants(wants)
        self._route_wants(wants)
        self._systematic_dmp(wants)
        self._earlier_recipients(wants)
        return wants

    def _sender_wants(self, wants: dict[str, _Want]) -> None:
        if self.meta is None:
            return
        if self.meta.says_yes("DESTDMP"):
            self._add(
                wants, _Want(DestinationKind.DMP, "dmp", sender_asked=True), "sender DESTDMP=Y"
            )
        if self.meta.says_yes("DESTMSSANTEPS"):
            for unresolved in self.inp.unresolved_recipients:
                self._add(wants, self._unresolved_want(unresolved), "sender DESTMSSANTEPS=Y")
            if not self.inp.recipients and not self.inp.unresolved_recipients:
                self._add(
                    wants,
                    _Want(
                        DestinationKind.MSS_PRO,
                        "recipients",
                        sender_asked=True,
                        refusal="no professional MSSanté address known (DESTMSSANTEPS=Y "
                        "without a PRT RCT address)",
                    ),
                    "sender DESTMSSANTEPS=Y",
                )
            for recipient in self.inp.recipients:
                self._add(
                    wants, self._pro_want(recipient, sender_asked=True), "sender DESTMSSANTEPS=Y"
                )
        if self.meta.says_yes("DESTMSSANTEPAT"):
            self._add(
                wants,
                _Want(
                    DestinationKind.MSS_PATIENT,
                    "patient",
                    sender_asked=True,
                    no_reply=self.inp.patient_may_not_reply,
                ),
                "sender DESTMSSANTEPAT=Y",
            )

    def _route_wants(self, wants: dict[str, _Want]) -> None:
        route = self.route
        if route is None:
            return
        by = f"route {route.name!r}"
        for target in route.targets:
            gate = target.gate
            if self._sender_says(gate) is False and not target.always:
                self._step("route", target.name, f"not added: the sender said {gate}=N")
                continue
            if self._sender_says(gate) is False:
                self._step("route", target.name, f"added despite {gate}=N (always: true)")
            if target.name == "dmp":
                self._add(wants, _Want(DestinationKind.DMP, "dmp"), by)
            elif target.name == "mss_patient":
                self._add(
                    wants,
                    _Want(DestinationKind.MSS_PATIENT, "patient", no_reply=target.no_reply),
                    by,
                )
            elif target.name == "mss_address":
                self._add(
                    wants, _Want(DestinationKind.MSS_PRO, "fixed", address=target.address), by
                )
            else:
                role = (
                    RecipientRole.PRESCRIBER
                    if target.name == "mss_prescriber"
                    else RecipientRole.COPY
                )
                matching = [r for r in self.inp.recipients if r.role is role]
                unresolved = [u for u in self.inp.unresolved_recipients if u.role is role]
                for u in unresolved:
                    self._add(wants, self._unresolved_want(u), by)
                if not matching and not unresolved and role is RecipientRole.PRESCRIBER:
                    self._warn(
                        f"route {route.name!r} sends to the prescriber but no prescriber "
                        "MSSanté address is known"
                    )
                elif not matching and not unresolved:
                    self._step("route", target.name, "no copy recipient with an MSSanté address")
                for recipient in matching:
                    self._add(wants, self._pro_want(recipient), by)
        self._kept_against_route(wants, route)

    def _kept_against_route(self, wants: dict[str, _Want], route: RoutePlan) -> None:
        """The sender asked for destinations this route does not list: keep, and say so."""
        if self.meta is None:
            return
        listed = route.target_names
        missing: list[str] = []
        if self.meta.says_yes("DESTDMP") and "dmp" not in listed:
            missing.append("dmp (DESTDMP=Y)")
        if self.meta.says_yes("DESTMSSANTEPS"):
            for role, name in _ROLE_TARGET.items():
                if name not in listed and any(r.role is role for r in self.inp.recipients):
                    missing.append(f"{name} (DESTMSSANTEPS=Y)")
        if self.meta.says_yes("DESTMSSANTEPAT") and "mss_patient" not in listed:
            missing.append("mss_patient (DESTMSSANTEPAT=Y)")
        if missing:
            self._warn(
                f"route {route.name!r} does not send to {', '.join(missing)}, which the sender "
                "asked for: kept"
            )

    def _systematic_dmp(self, wants: dict[str, _Want]) -> None:
        kind = self.inp.document_kind
        if kind not in self.routes.defaults.dmp_always_for:
            return
        key = destination_key(DestinationKind.DMP)
        if key in wants:
            wants[key].requested_by.append(f"systematic DMP feeding of {kind.value}")
            return
        if self._sender_says("DESTDMP") is False:
            self._add(
                wants,
                _Want(
                    DestinationKind.DMP,
                    "dmp",
                    refusal=f"sender set DESTDMP=N: systematic DMP feeding of {kind.value} "
                    "not applied",
                ),
                f"systematic DMP feeding of {kind.value}",
            )
            self._warn(
                f"{kind.value} not sent to the DMP: the sender set DESTDMP=N (Ségur expects "
                "systematic feeding)"
            )
            return
        self._add(
            wants, _Want(DestinationKind.DMP, "dmp"), f"systematic DMP feeding of {kind.value}"
        )

    def _earlier_recipients(self, wants: dict[str, _Want]) -> None:
        if self.masking_update_only:
            earlier = {k for k in self.inp.delivered_before if k == "dmp"}
        elif self.inp.action is Action.REPLACEMENT:
            if not self.routes.defaults.replacement_to_earlier_recipients:
                return
            earlier = set(self.inp.delivered_before)
        else:
            return
        for key in sorted(earlier):
            want = wants.get(key)
            if want is not None and not want.refusal:
                continue
            if want is not None:  # refused so far (e.g. DESTDMP=N): the old version is there
                self._warn(
                    f"{key} received an earlier version: the update goes there too ({want.refusal})"
                )
                want.refusal = ""
                want.requested_by.append("earlier version delivered here")
                continue
            self._add(wants, self._earlier_want(key), "earlier version delivered here")

    def _deletion_wants(self) -> dict[str, _Want]:
        wants: dict[str, _Want] = {}
        for key in sorted(self.inp.delivered_before):
            self._add(wants, self._earlier_want(key), "earlier version delivered here")
        sender_asked = self._sender_wants_for_deletion()
        for want in sender_asked:
            if want.key in wants:
                wants[want.key].sender_asked = True
                continue
            want.refusal = "nothing to withdraw: no earlier version was delivered here"
            self._add(wants, want, "sender")
        if not self.inp.delivered_before:
            self._step("deletion", "document", "no earlier version was delivered anywhere")
        return wants

    def _sender_wants_for_deletion(self) -> list[_Want]:
        scratch: dict[str, _Want] = {}
        trace_len = len(self.trace)
        self._sender_wants(scratch)
        del self.trace[trace_len:]
        return list(scratch.values())

    def _earlier_want(self, key: str) -> _Want:
        kind_text, _, address = key.partition(":")
        kind = DestinationKind(kind_text)
        role = {"dmp": "dmp", "mss_patient": "patient"}.get(kind.value, "earlier")
        for r in self.inp.recipients:
            if destination_key(DestinationKind.MSS_PRO, r.address) == key:
                role = r.role.value
                address = r.address
        return _Want(kind, role, address=address)

    def _unresolved_want(self, unresolved: UnresolvedRecipient) -> _Want:
        """A professional whose address is unknown: a refused row of their own, and a
        warning, so that ops see who did not get the report and why."""
        who = f"{unresolved.role.value} {unresolved.name}".strip() + f" ({unresolved.id})"
        refusal = f"no MSSanté address for the {who}: {unresolved.reason}"
        if unresolved.id not in self.unresolved_warned:
            self.unresolved_warned.add(unresolved.id)
            self._warn(refusal)
        return _Want(
            DestinationKind.MSS_PRO,
            unresolved.role.value,
            address=unresolved.ledger_recipient,
            refusal=refusal,
        )

    def _pro_want(self, recipient: Recipient, *, sender_asked: bool = False) -> _Want:
        return _Want(
            DestinationKind.MSS_PRO,
            recipient.role.value,
            address=recipient.address,
            sender_asked=sender_asked,
        )

    def _add(self, wants: dict[str, _Want], want: _Want, by: str) -> None:
        existing = wants.get(want.key)
        if existing is None:
            want.requested_by.append(by)
            wants[want.key] = want
            self._step("destination", want.key, f"requested by {by}")
            return
        existing.requested_by.append(by)
        existing.sender_asked = existing.sender_asked or want.sender_asked
        existing.no_reply = existing.no_reply or want.no_reply
        if existing.refusal and not want.refusal:
            existing.refusal = ""

    # -- settling each destination -------------------------------------------------------

    def _settle(self, want: _Want, masking: Masking) -> Destination:
        holds: list[Hold] = []
        refusal = want.refusal
        address = want.address
        if want.kind is DestinationKind.MSS_PATIENT:
            address = self._patient_address()
        if not refusal:
            if self.deleting:
                holds = self._deletion_holds(want)
            elif want.kind is DestinationKind.DMP:
                refusal, holds = self._dmp_rules(want)
            elif want.kind is DestinationKind.MSS_PRO:
                holds = self._pro_mail_rules(masking)
            else:
                holds = self._patient_mail_rules(masking)
        operation = self._operation(want)
        if (
            not refusal
            and self.masking_update_only
            and want.kind is not DestinationKind.DMP
            and want.key in self.inp.delivered_before
        ):
            refusal = "already delivered: a mailbox cannot take a masking update"
            holds = []
        if refusal:
            outcome, holds = Outcome.REFUSE, []
        elif holds:
            outcome = Outcome.HOLD
        else:
            outcome = Outcome.SEND
        watching: tuple[Hold, ...] = ()
        if (
            outcome is Outcome.SEND
            and want.kind is DestinationKind.DMP
            and self.announcement_active
            and self.hold_rule is not None
            and not self.hold_rule.dmp_held
        ):
            # sent now, invisible to the patient: the hold still owns the patient's view
            watching = (self._route_hold(),)
        detail = f"{outcome.value} {operation.value}"
        if outcome is not Outcome.SEND:
            detail += " — " + (refusal or "; ".join(h.reason for h in holds))
        elif watching:
            detail += " — invisible to the patient until the announcement hold is released"
        self._step("outcome", want.key, detail)
        return Destination(
            kind=want.kind,
            role=want.role,
            outcome=outcome,
            operation=operation,
            address=address,
            holds=tuple(holds),
            refusal=refusal,
            requested_by=tuple(want.requested_by),
            no_reply=want.no_reply,
            watching=watching,
        )

    def _patient_address(self) -> str:
        address = self.patient.mail_address
        given = self.inp.patient_address.strip()
        if given and address and given.lower() != address.lower():
            self._warn(
                f"the patient address {given} given by the sender differs from the INS "
                f"address {address}: the INS address is used"
            )
        return address

    def _identity_hold(self) -> Hold:
        return Hold(HoldKind.IDENTITY, INS_NOT_QUALIFIED, (RELEASE_BY_IDENTITY,))

    def _route_hold(self) -> Hold:
        rule = self.hold_rule
        assert rule is not None
        released_by = [RELEASE_BY_OPERATOR, *rule.released_by]
        if rule.sender_releases:
            released_by.append(RELEASE_BY_SENDER_VISIBILITY)
        return Hold(HoldKind(rule.kind), rule.default_reason, tuple(released_by))

    def _deletion_holds(self, want: _Want) -> list[Hold]:
        if want.kind is not DestinationKind.MSS_PRO and not self.patient.ins_qualified:
            return [self._identity_hold()]
        return []

    def _dmp_rules(self, want: _Want) -> tuple[str, list[Hold]]:
        if self.patient.dmp_opposition is True:
            self._step(
                "dmp",
                "opposition",
                "the patient opposed DMP feeding (ZFA-9 IO)",
            )
            return PATIENT_OPPOSITION, []
        holds: list[Hold] = []
        if not self.patient.ins_qualified:
            holds.append(self._identity_hold())
        if self.retain_active:
            holds.append(self._route_hold())
        if self.announcement_active and self.hold_rule is not None and self.hold_rule.dmp_held:
            holds.append(self._route_hold())
        review = self._review_hold(want)
        if review is not None:
            holds.append(review)
        return "", holds

    def _review_hold(self, want: _Want) -> Hold | None:
        confidentiality = self.inp.confidentiality
        if confidentiality == "N" or self.routes.defaults.restricted_confidentiality == "send":
            return None
        if HoldKind.REVIEW in self.released:
            self._step("dmp", "confidentiality", f"{confidentiality}: review released")
            return None
        if want.sender_asked:
            self._step(
                "dmp",
                "confidentiality",
                f"{confidentiality}: the sender itself asked for the DMP (DESTDMP=Y)",
            )
            return None
        return Hold(
            HoldKind.REVIEW,
            f"confidentiality {confidentiality}: restricted document held for review before "
            "DMP sharing",
            (RELEASE_BY_OPERATOR,),
        )

    def _pro_mail_rules(self, masking: Masking) -> list[Hold]:
        holds: list[Hold] = []
        if self.retain_active:
            holds.append(self._route_hold())
        if masking.masque_ps.value:
            holds.append(
                Hold(
                    HoldKind.MASKING,
                    MASQUE_PS_REASON,
                    ("sender update (MODIF_CONF_CODE=Y, MASQUE_PS=N)", "operator masking"),
                )
            )
        return holds

    def _patient_mail_rules(self, masking: Masking) -> list[Hold]:
        holds: list[Hold] = []
        if not self.patient.ins_qualified:
            holds.append(self._identity_hold())
        if self.retain_active:
            holds.append(self._route_hold())
        if self.announcement_active:
            holds.append(self._route_hold())
        elif masking.invisible_patient.value:
            holds.append(
                Hold(
                    HoldKind.MASKING,
                    INVISIBLE_PATIENT_REASON,
                    ("sender update (MODIF_CONF_CODE=Y, INVISIBLE_PATIENT=N)", "operator masking"),
                )
            )
        return holds

    def _operation(self, want: _Want) -> Operation:
        if self.deleting:
            return Operation.DELETE
        earlier = want.key in self.inp.delivered_before
        if want.kind is DestinationKind.DMP and earlier and self.masking_update_only:
            return Operation.UPDATE_MASKING
        if earlier and self.inp.action is Action.REPLACEMENT:
            return Operation.REPLACE
        return Operation.SUBMIT

    # -- acknowledgements and mail bodies ------------------------------------------------

    def _acks(self) -> AckRequests:
        route_acks = self.route.route.acks if self.route else None
        defaults = self.routes.defaults.acks
        values: list[tuple[bool, Origin]] = []
        for hl7, attr in (("ACK_RECEPTION", "reception"), ("ACK_LECTURE_MSS", "read")):
            sender = self._sender_says(hl7)
            if sender is not None:
                values.append((sender, Origin.SENDER))
            elif route_acks is not None and getattr(route_acks, attr) is not None:
                values.append((bool(getattr(route_acks, attr)), Origin.ROUTE))
            else:
                values.append((bool(getattr(defaults, attr)), Origin.DEFAULT))
        (reception, reception_origin), (read, read_origin) = values
        return AckRequests(reception, read, reception_origin, read_origin)

    def _mail(self) -> MailContent:
        action = self.inp.action
        route_bodies = self.route.route.mail_bodies.for_action(action) if self.route else None
        default_bodies = self.routes.defaults.mail_bodies.for_action(action)
        out: list[tuple[str, Origin]] = []
        for hl7, who in (("CORPSMAIL_PS", "ps"), ("CORPSMAIL_PATIENT", "patient")):
            sent = self.meta.text(hl7) if self.meta is not None else None
            if sent is not None:
                out.append((sent, Origin.SENDER))
            elif route_bodies is not None and getattr(route_bodies, who):
                out.append((getattr(route_bodies, who), Origin.ROUTE))
            else:
                out.append((getattr(default_bodies, who) or "", Origin.DEFAULT))
        (ps, ps_origin), (patient, patient_origin) = out
        return MailContent(ps, patient, ps_origin, patient_origin)
