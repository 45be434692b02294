"""The shape of `config/routes.yaml`: which document goes where, with which visibility,
and what waits for a release.

Read like an integration route (Camel spirit): `from` (which feed and document), `when`
(conditions on the message and the patient), `to` (destinations), `hold` (what waits).
Routes are tried in order and the first one that matches decides; the sender's own
MetaDMPMSS request always comes first (a route may add, never silently drop). Every
section forbids unknown keys: a misspelt `invisible_patiant: true` that is ignored would
show a report to a patient before the announcement consultation.

Checks that span sections (route names unique, a hold naming an unknown release
trigger, a route no document can reach...) are in `Routes.problems()`, so that the
loader can point each at its line and code that builds `Routes` gets them too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pfi.config.loader import dotted

if TYPE_CHECKING:
    from pfi.routes.plan import RoutePlan

KeyPath = tuple[str | int, ...]

MESSAGE_TYPE = re.compile(r"^[A-Z0-9]{3}(\^[A-Z0-9]{3})?$")
FIELD_PATH = re.compile(r"^[A-Z][A-Z0-9]{2}-[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,2}$")
MSSANTE_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PATIENT_MAIL_DOMAIN = "patient.mssante.fr"
#: Context key the loader passes so that cross-section checks are reported per line by it.
DEFER_CROSS_CHECKS = "pfi.routes.defer_cross_checks"


class DocumentKind(StrEnum):
    """The document families routing distinguishes (CI-SIS volets)."""

    CR_BIO = "CR-BIO"
    CR_IMG = "CR-IMG"
    OTHER = "other"


class Action(StrEnum):
    """What the sender asks for the document (ORC-1 NW/RO/CA, OBX-11 F/C/D, MDM T02/T10/T04)."""

    INITIAL = "initial"
    REPLACEMENT = "replacement"
    DELETION = "deletion"


class HoldKind(StrEnum):
    """Why a delivery waits. `announcement` and `retain` come from routes; the others from
    the domain rules, and are released by the facts changing (decide again)."""

    IDENTITY = "identity"  # INS not qualified: released when the identity is qualified
    ANNOUNCEMENT = "announcement"  # patient not yet informed: operator, HL7 trigger, sender
    RETAIN = "retain"  # nothing leaves until an explicit release
    MASKING = "masking"  # MASQUE_PS / INVISIBLE_PATIENT forbid this mail while they apply
    REVIEW = "review"  # restricted confidentiality (R/V) before DMP sharing


#: Holds an explicit act (operator, HL7 trigger) can release; the others follow the facts.
RELEASABLE_HOLDS = frozenset({HoldKind.ANNOUNCEMENT, HoldKind.RETAIN, HoldKind.REVIEW})

DESTINATION_NAMES = ("dmp", "mss_prescriber", "mss_copies", "mss_patient", "mss_address")
#: Destinations that the sender's DESTMSSANTEPS flag governs.
PRO_MAIL_NAMES = ("mss_prescriber", "mss_copies", "mss_address")


class RoutesSection(BaseModel):
    """Base of every routes section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    """`source: SGL` and `source: [SGL, RIS]` both mean a list."""
    if value is None:
        return []
    if isinstance(value, str | int | float | bool):
        return [value]
    return value


def _no_duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"each value once ({v!r} is listed twice)")
        seen.add(v)
    return values


