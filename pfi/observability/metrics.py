"""The engine's Prometheus metrics and the typed helpers stages call to record them.

Stages never touch prometheus-client objects: they call `record_message_received(...)`,
`record_delivery(...)` and so on, which normalise every label value (see `labels.py`) so
that no patient, message or document id can become a label, and so that a typo in a
stage cannot create a metric the dashboards and alert rules do not know. The metric
names, types, labels and help texts come from `catalogue.CATALOGUE`.

The module-level helpers record into `DEFAULT_METRICS`, registered on `REGISTRY`, which
is what `/metrics` serves (`render_latest()`); tests build their own `EngineMetrics` on
a fresh `CollectorRegistry` to read values without interference.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from pfi import __version__
from pfi.observability.catalogue import MetricSpec, exported_sample_names, spec
from pfi.observability.labels import (
    DELIVERY_OUTCOMES,
    INBOUND_OUTCOMES,
    MSS_RECIPIENT_OUTCOMES,
    MSS_RECIPIENT_ROLES,
    MSS_REPORT_KINDS,
    MSS_REPORT_OUTCOMES,
    OTHER,
    OUTBOUND_HL7_KINDS,
    OUTBOUND_HL7_OUTCOMES,
    VALIDATION_CHECKS,
    VERSION_KINDS,
    ack_code_label,
    certificate_label,
    document_type_label,
    member_label,
    message_type_label,
    snake_label,
    source_label,
)
from pfi.observability.store_gauges import (
    HoldStats,
    StoreGaugeCollector,
    StoreGaugeProvider,
    StoreSnapshot,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DEFAULT_METRICS",
    "OTHER",
    "REGISTRY",
    "EngineMetrics",
    "HoldStats",
    "StoreGaugeCollector",
    "StoreGaugeProvider",
    "StoreSnapshot",
    "exported_metric_names",
    "observe_end_to_end_latency",
    "observe_stage_duration",
    "prime_feed",
    "record_delivery",
    "record_document_built",
    "record_document_invalid",
    "record_inbound_document",
    "record_inbound_mail",
    "record_message_acknowledged",
    "record_message_received",
    "record_mss_recipient",
    "record_mss_report",
    "record_outbound_hl7",
    "record_unmapped_loinc",
    "register_store_gauges",
    "render_latest",
    "set_broker_up",
    "set_certificate_expiry",
    "set_consumer_lag",
    "set_database_up",
    "set_delivery_breaker",
    "time_stage",
]


class EngineMetrics:
    """The metric objects of one engine, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages_received = _counter(registry, "pfi_messages_received_total")
        self.messages_acknowledged = _counter(registry, "pfi_messages_acknowledged_total")
        self.last_message_received = _gauge(registry, "pfi_last_message_received_timestamp_seconds")
        self.received_message_size = _histogram(registry, "pfi_received_message_size_bytes")
        self.stage_duration = _histogram(registry, "pfi_stage_processing_duration_seconds")
        self.consumer_lag = _gauge(registry, "pfi_consumer_lag_records")
        self.documents_built = _counter(registry, "pfi_documents_built_total")
        self.documents_invalid = _counter(registry, "pfi_documents_invalid_total")
        self.unmapped_loinc = _counter(registry, "pfi_unmapped_loinc_occurrences_total")
        self.deliveries = _counter(registry, "pfi_deliveries_total")
        self.mss_recipients = _counter(registry, "pfi_mss_recipients_total")
        self.mss_reports = _counter(registry, "pfi_mss_reports_total")
        self.end_to_end = _histogram(registry, "pfi_end_to_end_duration_seconds")
        self.inbound_mails = _counter(registry, "pfi_inbound_mails_total")
        self.inbound_documents = _counter(registry, "pfi_inbound_documents_total")
        self.outbound_hl7 = _counter(registry, "pfi_outbound_hl7_messages_total")
        self.delivery_breaker = _gauge(registry, "pfi_delivery_breaker_open")
        self.certificate_expiry = _gauge(
            registry, "pfi_client_certificate_expiry_timestamp_seconds"
        )
        self.broker_up = _gauge(registry, "pfi_broker_up")
        self.database_up = _gauge(registry, "pfi_database_up")
        registry.register(build_info_collector())

    # --- intake ---

    def prime_feed(self, source: str, message_types: Iterable[str]) -> None:
        """Create a source's series at zero at start-up.

        A counter that appears only with its first increment loses that increment in
        `increase()`, and a feed with no series at all is invisible on the dashboards:
        priming makes a silent configured feed show as a flat line, not as nothing.
        """
        src = source_label(source)
        for raw in message_types:
            mt = message_type_label(raw)
            self.messages_received.labels(src, mt)
            self.messages_acknowledged.labels(src, mt, "AA")

    def record_message_received(
        self,
        source: str,
        message_type: str,
        *,
        size_bytes: int | None = None,
        at: float | None = None,
    ) -> None:
        """One HL7 message read from `source` (its MSH-9 as received; `at`: unix time)."""
        src = source_label(source)
        mt = message_type_label(message_type)
        self.messages_received.labels(src, mt).inc()
        self.last_message_received.labels(src, mt).set(time.time() if at is None else at)
        if size_bytes is not None:
            self.received_message_size.labels(src).observe(size_bytes)

    def record_message_acknowledged(self, source: str, message_type: str, ack_code: str) -> None:
        """The ACK sent for a message: `ack_code` is MSA-1 (AA, AE, AR, CA, CE, CR)."""
        self.messages_acknowledged.labels(
            source_label(source), message_type_label(message_type), ack_code_label(ack_code)
        ).inc()

    # --- stages ---

    def observe_stage_duration(self, stage: str, seconds: float) -> None:
        """Time a stage spent on one record, consume to commit."""
        self.stage_duration.labels(snake_label(stage)).observe(seconds)

    @contextmanager
    def time_stage(self, stage: str) -> Iterator[None]:
        """Times the block as one record of `stage` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe_stage_duration(stage, time.perf_counter() - started)

    def set_consumer_lag(self, stage: str, records: int) -> None:
        """Records on the stage's input topic not yet committed, summed over partitions."""
        self.consumer_lag.labels(snake_label(stage)).set(max(records, 0))

    # --- documents ---

    def record_document_built(self, document_type: str, version_kind: str) -> None:
        """A CDA built: `version_kind` is initial, replacement or deletion."""
        self.documents_built.labels(
            document_type_label(document_type), member_label(version_kind, VERSION_KINDS)
        ).inc()

    def record_document_invalid(self, document_type: str, check: str) -> None:
        """A document refused by validation: `check` is xsd, schematron, pdf or other."""
        self.documents_invalid.labels(
            document_type_label(document_type), member_label(check, VALIDATION_CHECKS)
        ).inc()

    def record_unmapped_loinc(self, lab: str, occurrences: int = 1) -> None:
        """Results from `lab` (its source name) whose local code has no LOINC mapping."""
        if occurrences > 0:
            self.unmapped_loinc.labels(source_label(lab)).inc(occurrences)

    # --- delivery ---

    def record_delivery(self, destination: str, document_type: str, outcome: str) -> None:
        """One delivery attempt's outcome.

        `outcome`: delivered, refused (the destination said no, with a reason),
        failed_transient (will be retried), dead_letter (retries exhausted), held.
        """
        self.deliveries.labels(
            snake_label(destination),
            document_type_label(document_type),
            member_label(outcome, DELIVERY_OUTCOMES),
        ).inc()

    def record_outbound_hl7(self, kind: str, outcome: str, count: int = 1) -> None:
        """HL7 replies to the hospital (ZAM, masking ORU): sent, failed (will retry), dead."""
        self.outbound_hl7.labels(
            member_label(kind, OUTBOUND_HL7_KINDS), member_label(outcome, OUTBOUND_HL7_OUTCOMES)
        ).inc(count)

    def record_mss_recipient(self, role: str, outcome: str) -> None:
        """A professional named by RPPS: resolved from the annuaire, or unresolved."""
        self.mss_recipients.labels(
            member_label(role, MSS_RECIPIENT_ROLES), member_label(outcome, MSS_RECIPIENT_OUTCOMES)
        ).inc()

    def record_mss_report(self, kind: str, outcome: str) -> None:
        """A DSN / MDN / error mail / auto-reply read back, and what it did to the ledger."""
        self.mss_reports.labels(
            member_label(kind.replace("-", "_"), MSS_REPORT_KINDS),
            member_label(outcome, MSS_REPORT_OUTCOMES),
        ).inc()

    def observe_end_to_end_latency(self, destination: str, seconds: float) -> None:
        """HL7 message received to the destination's ACK, for one delivered document."""
        self.end_to_end.labels(snake_label(destination)).observe(max(seconds, 0.0))

    # --- inbound MSSanté ---

    def record_inbound_mail(self) -> None:
        """One mail fetched from the application mailbox and kept (first time only)."""
        self.inbound_mails.inc()

    def record_inbound_document(self, outcome: str) -> None:
        """A received document's outcome: integrated, ko, rejected or retry."""
        self.inbound_documents.labels(member_label(outcome, INBOUND_OUTCOMES)).inc()

    def set_delivery_breaker(self, destination: str, is_open: bool) -> None:
        """The circuit breaker of `destination` opened (True) or closed (False)."""
        self.delivery_breaker.labels(snake_label(destination)).set(1 if is_open else 0)

    # --- health ---

    def set_certificate_expiry(self, certificate: str, not_after: datetime | float) -> None:
        """When the client certificate named `certificate` in pfi.yaml expires.

        A naive datetime is refused: guessing its timezone would move the alert by hours.
        """
        if isinstance(not_after, datetime):
            if not_after.tzinfo is None:
                raise ValueError(
                    f"certificate {certificate!r}: not_after must be timezone-aware, "
                    f"got naive {not_after.isoformat()}"
                )
            value = not_after.timestamp()
        else:
            value = float(not_after)
        self.certificate_expiry.labels(certificate_label(certificate)).set(value)

    def set_broker_up(self, up: bool) -> None:
        """Result of the engine's last broker check."""
        self.broker_up.set(1 if up else 0)

    def set_database_up(self, up: bool) -> None:
        """Result of the engine's last database check."""
        self.database_up.set(1 if up else 0)


