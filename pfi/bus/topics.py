"""The topics between stages, each with its Avro schema.

Topics are named logically in code and in the store ("inbound"); the configured prefix
makes the broker-side name ("pfi.inbound"), so several PFI instances can share a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    schema: str  # file name in pfi/schemas without .avsc
    doc: str

    def full_name(self, prefix: str) -> str:
        return f"{prefix}.{self.name}"


INBOUND = Topic("inbound", "inbound", "HL7 v2 messages ACKed by intake")
DOCUMENTS = Topic("documents", "documents", "document versions stored or withdrawn")
DELIVER_DMP = Topic("deliver.dmp", "delivery", "deliveries to the DMP (XDS.b)")
DELIVER_MSS = Topic("deliver.mss", "delivery", "deliveries by MSSanté mail")
DEADLETTER = Topic("deadletter", "deadletter", "records a stage could not process")

ALL_TOPICS: tuple[Topic, ...] = (INBOUND, DOCUMENTS, DELIVER_DMP, DELIVER_MSS, DEADLETTER)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}


def topic_named(name: str) -> Topic:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(BY_NAME)}") from None