def _pattern(regex: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(what)
        return value

    return AfterValidator(check)


SourceName = Annotated[
    str,
    _pattern(re.compile(r"^[A-Z][A-Z0-9_]{1,15}$"), "a source name as in pfi.yaml, like SGL"),
]
LoincCode = Annotated[str, _pattern(re.compile(r"^[0-9]{1,7}-[0-9]$"), "a LOINC code like 11502-2")]
MessageType = Annotated[
    str, _pattern(MESSAGE_TYPE, "a message type like 'ORU^R01', or 'MDM' for any event")
]
FieldPath = Annotated[str, _pattern(FIELD_PATH, "a field path like 'OBX-5.1' or 'OBR-3'")]
NonEmptyText = Annotated[str, Field(min_length=1)]


def _mssante_address(value: str) -> str:
    if not MSSANTE_ADDRESS.match(value):
        raise ValueError("an MSSanté mail address like secretariat@hopital.mssante.fr")
    if value.lower().endswith("@" + PATIENT_MAIL_DOMAIN):
        raise ValueError(
            "a professional or organisation address (a patient's address comes from the "
            "qualified INS: use mss_patient)"
        )
    return value


class SourceMatch(RoutesSection):
    """`from:` which feed and which document; an empty list matches anything."""

    source: Annotated[list[SourceName], BeforeValidator(_as_list)] = []
    document: Annotated[list[DocumentKind], BeforeValidator(_as_list)] = []
    code: Annotated[list[LoincCode], BeforeValidator(_as_list)] = Field(
        default=[], description="LOINC document type codes (CDA ClinicalDocument/code)"
    )

    _check_unique = field_validator("source", "document", "code")(_no_duplicates)


class Conditions(RoutesSection):
    """`when:` conditions on the message and the patient, all of which must hold.

    Masking conditions look at the sender's MetaDMPMSS flags; a message without
    MetaDMPMSS has them all at N.
    """

    action: Annotated[list[Action], BeforeValidator(_as_list)] = []
    confidentiality: Annotated[list[Literal["N", "R", "V"]], BeforeValidator(_as_list)] = []
    sender_metadata: bool | None = Field(
        default=None, description="true: the message carries MetaDMPMSS OBX"
    )
    ins_qualified: bool | None = None
    masque_ps: bool | None = None
    invisible_patient: bool | None = None
    invisible_rep_legaux: bool | None = None

    _check_unique = field_validator("action", "confidentiality")(_no_duplicates)

    @property
    def is_empty(self) -> bool:
        return self == Conditions()


class DmpOptions(RoutesSection):
    """Visibility of the DMP copy when the sender did not say (its MetaDMPMSS wins)."""

    masque_ps: bool | None = None
    invisible_patient: bool | None = None
    invisible_rep_legaux: bool | None = None
    always: bool = Field(
        default=False, description="send even when the sender's MetaDMPMSS says DESTDMP=N"
    )


class ProMailOptions(RoutesSection):
    always: bool = Field(
        default=False, description="send even when the sender's MetaDMPMSS says DESTMSSANTEPS=N"
    )


class PatientMailOptions(RoutesSection):
    """The patient's mailbox (Mon espace santé): never forced against the sender's N."""

    no_reply: bool = Field(
        default=False, description="X-MSS-MES: FIN, the patient cannot answer the mail"
    )


class AddressOptions(RoutesSection):
    """A fixed professional or organisation box (BAL applicative, archive, secretariat)."""

    address: Annotated[str, BeforeValidator(str), Field(min_length=1)]
    always: bool = False

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _mssante_address(value)


def _target_item(value: Any) -> Any:
    """`- dmp` and `- dmp: {masque_ps: true}` both name one destination."""
    if isinstance(value, str):
        if value not in DESTINATION_NAMES:
            raise ValueError("a destination among " + ", ".join(DESTINATION_NAMES))
        return {value: {}}
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


class Target(RoutesSection):
    """One item of `to:`, exactly one destination with its options."""

    dmp: DmpOptions | None = None
    mss_prescriber: ProMailOptions | None = None
    mss_copies: ProMailOptions | None = None
    mss_patient: PatientMailOptions | None = None
    mss_address: AddressOptions | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        named = [n for n in DESTINATION_NAMES if getattr(self, n) is not None]
        if len(named) != 1:
            raise ValueError(
                "exactly one destination per item, among " + ", ".join(DESTINATION_NAMES)
            )
        return self

    @property
    def name(self) -> str:
        return next(n for n in DESTINATION_NAMES if getattr(self, n) is not None)

    @property
    def options(self) -> DmpOptions | ProMailOptions | PatientMailOptions | AddressOptions:
        return getattr(self, self.name)  # type: ignore[no-any-return]

    @property
    def always(self) -> bool:
        return bool(getattr(self.options, "always", False))

    @property
    def identity(self) -> str:
        """What two items must not share: the destination, or the fixed address."""
        if self.mss_address is not None:
            return f"mss_address {self.mss_address.address.lower()}"
        return self.name


TargetItem = Annotated[Target, BeforeValidator(_target_item)]


def _hold_item(value: Any) -> Any:
    """`hold: announcement` is short for `hold: {kind: announcement}`."""
    return {"kind": value} if isinstance(value, str) else value


class HoldRule(RoutesSection):
    """What waits for a release.

    announcement: the DMP copy goes at once but invisible to the patient (or waits, with
    `dmp: held`) and the patient's mail waits, until the patient has been informed.
    retain: nothing leaves until released. An operator can always release; `released_by`
    adds HL7 release triggers; for announcement, a sender update (MODIF_CONF_CODE=Y with
    INVISIBLE_PATIENT=N) releases too unless `released_by_sender: false`.
    """

    kind: Literal["announcement", "retain"]
    dmp: Literal["invisible", "held"] | None = None
    released_by: Annotated[list[NonEmptyText], BeforeValidator(_as_list)] = []
    released_by_sender: bool | None = None
    reason: NonEmptyText | None = None

    _check_unique = field_validator("released_by")(_no_duplicates)

    @model_validator(mode="after")
    def _kind_options(self) -> HoldRule:
        if self.kind == "retain" and self.dmp is not None:
            raise ValueError("dmp only on announcement holds (retain holds everything)")
        if self.kind == "retain" and self.released_by_sender:
            raise ValueError(
                "released_by_sender only on announcement holds (a retained document is "
                "released by an operator or a release trigger)"
            )
        return self

    @property
    def hold_kind(self) -> HoldKind:
        return HoldKind(self.kind)

    @property
    def dmp_held(self) -> bool:
        return self.kind == "retain" or self.dmp == "held"

    @property
    def sender_releases(self) -> bool:
        if self.kind == "retain":
            return False
        return self.released_by_sender is not False

    @property
    def default_reason(self) -> str:
        if self.reason:
            return self.reason
        if self.kind == "announcement":
            return "announcement: patient not yet informed"
        return "retain: held until released"


class Acks(RoutesSection):
    """ACK_RECEPTION (DMP and MSSanté delivery reports) and ACK_LECTURE_MSS (read reports)
    when the sender did not say."""

    reception: bool | None = None
    read: bool | None = None


def _text_with_words(value: str) -> str:
    if not value.strip():
        raise ValueError("a text, or no key at all for the default")
    return value


MailText = Annotated[str, AfterValidator(_text_with_words)]


class MailBodies(RoutesSection):
    """Mail body text when the sender sent no CORPSMAIL_PS / CORPSMAIL_PATIENT."""

    ps: MailText | None = None
    patient: MailText | None = None


class MailBodiesByAction(RoutesSection):
    initial: MailBodies = MailBodies()
    replacement: MailBodies = MailBodies()
    deletion: MailBodies = MailBodies()

    def for_action(self, action: Action) -> MailBodies:
        return getattr(self, action.value)  # type: ignore[no-any-return]


DEFAULT_MAIL_BODIES = MailBodiesByAction(
    replacement=MailBodies(
        ps="Ce document remplace la version que vous avez reçue précédemment.",
        patient="Ce document remplace la version que vous avez reçue précédemment.",
    ),
    deletion=MailBodies(
        ps="Le document que vous avez reçu précédemment a été supprimé par son auteur : "
        "merci de ne plus en tenir compte.",
        patient="Le document que vous avez reçu précédemment a été supprimé par son auteur : "
        "merci de ne plus en tenir compte.",
    ),
)


class Defaults(RoutesSection):
    """Rules that apply to every document, whichever route matched."""

    dmp_always_for: Annotated[list[DocumentKind], BeforeValidator(_as_list)] = Field(
        default=[DocumentKind.CR_BIO, DocumentKind.CR_IMG],
        description="document kinds fed to the DMP systematically (Ségur)",
    )
    restricted_confidentiality: Literal["hold", "send"] = Field(
        default="hold",
        description="R/V documents the sender did not itself send to the DMP: hold for review",
    )
    replacement_to_earlier_recipients: bool = Field(
        default=True, description="a corrected version also goes where earlier versions went"
    )
    acks: Acks = Acks(reception=False, read=False)
    mail_bodies: MailBodiesByAction = DEFAULT_MAIL_BODIES

    _check_unique = field_validator("dmp_always_for")(_no_duplicates)

    @field_validator("mail_bodies")
    @classmethod
    def _bodies_for_updates(cls, bodies: MailBodiesByAction) -> MailBodiesByAction:
        # The volet: without CORPSMAIL_*, the GESTIONNAIRE fills a default body for a
        # replacement or a deletion, so a file that leaves one out keeps the built-in one.
        merged = {}
        for action in (Action.REPLACEMENT, Action.DELETION):
            given = bodies.for_action(action)
            default = DEFAULT_MAIL_BODIES.for_action(action)
            merged[action.value] = MailBodies(
                ps=given.ps if given.ps is not None else default.ps,
                patient=given.patient if given.patient is not None else default.patient,
            )
        return MailBodiesByAction(initial=bodies.initial, **merged)

    @field_validator("acks")
    @classmethod
    def _acks_complete(cls, acks: Acks) -> Acks:
        return Acks(
            reception=bool(acks.reception) if acks.reception is not None else False,
            read=bool(acks.read) if acks.read is not None else False,
        )


class Route(RoutesSection):
    """One route: `from` + `when` select documents, `to` and `hold` say what happens."""

    name: NonEmptyText
    description: str = ""
    source_match: SourceMatch = Field(default=SourceMatch(), alias="from")
    when: Conditions = Conditions()
    to: list[TargetItem]
    hold: Annotated[HoldRule | None, BeforeValidator(_hold_item)] = None
    acks: Acks = Acks()
    mail_bodies: MailBodiesByAction = MailBodiesByAction()

    _line: int | None = PrivateAttr(default=None)

    @field_validator("to")
    @classmethod
    def _consistent_destinations(cls, targets: list[Target]) -> list[Target]:
        seen: set[str] = set()
        for t in targets:
            if t.identity in seen:
                raise ValueError(f"each destination once ({t.identity} is listed twice)")
            seen.add(t.identity)
        dmp = next((t.dmp for t in targets if t.dmp is not None), None)
        names = {t.name for t in targets}
        if dmp is not None and dmp.invisible_patient and "mss_patient" in names:
            raise ValueError(
                "no mss_patient when dmp has invisible_patient: true, as a document hidden "
                "from the patient is never mailed to them (hold: announcement sends it "
                "after the announcement)"
            )
        if dmp is not None and dmp.masque_ps and names & set(PRO_MAIL_NAMES):
            pro = ", ".join(n for n in PRO_MAIL_NAMES if n in names)
            raise ValueError(
                f"no {pro} when dmp has masque_ps: true, as a document masked to "
                "professionals is not exchanged between professionals by MSSanté"
            )
        return targets

    @field_validator("hold")
    @classmethod
    def _hold_fits_destinations(
        cls, hold: HoldRule | None, info: ValidationInfo
    ) -> HoldRule | None:
        targets: list[Target] = info.data.get("to") or []
        dmp = next((t.dmp for t in targets if t.dmp is not None), None)
        if (
            hold is not None
            and hold.kind == "announcement"
            and dmp is not None
            and dmp.invisible_patient is not None
        ):
            raise ValueError(
                "no dmp invisible_patient with an announcement hold, which makes the DMP "
                "copy invisible to the patient until release and visible after"
            )
        return hold

    @property
    def line(self) -> int | None:
        """The line of `- name:` in the routes file, for explaining a decision."""
        return self._line

    def at_line(self, line: int | None) -> Route:
        self._line = line
        return self

    @property
    def is_catch_all(self) -> bool:
        return self.source_match == SourceMatch() and self.when.is_empty

    def target(self, name: str) -> Target | None:
        return next((t for t in self.to if t.name == name), None)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """`OBX-5.1` parsed once: segment, field, component, subcomponent (1-based)."""

    segment: str
    field: int
    component: int = 1
    subcomponent: int | None = None

    @classmethod
    def parse(cls, path: str) -> FieldRef:
        name, _, position = path.partition("-")
        parts = [int(p) for p in position.split(".")]
        return cls(
            name,
            parts[0],
            parts[1] if len(parts) > 1 else 1,
            parts[2] if len(parts) > 2 else None,
        )


class DocumentKey(RoutesSection):
    """Where a release message names the document(s) whose hold it releases."""

    field: FieldPath
    kind: Literal[
        "filler_order_number",
        "placer_order_number",
        "accession_number",
        "document_id",
    ]


class ReleaseTrigger(RoutesSection):
    """An HL7 message that releases a hold, e.g. the RIS telling that the announcement
    consultation took place.

    `where` maps field paths (`OBX-3.1`) to the value (or values) they must have; the
    conditions on one segment name must all hold on the same occurrence of that segment,
    so `{OBX-3.1: ANNONCE, OBX-5.1: Y}` means one OBX saying both.
    """

    name: NonEmptyText
    message: Annotated[list[MessageType], BeforeValidator(_as_list)] = Field(min_length=1)
    source: Annotated[list[SourceName], BeforeValidator(_as_list)] = []
    where: dict[FieldPath, Annotated[list[str], BeforeValidator(_as_list)]] = {}
    document_key: DocumentKey
    releases: Literal["announcement", "retain"] = "announcement"

    _check_unique = field_validator("message", "source")(_no_duplicates)

    _conditions: tuple[tuple[str, tuple[tuple[FieldRef, frozenset[str]], ...]], ...] = PrivateAttr(
        default=()
    )
    _key: FieldRef | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        by_segment: dict[str, list[tuple[FieldRef, frozenset[str]]]] = {}
        for path, values in self.where.items():
            ref = FieldRef.parse(path)
            wanted = frozenset(v.strip().upper() for v in values)
            by_segment.setdefault(ref.segment, []).append((ref, wanted))
        self._conditions = tuple((name, tuple(conds)) for name, conds in by_segment.items())
        self._key = FieldRef.parse(self.document_key.field)

    @property
    def conditions(self) -> tuple[tuple[str, tuple[tuple[FieldRef, frozenset[str]], ...]], ...]:
        """Per segment name: the (field, accepted values upper-cased) one occurrence meets."""
        return self._conditions

    @property
    def key_ref(self) -> FieldRef:
        return self._key or FieldRef.parse(self.document_key.field)

    @field_validator("where", mode="before")
    @classmethod
    def _values_as_text(cls, where: Any) -> Any:
        # HL7 values are text: `OBX-5.1: 1` means "1". A YAML boolean (yes/no/true) is
        # almost always a surprise of YAML, not an HL7 value: ask for quotes.
        if not isinstance(where, dict):
            return where
        out: dict[Any, Any] = {}
        for key, value in where.items():
            values = _as_list(value)
            if isinstance(values, list):
                if any(isinstance(x, bool) for x in values):
                    raise ValueError(
                        f"HL7 values as text in {key}: quote YAML words like yes, no, true "
                        "(e.g. 'Y')"
                    )
                values = [str(x) if isinstance(x, int | float) else x for x in values]
            out[key] = values
        return out


class Routes(RoutesSection):
    """The whole `config/routes.yaml`."""

    defaults: Defaults = Defaults()
    routes: list[Route]
    release_triggers: list[ReleaseTrigger] = []

    _plan: tuple[RoutePlan, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Routes:
        if info.context and info.context.get(DEFER_CROSS_CHECKS):
            return self  # the loader reports them, each at its own line
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{dotted(k)}: {msg}" for k, msg in problems))
        return self

    def problems(self, known_sources: Iterable[str] | None = None) -> list[tuple[KeyPath, str]]:
        """What is wrong across sections, as (key path in the YAML, expected ...)."""
        out: list[tuple[KeyPath, str]] = []
        names: dict[str, int] = {}
        for i, route in enumerate(self.routes):
            if route.name in names:
                out.append(
                    (
                        ("routes", i, "name"),
                        f"expected a unique route name ({route.name!r} is also routes"
                        f"[{names[route.name]}])",
                    )
                )
            names.setdefault(route.name, i)
        catch_all = next((i for i, r in enumerate(self.routes) if r.is_catch_all), None)
        if catch_all is not None:
            for j in range(catch_all + 1, len(self.routes)):
                out.append(
                    (
                        ("routes", j),
                        f"expected a reachable route: routes[{catch_all}] "
                        f"({self.routes[catch_all].name!r}) has neither from nor when and "
                        "takes every document first",
                    )
                )
        triggers: dict[str, ReleaseTrigger] = {}
        for i, trigger in enumerate(self.release_triggers):
            if trigger.name in triggers:
                out.append(
                    (
                        ("release_triggers", i, "name"),
                        f"expected a unique release trigger name ({trigger.name!r} twice)",
                    )
                )
            triggers.setdefault(trigger.name, trigger)
        for i, route in enumerate(self.routes):
            if route.hold is None:
                continue
            for j, name in enumerate(route.hold.released_by):
                trigger_ = triggers.get(name)
                if trigger_ is None:
                    known = ", ".join(sorted(triggers)) or "none is defined"
                    out.append(
                        (
                            ("routes", i, "hold", "released_by", j),
                            f"expected the name of a release trigger ({known}) (got {name!r})",
                        )
                    )
                elif trigger_.releases != route.hold.kind:
                    out.append(
                        (
                            ("routes", i, "hold", "released_by", j),
                            f"expected a trigger releasing {route.hold.kind} holds "
                            f"({name!r} releases {trigger_.releases} holds)",
                        )
                    )
        if known_sources is not None:
            known = set(known_sources)
            expected_source = f"expected a source declared in pfi.yaml ({', '.join(sorted(known))})"
            for i, route in enumerate(self.routes):
                for j, src in enumerate(route.source_match.source):
                    if src not in known:
                        path: KeyPath = ("routes", i, "from", "source")
                        if len(route.source_match.source) > 1:
                            path = (*path, j)
                        out.append((path, f"{expected_source} (got {src!r})"))
            for i, trigger in enumerate(self.release_triggers):
                for j, src in enumerate(trigger.source):
                    if src not in known:
                        path = ("release_triggers", i, "source")
                        if len(trigger.source) > 1:
                            path = (*path, j)
                        out.append((path, f"{expected_source} (got {src!r})"))
        return out

    def plan(self) -> tuple[RoutePlan, ...]:
        """The routes compiled for matching, built on first use and kept."""
        if self._plan is None:
            from pfi.routes.plan import compile_routes

            self._plan = compile_routes(self)
        return self._plan

    def locate(self, lines: list[int | None]) -> None:
        """Record where each route starts in its file (for explanations)."""
        for route, line in zip(self.routes, lines, strict=True):
            route.at_line(line)
        self._plan = None

    def trigger(self, name: str) -> ReleaseTrigger | None:
        return next((t for t in self.release_triggers if t.name == name), None)