def _labels(s: MetricSpec) -> list[str]:
    return list(s.labels)


def _counter(registry: CollectorRegistry, name: str) -> Counter:
    s = spec(name)
    assert s.kind == "counter", name
    return Counter(s.name, s.help, _labels(s), registry=registry)


def _gauge(registry: CollectorRegistry, name: str) -> Gauge:
    s = spec(name)
    assert s.kind == "gauge", name
    return Gauge(
        s.name,
        s.help,
        _labels(s),
        registry=registry,
        multiprocess_mode=s.multiprocess_mode,  # type: ignore[arg-type]
    )


def _histogram(registry: CollectorRegistry, name: str) -> Histogram:
    s = spec(name)
    assert s.kind == "histogram", name
    return Histogram(s.name, s.help, _labels(s), registry=registry, buckets=s.buckets)


def runtime_collectors(registry: CollectorRegistry) -> None:
    """The process and Python runtime collectors (this process only)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def _runtime_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    runtime_collectors(registry)
    return registry


def forwarding_collector(source: CollectorRegistry) -> Collector:
    """Everything `source` holds, as one collector of another registry."""

    class _Forward(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from source.collect()

    return _Forward()


def build_info_collector() -> Collector:
    """pfi_build_info as a plain collector: Info has no multiprocess form."""
    build = spec("pfi_build_info")

    class _BuildInfo(Collector):
        def collect(self) -> Iterator[Metric]:
            family = InfoMetricFamily(build.name.removesuffix("_info"), build.help)
            family.add_metric(
                [], {"version": __version__, "python_version": platform.python_version()}
            )
            yield family

    return _BuildInfo()


#: What `/metrics` serves: PFI's metrics plus the process and Python runtime collectors.
REGISTRY: Final = _runtime_registry()
DEFAULT_METRICS: Final = EngineMetrics(REGISTRY)

_RUNTIME_NAMES: Final = frozenset(
    sample.name for metric in _runtime_registry().collect() for sample in metric.samples
)


def exported_metric_names() -> frozenset[str]:
    """Series names a PromQL query against the engine's scrape may use."""
    return exported_sample_names() | _RUNTIME_NAMES


