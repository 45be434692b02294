"""`RoutingInput` as JSON, to keep with the decision (`routings.input`).

A held document is decided again days later, when its patient's identity is qualified
or an operator releases it. Deciding from the stored facts, with only the changed fact
replaced, is what makes the new decision explainable ("same message, same route, the
INS is now qualified") and immune to what changed meanwhile elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pfi.routes.inputs import PatientFacts, Recipient, RoutingInput, UnresolvedRecipient


def input_to_json(inp: RoutingInput) -> dict[str, Any]:
    return {
        "source": inp.source,
        "document_kind": inp.document_kind.value,
        "document_code": inp.document_code,
        "action": inp.action.value,
        "sender_metadata": dict(inp.sender_metadata) if inp.sender_metadata is not None else None,
        "confidentiality": inp.confidentiality,
        "patient": {
            "ins_qualified": inp.patient.ins_qualified,
            "ins": inp.patient.ins,
            "dmp_status": inp.patient.dmp_status,
            "dmp_opposition": inp.patient.dmp_opposition,
        },
        "recipients": [
            {"address": r.address, "role": r.role.value, "name": r.name} for r in inp.recipients
        ],
        "patient_address": inp.patient_address,
        "patient_may_not_reply": inp.patient_may_not_reply,
        "delivered_before": sorted(inp.delivered_before),
        "released_holds": sorted(h.value for h in inp.released_holds),
        "operator_masking": dict(inp.operator_masking),
        "unresolved_recipients": [
            {"role": u.role.value, "id": u.id, "reason": u.reason, "name": u.name}
            for u in inp.unresolved_recipients
        ],
        "recipient_notes": list(inp.recipient_notes),
    }


def input_from_json(data: Mapping[str, Any]) -> RoutingInput:
    patient = data["patient"]
    return RoutingInput(
        source=data["source"],
        document_kind=data["document_kind"],
        document_code=data.get("document_code", ""),
        action=data["action"],
        sender_metadata=data.get("sender_metadata"),
        confidentiality=data.get("confidentiality", "N"),
        patient=PatientFacts(
            ins_qualified=patient["ins_qualified"],
            ins=patient.get("ins", ""),
            dmp_status=patient.get("dmp_status", ""),
            dmp_opposition=patient.get("dmp_opposition"),
        ),
        recipients=tuple(
            Recipient(r["address"], r.get("role", "copy"), r.get("name", ""))
            for r in data.get("recipients", [])
        ),
        patient_address=data.get("patient_address", ""),
        patient_may_not_reply=data.get("patient_may_not_reply", False),
        delivered_before=frozenset(data.get("delivered_before", [])),
        released_holds=frozenset(data.get("released_holds", [])),
        operator_masking=data.get("operator_masking", {}),
        unresolved_recipients=tuple(
            UnresolvedRecipient(u["role"], u["id"], u.get("reason", ""), u.get("name", ""))
            for u in data.get("unresolved_recipients", [])
        ),
        recipient_notes=tuple(data.get("recipient_notes", [])),
    )
