"""Which delivery stage consumes which topic, from the senders the engine registered.

Each ledger destination has its topic (routing publishes there: `pfi.routes.ledger.
topic_for`). A topic gets one `DeliveryStage` when at least one registered sender serves
one of its destinations; a topic no sender serves is not consumed (its requests wait in
the topic and the ledger rows stay pending until a sender is configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pfi.bus.topics import DELIVER_DMP, DELIVER_MSS, Topic
from pfi.config.delivery import DeliverySettings
from pfi.delivery.sender import DeliverySender
from pfi.delivery.stage import DeliveryStage, OutcomeHook
from pfi.store.db import Database

#: The topic of each ledger destination (as routing publishes them).
TOPIC_OF_DESTINATION: dict[str, Topic] = {
    "dmp": DELIVER_DMP,
    "mss_pro": DELIVER_MSS,
    "mss_patient": DELIVER_MSS,
}


def delivery_stages(
    senders: Iterable[DeliverySender],
    db: Database,
    settings: DeliverySettings,
    *,
    on_outcome: Sequence[OutcomeHook] = (),
) -> list[DeliveryStage]:
    """One stage per topic that some sender serves, in topic order (dmp, then mss)."""
    by_topic: dict[str, tuple[Topic, list[DeliverySender]]] = {}
    for sender in senders:
        topics = {TOPIC_OF_DESTINATION.get(d) for d in sender.destinations}
        if None in topics:
            unknown = sorted(d for d in sender.destinations if d not in TOPIC_OF_DESTINATION)
            raise ValueError(
                f"{type(sender).__name__} serves unknown destination(s) {unknown}; "
                f"known: {sorted(TOPIC_OF_DESTINATION)}"
            )
        for topic in topics:
            assert topic is not None
            by_topic.setdefault(topic.name, (topic, []))[1].append(sender)
    order = [DELIVER_DMP.name, DELIVER_MSS.name]
    return [
        DeliveryStage(topic, found, db, settings, on_outcome=on_outcome)
        for name in sorted(by_topic, key=lambda n: order.index(n) if n in order else 99)
        for topic, found in [by_topic[name]]
    ]
