"""The routing stage: each stored document version (DOCUMENTS) becomes ledger rows —
sent now (a delivery request on deliver.dmp / deliver.mss), held with a reason, or
refused with a reason — per `config/routes.yaml` and the built-in rules.

Heavy work (building and validating the CDA) happened upstream; routing is a handful of
reads and inserts, so it keeps SQLite's single write lock briefly.
"""

from __future__ import annotations

import dataclasses

from pfi.bus.stage import Record, StageContext
from pfi.bus.topics import DOCUMENTS
from pfi.observability.metrics import record_delivery
from pfi.routes.router import DocumentEvent, Router


class RoutingStage:
    name = "routing"
    input = DOCUMENTS

    def __init__(self, router: Router) -> None:
        self.router = router

    def handle(self, record: Record, ctx: StageContext) -> None:
        value = record.value
        changes = self.router.route_version(ctx.session, DocumentEvent.from_record(value))
        if changes is None:
            return
        ctx.outgoing.extend(
            dataclasses.replace(out, correlation_id=record.correlation_id)
            for out in changes.outgoing
        )
        for destination in changes.held_destinations:
            record_delivery(destination, value["document_type"], "held")
