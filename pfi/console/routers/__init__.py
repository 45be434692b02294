"""One router per concept under /api; each protects its routes with `require(role)`.

Later capabilities add theirs here (holds, deliveries, inbound) and to `API_ROUTERS`.
"""

from pfi.console.routers import (
    audit,
    deliveries,
    document_masking,
    documents,
    holds,
    inbound,
    messages,
    outbound,
    patients,
)

API_ROUTERS = [
    messages.router,
    patients.router,
    documents.router,
    audit.router,
    holds.router,
    document_masking.router,
    inbound.router,
    deliveries.router,
    outbound.router,
]

__all__ = ["API_ROUTERS"]
