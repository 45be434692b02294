"""Release triggers: an incoming HL7 message (the RIS recording the announcement
consultation...) releases the holds of the document it names (`release_triggers:` in
routes.yaml).

A stage of its own on INBOUND, present only when the routes file declares triggers: the
identity and documents stages stay unaware of holds, and an engine without triggers
pays nothing per message. A trigger that matches but names no held document is in the
audit trail and the log: a release the RIS sent and PFI ignored would keep a patient's
report held for ever.
"""

from __future__ import annotations

import dataclasses
import logging

from pfi.bus.stage import Record, StageContext
from pfi.bus.topics import INBOUND
from pfi.console.audit import record_audit
from pfi.routes.release import match_release
from pfi.routes.router import Router
from pfi.transforms.hl7 import parse_message

log = logging.getLogger(__name__)


class HoldReleaseStage:
    name = "hold-release"
    input = INBOUND

    def __init__(self, router: Router) -> None:
        self.router = router
        self.message_types = frozenset(
            t for trigger in router.routes.release_triggers for t in trigger.message
        )

    def handle(self, record: Record, ctx: StageContext) -> None:
        value = record.value
        message_type: str = value["message_type"]
        if (
            message_type not in self.message_types
            and message_type.split("^", 1)[0] not in self.message_types
        ):
            return
        msg = parse_message(value["raw"], value["charset"])
        source: str = value["source"]
        for signal in match_release(self.router.routes, msg, source=source):
            actor = f"pfi:hl7:{signal.trigger}"[:200]
            what = (
                f"release trigger {signal.trigger!r}: {message_type} {value['control_id']} "
                f"from {source}"
            )
            details = {
                "trigger": signal.trigger,
                "releases": signal.releases.value,
                "key_kind": signal.key_kind,
                "key_value": signal.key_value,
                "control_id": value["control_id"],
                "source": source,
            }
            if signal.problem:
                log.warning("%s: %s", what, signal.problem)
                record_audit(
                    ctx.session,
                    actor,
                    "hold.release_trigger",
                    "message",
                    value["message_id"],
                    reason=signal.problem,
                    details=details,
                )
                continue
            released, changes = self.router.release_by_signal(
                ctx.session,
                signal,
                actor=actor,
                reason=f"{what} ({signal.key_kind} {signal.key_value})",
            )
            ctx.outgoing.extend(
                dataclasses.replace(out, correlation_id=record.correlation_id)
                for out in changes.outgoing
            )
            if not released:
                problem = (
                    f"no document with {signal.key_kind} {signal.key_value!r} has an open "
                    f"{signal.releases.value} hold released by this trigger"
                )
                log.warning("%s: %s", what, problem)
                record_audit(
                    ctx.session,
                    actor,
                    "hold.release_trigger",
                    "message",
                    value["message_id"],
                    reason=problem,
                    details=details,
                )
