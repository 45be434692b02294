"""HL7 messages that release holds (`release_triggers:` in routes.yaml).

A RIS that records the announcement consultation can tell PFI so by a message: which
message type, which field values mean "released", and which field names the document
(order number, accession number, document id). Matching is pure: the routing stage
looks the holds up by the key, records the release (audited) and decides again.

A trigger that matches but cannot name its document is reported, not skipped: a release
the RIS sent and PFI silently ignored would keep a patient's report held for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfi.routes.model import FieldRef, HoldKind, ReleaseTrigger, Routes
from pfi.transforms.hl7 import Hl7Message, Segment


@dataclass(frozen=True, slots=True)
class ReleaseSignal:
    """A message asks to release the `releases` holds of the document(s) it names."""

    trigger: str
    releases: HoldKind
    key_kind: str  # filler_order_number, placer_order_number, accession_number, document_id
    key_value: str
    problem: str = ""  # non-empty: matched, but the document cannot be identified


def _read(ref: FieldRef, seg: Segment) -> str:
    return seg.get(ref.field, ref.component, ref.subcomponent).strip()


def match_release(routes: Routes, msg: Hl7Message, *, source: str) -> tuple[ReleaseSignal, ...]:
    """The release triggers this message fires (usually none, at most a few)."""
    header = msg.header
    signals: list[ReleaseSignal] = []
    for trigger in routes.release_triggers:
        types = trigger.message
        if header.message_type not in types and header.message_code not in types:
            continue
        if trigger.source and source not in trigger.source:
            continue
        matched = _matching_segments(trigger, msg)
        if matched is None:
            continue
        key = trigger.key_ref
        key_segment = matched.get(key.segment) or msg.first(key.segment)
        value = _read(key, key_segment) if key_segment is not None else ""
        problem = ""
        if not value:
            problem = (
                f"release trigger {trigger.name!r} matched but {trigger.document_key.field} "
                "is empty: no document to release"
            )
        signals.append(
            ReleaseSignal(
                trigger=trigger.name,
                releases=HoldKind(trigger.releases),
                key_kind=trigger.document_key.kind,
                key_value=value,
                problem=problem,
            )
        )
    return tuple(signals)


def _matching_segments(trigger: ReleaseTrigger, msg: Hl7Message) -> dict[str, Segment] | None:
    """For each constrained segment name, the first occurrence meeting all its conditions."""
    matched: dict[str, Segment] = {}
    for name, conditions in trigger.conditions:
        found = next(
            (
                seg
                for seg in msg.all(name)
                if all(_read(ref, seg).upper() in values for ref, values in conditions)
            ),
            None,
        )
        if found is None:
            return None
        matched[name] = found
    return matched
