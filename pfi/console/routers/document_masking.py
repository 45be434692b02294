"""`/api/documents/{id}/masking`: an operator masks or unmasks a document.

MASQUE_PS (hidden from professionals), INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX set by an
operator win over the sender's and the routes' (docs/routes.md, precedence rule 5). The
change applies to the document's latest version: a DMP copy that already left gets a
metadata update (ITI-57), mails not yet sent follow the new masking (held while masked),
mails already sent cannot be recalled. Audited with the reason, in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import BaseModel, Field, model_validator

from pfi.bus.outbox import add_to_outbox
from pfi.console.audit import record_audit
from pfi.console.deps import AUTH_RESPONSES, DatabaseDep, Operator
from pfi.console.routers.holds import RoutingEffects, outbox_committed, routing_router
from pfi.routes.router import RoutingRefused

router = APIRouter(prefix="/documents", tags=["documents"], responses=AUTH_RESPONSES)

_FLAG_NAMES = {
    "masque_ps": "MASQUE_PS",
    "invisible_patient": "INVISIBLE_PATIENT",
    "invisible_rep_legaux": "INVISIBLE_REP_LEGAUX",
}


class MaskingRequest(BaseModel):
    """The flags to set (true) or lift (false); a flag left out is not changed."""

    masque_ps: bool | None = Field(default=None, description="MASQUE_PS")
    invisible_patient: bool | None = Field(default=None, description="INVISIBLE_PATIENT")
    invisible_rep_legaux: bool | None = Field(
        default=None, description="INVISIBLE_REP_LEGAUX (DMP: INVISIBLE_REPRESENTANTS_LEGAUX)"
    )
    reason: str = Field(min_length=3, max_length=2000, description="why (audited)")

    @model_validator(mode="after")
    def _one_flag_at_least(self) -> MaskingRequest:
        if not self.flags:
            raise ValueError(
                "set at least one of masque_ps, invisible_patient, invisible_rep_legaux"
            )
        return self

    @property
    def flags(self) -> dict[str, bool]:
        return {
            hl7: value
            for attr, hl7 in _FLAG_NAMES.items()
            if (value := getattr(self, attr)) is not None
        }


class MaskingResult(BaseModel):
    document_id: int
    version: int
    masking: dict[str, Any]
    """The masking now decided: each flag with its value and who set it."""
    confidentiality_codes: list[list[str]]
    """XDS confidentialityCode values (code, code system) the DMP copy carries."""
    effects: RoutingEffects


@router.post(
    "/{document_id}/masking",
    response_model=MaskingResult,
    summary="Mask or unmask a document (operator), with a reason",
    responses={
        404: {"description": "no such document"},
        409: {"description": "not routed yet, or withdrawn"},
    },
)
def change_masking(
    principal: Operator,
    db: DatabaseDep,
    request: Request,
    document_id: Annotated[int, Path(ge=1)],
    body: Annotated[MaskingRequest, Body()],
) -> MaskingResult:
    routing = routing_router(request)
    try:
        with db.transaction() as session:
            change = routing.change_masking(
                session, document_id, body.flags, actor=principal, reason=body.reason
            )
            masking = change.decision.masking
            record_audit(
                session,
                principal,
                "document.masking",
                "document",
                document_id,
                reason=body.reason,
                details={
                    "flags": body.flags,
                    "version": change.version,
                    "before": change.before,
                    "after": masking.to_json(),
                    "masking_update_deliveries": change.changes.masking_updates,
                },
            )
            add_to_outbox(session, change.changes.outgoing)
    except RoutingRefused as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
    outbox_committed(request)
    return MaskingResult(
        document_id=document_id,
        version=change.version,
        masking=masking.to_json(),
        confidentiality_codes=[list(c) for c in masking.confidentiality_codes()],
        effects=RoutingEffects.of(change.changes),
    )
