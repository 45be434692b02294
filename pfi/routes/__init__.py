"""Routing: which document goes where, with which visibility, and what waits (holds).

`load_routes` reads `config/routes.yaml` once; `decide` turns one document event
(`RoutingInput`) into a `RoutingDecision` (destinations to send now, held or refused,
DMP masking, acknowledgements, mail bodies, and the trace of the rules that decided).
`match_release` recognises the HL7 messages that release holds.
"""

from pfi.routes.decision import decide, reevaluate
from pfi.routes.inputs import (
    DestinationKind,
    PatientFacts,
    Recipient,
    RecipientRole,
    RoutingInput,
    destination_key,
)
from pfi.routes.loader import BUILTIN_ROUTES_PATH, DEFAULT_ROUTES_PATH, load_routes, routes_path
from pfi.routes.model import Action, DocumentKind, HoldKind, HoldRule, Route, Routes
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
from pfi.routes.release import ReleaseSignal, match_release

__all__ = [
    "BUILTIN_ROUTES_PATH",
    "DEFAULT_ROUTES_PATH",
    "AckRequests",
    "Action",
    "Destination",
    "DestinationKind",
    "DocumentKind",
    "Hold",
    "HoldKind",
    "HoldRule",
    "MailContent",
    "Masking",
    "MaskingFlag",
    "Operation",
    "Origin",
    "Outcome",
    "PatientFacts",
    "Recipient",
    "RecipientRole",
    "ReleaseSignal",
    "Route",
    "Routes",
    "RoutingDecision",
    "RoutingInput",
    "TraceStep",
    "decide",
    "destination_key",
    "load_routes",
    "match_release",
    "reevaluate",
    "routes_path",
]