def register_store_gauges(
    provider: StoreGaugeProvider,
    *,
    registry: CollectorRegistry = REGISTRY,
    min_interval_s: float = 30.0,
    max_staleness_s: float = 300.0,
) -> StoreGaugeCollector:
    """Export the gauges whose truth is in the database, refreshed at most every
    `min_interval_s` seconds however often Prometheus scrapes.

    `provider()` returns a `StoreSnapshot` (the store implements it with a few COUNT/MIN
    queries). When it fails, the previous snapshot is served while younger than
    `max_staleness_s`, then the gauges disappear rather than show stale values; every
    failure counts in `pfi_store_gauges_refresh_errors_total`. Returns the collector so
    the engine can `registry.unregister()` it on shutdown.
    """
    collector = StoreGaugeCollector(
        provider, min_interval_s=min_interval_s, max_staleness_s=max_staleness_s
    )
    registry.register(collector)
    return collector


def render_latest(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The text exposition for `/metrics` (content type `CONTENT_TYPE_LATEST`)."""
    return generate_latest(registry)


# The helpers stages call: bound to the engine's default metrics.
prime_feed = DEFAULT_METRICS.prime_feed
record_message_received = DEFAULT_METRICS.record_message_received
record_message_acknowledged = DEFAULT_METRICS.record_message_acknowledged
observe_stage_duration = DEFAULT_METRICS.observe_stage_duration
time_stage = DEFAULT_METRICS.time_stage
set_consumer_lag = DEFAULT_METRICS.set_consumer_lag
record_document_built = DEFAULT_METRICS.record_document_built
record_document_invalid = DEFAULT_METRICS.record_document_invalid
record_unmapped_loinc = DEFAULT_METRICS.record_unmapped_loinc
record_delivery = DEFAULT_METRICS.record_delivery
record_inbound_mail = DEFAULT_METRICS.record_inbound_mail
record_inbound_document = DEFAULT_METRICS.record_inbound_document
record_outbound_hl7 = DEFAULT_METRICS.record_outbound_hl7
record_mss_recipient = DEFAULT_METRICS.record_mss_recipient
record_mss_report = DEFAULT_METRICS.record_mss_report
observe_end_to_end_latency = DEFAULT_METRICS.observe_end_to_end_latency
set_delivery_breaker = DEFAULT_METRICS.set_delivery_breaker
set_certificate_expiry = DEFAULT_METRICS.set_certificate_expiry
set_broker_up = DEFAULT_METRICS.set_broker_up
set_database_up = DEFAULT_METRICS.set_database_up
