"""Every metric PFI exports, declared once.

The engine's metric objects, the store-backed gauges, `docs/metrics.md`, and the checks
that dashboards and alert rules only query metrics that exist are all built from this
table, so a renamed metric cannot leave a dashboard silently empty (an empty panel is
how a feed drop-off goes unnoticed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["counter", "gauge", "histogram", "info"]
#: Who sets the value: the engine's code as things happen, or the store snapshot
#: (`register_store_gauges`) because the truth is in the database.
MetricOrigin = Literal["engine", "store"]

#: Stage work: parsing an HL7 message to publishing a CDA is milliseconds; a PDF
#: rendering or a DMP SOAP call is seconds.
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: ORU received to destination ACK: seconds when all goes well, hours with retries.
END_TO_END_BUCKETS = (
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
)
#: HL7 messages: an ADT is a few hundred bytes, an ORU with an embedded PDF megabytes.
MESSAGE_SIZE_BUCKETS = (256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0)


@dataclass(frozen=True)
class MetricSpec:
    """One metric family as Prometheus sees it; counters are named with their `_total`."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    origin: MetricOrigin = "engine"
    buckets: tuple[float, ...] = ()
    #: How a gauge's values from several processes combine (prometheus-client
    #: multiprocess mode): the latest live value unless said otherwise.
    multiprocess_mode: str = "livemostrecent"

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The series names a PromQL query can use for this family."""
        if self.kind == "counter":
            base = self.name.removesuffix("_total")
            return (self.name, f"{base}_created")
        if self.kind == "histogram":
            return tuple(f"{self.name}{s}" for s in ("_bucket", "_sum", "_count", "_created"))
        return (self.name,)


def _spec(
    name: str,
    kind: MetricKind,
    help_text: str,
    labels: tuple[str, ...] = (),
    origin: MetricOrigin = "engine",
    buckets: tuple[float, ...] = (),
    multiprocess_mode: str = "livemostrecent",
) -> MetricSpec:
    return MetricSpec(name, kind, help_text, labels, origin, buckets, multiprocess_mode)


CATALOGUE: tuple[MetricSpec, ...] = (
    # --- intake (MLLP) ---
    _spec(
        "pfi_messages_received_total",
        "counter",
        "HL7 messages received over MLLP, counted once framed and their MSH read, "
        "before the acknowledgement decision.",
        ("source", "message_type"),
    ),
    _spec(
        "pfi_messages_acknowledged_total",
        "counter",
        "Acknowledgements sent back to the sender, by MSA-1 code "
        "(AA/CA accepted; AE/AR/CE/CR are NACKs).",
        ("source", "message_type", "ack_code"),
    ),
    _spec(
        "pfi_last_message_received_timestamp_seconds",
        "gauge",
        "Unix time of the last message received from this source with this message type; "
        "the feed-silence alerts compare it with the working hours.",
        ("source", "message_type"),
        multiprocess_mode="max",  # a restarted process must not make the feed look older
    ),
    _spec(
        "pfi_received_message_size_bytes",
        "histogram",
        "Size of the HL7 messages received (MLLP frame payload).",
        ("source",),
        buckets=MESSAGE_SIZE_BUCKETS,
    ),
    # --- stages and bus ---
    _spec(
        "pfi_stage_processing_duration_seconds",
        "histogram",
        "Time a stage spends on one record, from consuming it to committing its effects.",
        ("stage",),
        buckets=STAGE_BUCKETS,
    ),
    _spec(
        "pfi_consumer_lag_records",
        "gauge",
        "Records on the stage's input topic not yet committed by its consumer group "
        "(summed over partitions).",
        ("stage",),
    ),
    _spec(
        "pfi_outbox_unpublished_records",
        "gauge",
        "Outbox records written by a stage but not yet published to the broker.",
        origin="store",
    ),
    _spec(
        "pfi_outbox_oldest_unpublished_age_seconds",
        "gauge",
        "Age of the oldest unpublished outbox record (0 when the outbox is empty).",
        origin="store",
    ),
    _spec(
        "pfi_dead_letters",
        "gauge",
        "Records in the dead-letter queue waiting for a replay or a decision, "
        "by the stage that gave up on them.",
        ("stage",),
        origin="store",
    ),
    _spec(
        "pfi_outbound_hl7_messages",
        "gauge",
        "HL7 replies to the hospital not sent yet, by kind (zam_z01, zam_z02, zam_z03, "
        "masking_oru) and status (pending, failed: being retried, dead: attempts exhausted, "
        "waiting for `pfi outbound retry`).",
        ("kind", "status"),
        origin="store",
    ),
    # --- documents ---
    _spec(
        "pfi_documents_built_total",
        "counter",
        "CDA documents built, by CI-SIS document type and version kind "
        "(initial, replacement, deletion).",
        ("document_type", "version_kind"),
    ),
    _spec(
        "pfi_documents_invalid_total",
        "counter",
        "Documents that failed validation and were not delivered, by failed check "
        "(xsd, schematron, pdf, other).",
        ("document_type", "check"),
    ),
    _spec(
        "pfi_unmapped_loinc_occurrences_total",
        "counter",
        "Lab results whose local code had no LOINC mapping, by lab source.",
        ("lab",),
    ),
    _spec(
        "pfi_unmapped_loinc_codes",
        "gauge",
        "Distinct local lab codes without a LOINC mapping, by lab source.",
        ("lab",),
        origin="store",
    ),
    # --- delivery ---
    _spec(
        "pfi_deliveries_total",
        "counter",
        "Delivery attempts by destination (dmp, mss_pro, mss_patient...), document type "
        "and outcome (delivered, refused, failed_transient, dead_letter, held).",
        ("destination", "document_type", "outcome"),
    ),
    _spec(
        "pfi_mss_recipients_total",
        "counter",
        "Professionals a built report names by RPPS, by role (prescriber, copy) and "
        "outcome: resolved to an MSSanté address from the annuaire, or unresolved "
        "(recorded as a refused delivery).",
        ("role", "outcome"),
    ),
    _spec(
        "pfi_mss_reports_total",
        "counter",
        "Reports read back from the MSSanté application mailbox, by kind (dsn, mdn, "
        "error_mail, opposition, other) and outcome (refused, delivered, acknowledged, "
        "unchanged, unmatched, ignored).",
        ("kind", "outcome"),
    ),
    _spec(
        "pfi_outbound_hl7_messages_total",
        "counter",
        "HL7 replies sent to the hospital over MLLP, by kind (zam_z01, zam_z02, zam_z03, "
        "masking_oru) and outcome (sent: the peer answered AA/CA; failed: NACK or no "
        "answer, will be retried; dead: attempts exhausted).",
        ("kind", "outcome"),
    ),
    _spec(
        "pfi_end_to_end_duration_seconds",
        "histogram",
        "Time from the HL7 message received to the destination's acknowledgement, "
        "retries included.",
        ("destination",),
        buckets=END_TO_END_BUCKETS,
    ),
    _spec(
        "pfi_delivery_breaker_open",
        "gauge",
        "1 while the circuit breaker of a destination is open (calls stopped for its "
        "cool-down after consecutive transient failures), else 0.",
        ("destination",),
    ),
    _spec(
        "pfi_holds_open",
        "gauge",
        "Document deliveries currently held, by hold reason.",
        ("reason",),
        origin="store",
    ),
    _spec(
        "pfi_hold_oldest_age_seconds",
        "gauge",
        "Age of the oldest open hold, by hold reason.",
        ("reason",),
        origin="store",
    ),
    # --- inbound MSSanté ---
    _spec(
        "pfi_inbound_mails_total",
        "counter",
        "Mails fetched from the MSSanté application mailbox and kept (a mail fetched "
        "again is not counted again).",
    ),
    _spec(
        "pfi_inbound_documents_total",
        "counter",
        "Documents received by MSSanté by outcome: integrated (the DPI answered AA), ko "
        "(unreadable, no patient found, or the DPI refused), rejected (by an operator), "
        "retry (the DPI could not be reached; sent again at the next poll).",
        ("outcome",),
    ),
    _spec(
        "pfi_inbound_ko_documents",
        "gauge",
        "Documents received by MSSanté waiting in the KO worklist for an operator.",
        origin="store",
    ),
    _spec(
        "pfi_inbound_pending_documents",
        "gauge",
        "Documents received by MSSanté not yet acknowledged by the DPI (to send, or being sent).",
        origin="store",
    ),
    # --- identity ---
    _spec(
        "pfi_patients_qualified_ins_ratio",
        "gauge",
        "Share of known patients whose INS is qualified (PID-32 VALI), from 0 to 1.",
        origin="store",
    ),
    # --- health ---
    _spec(
        "pfi_client_certificate_expiry_timestamp_seconds",
        "gauge",
        "Unix time at which a client certificate (DMP, MSSanté, MLLP TLS) expires, "
        "by its configured name.",
        ("certificate",),
    ),
    _spec(
        "pfi_broker_up",
        "gauge",
        "1 when the engine's last check reached the Kafka broker, else 0.",
    ),
    _spec(
        "pfi_database_up",
        "gauge",
        "1 when the engine's last check reached the SQL store, else 0.",
    ),
    _spec(
        "pfi_build_info",
        "info",
        "Version of the running engine; value always 1.",
        ("version", "python_version"),
    ),
    _spec(
        "pfi_store_gauges_refresh_timestamp_seconds",
        "gauge",
        "Unix time of the last successful refresh of the store-backed gauges.",
        origin="store",
    ),
    _spec(
        "pfi_store_gauges_refresh_errors_total",
        "counter",
        "Failed refreshes of the store-backed gauges (the database did not answer).",
        origin="store",
    ),
)

CATALOGUE_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}


def spec(name: str) -> MetricSpec:
    """The catalogue entry for `name`; a KeyError names the unknown metric."""
    return CATALOGUE_BY_NAME[name]


def exported_sample_names() -> frozenset[str]:
    """Every series name PFI's own metrics put on `/metrics`."""
    return frozenset(name for s in CATALOGUE for name in s.sample_names)


def render_metrics_table() -> str:
    """The metrics table of docs/metrics.md (kept equal to the catalogue by a test)."""
    lines = [
        "| metric | type | labels | set by | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in CATALOGUE:
        labels = ", ".join(f"`{label}`" for label in s.labels) or "–"
        origin = "store snapshot" if s.origin == "store" else "engine"
        lines.append(f"| `{s.name}` | {s.kind} | {labels} | {origin} | {s.help} |")
    return "\n".join(lines) + "\n"
