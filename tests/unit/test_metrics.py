"""The engine's metrics: one definition each, typed helpers, bounded labels."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pfi.observability import metrics
from pfi.observability.catalogue import CATALOGUE, render_metrics_table
from pfi.observability.metrics import EngineMetrics

DOCS = Path(__file__).parents[2] / "docs" / "metrics.md"


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def engine(registry):
    return EngineMetrics(registry)


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_message_received_counts_and_stamps_the_feed(registry, engine):
    engine.record_message_received("SGL", "oru^r01^ORU_R01", size_bytes=2048, at=1_700_000_000.0)
    engine.record_message_received("SGL", "ORU^R01", at=1_700_000_060.0)

    labels = {"source": "SGL", "message_type": "ORU^R01"}
    assert value(registry, "pfi_messages_received_total", **labels) == 2
    assert value(registry, "pfi_last_message_received_timestamp_seconds", **labels) == (
        1_700_000_060.0
    )
    assert value(registry, "pfi_received_message_size_bytes_count", source="SGL") == 1
    assert value(registry, "pfi_received_message_size_bytes_bucket", source="SGL", le="4096.0") == 1


def test_acks_are_counted_per_code(registry, engine):
    for code in ("AA", "AA", "AE", "bogus"):
        engine.record_message_acknowledged("SGL", "ORU^R01", code)
    base = {"source": "SGL", "message_type": "ORU^R01"}
    assert value(registry, "pfi_messages_acknowledged_total", **base, ack_code="AA") == 2
    assert value(registry, "pfi_messages_acknowledged_total", **base, ack_code="AE") == 1
    assert value(registry, "pfi_messages_acknowledged_total", **base, ack_code="other") == 1


def test_garbage_from_a_sender_never_becomes_a_label(registry, engine):
    for i in range(50):
        engine.record_message_received("SGL", f"Q{i:02d}^PATIENT{i}")
    exposition = generate_latest(registry).decode()
    types = set(re.findall(r'message_type="([^"]*)"', exposition))
    assert types == {"other"}
    assert "PATIENT" not in exposition


def test_priming_a_feed_creates_zero_series(registry, engine):
    engine.prime_feed("RIS", ["ORU^R01", "MDM"])
    assert value(registry, "pfi_messages_received_total", source="RIS", message_type="MDM") == 0
    assert (
        value(
            registry,
            "pfi_messages_acknowledged_total",
            source="RIS",
            message_type="ORU^R01",
            ack_code="AA",
        )
        == 0
    )


def test_time_stage_observes_even_when_the_block_raises(registry, engine):
    with engine.time_stage("documents"):
        pass
    with pytest.raises(RuntimeError), engine.time_stage("documents"):
        raise RuntimeError("boom")
    assert value(registry, "pfi_stage_processing_duration_seconds_count", stage="documents") == 2


def test_documents_deliveries_and_latency_use_closed_label_sets(registry, engine):
    engine.record_document_built("CR-BIO", "replacement")
    engine.record_document_built("CR-BIO", "amended")  # not a version kind
    engine.record_document_invalid("CR-BIO", "schematron")
    engine.record_delivery("dmp", "CR-BIO", "delivered")
    engine.record_mss_recipient("prescriber", "unresolved")
    engine.record_mss_report("dsn", "refused")
    engine.record_delivery("dmp", "CR-BIO", "lost")  # not an outcome
    engine.observe_end_to_end_latency("dmp", 42.0)
    engine.record_unmapped_loinc("SGL", 3)

    assert (
        value(
            registry,
            "pfi_documents_built_total",
            document_type="CR-BIO",
            version_kind="replacement",
        )
        == 1
    )
    assert (
        value(registry, "pfi_documents_built_total", document_type="CR-BIO", version_kind="other")
        == 1
    )
    assert (
        value(registry, "pfi_documents_invalid_total", document_type="CR-BIO", check="schematron")
        == 1
    )
    assert (
        value(
            registry,
            "pfi_deliveries_total",
            destination="dmp",
            document_type="CR-BIO",
            outcome="other",
        )
        == 1
    )
    assert (
        value(registry, "pfi_end_to_end_duration_seconds_bucket", destination="dmp", le="60.0") == 1
    )
    assert value(registry, "pfi_unmapped_loinc_occurrences_total", lab="SGL") == 3


def test_certificate_expiry_needs_an_aware_time(registry, engine):
    not_after = datetime(2030, 1, 1, tzinfo=UTC)
    engine.set_certificate_expiry("dmp_auth", not_after)
    assert (
        value(registry, "pfi_client_certificate_expiry_timestamp_seconds", certificate="dmp_auth")
        == not_after.timestamp()
    )
    with pytest.raises(ValueError, match=r"dmp_auth.*timezone-aware"):
        engine.set_certificate_expiry("dmp_auth", datetime(2030, 1, 1))
    engine.set_certificate_expiry("mssante", (not_after + timedelta(days=1)).timestamp())
    assert (
        value(registry, "pfi_client_certificate_expiry_timestamp_seconds", certificate="mssante")
        == not_after.timestamp() + 86400
    )


def test_health_gauges_and_build_info(registry, engine):
    engine.set_broker_up(False)
    engine.set_database_up(True)
    engine.set_consumer_lag("routing", -5)
    assert value(registry, "pfi_broker_up") == 0
    assert value(registry, "pfi_database_up") == 1
    assert value(registry, "pfi_consumer_lag_records", stage="routing") == 0
    exposition = generate_latest(registry).decode()
    assert re.search(r'pfi_build_info\{python_version="[^"]+",version="[^"]+"\} 1\.0', exposition)


def test_every_engine_metric_in_the_catalogue_is_exported_with_its_help(registry, engine):
    """Exercise every helper, then compare what /metrics shows with the catalogue."""
    engine.prime_feed("SGL", ["ORU^R01"])
    engine.record_message_received("SGL", "ORU^R01", size_bytes=10)
    engine.observe_stage_duration("documents", 0.01)
    engine.set_consumer_lag("documents", 3)
    engine.record_document_built("CR-BIO", "initial")
    engine.record_document_invalid("CR-BIO", "xsd")
    engine.record_unmapped_loinc("SGL")
    engine.record_delivery("dmp", "CR-BIO", "delivered")
    engine.record_outbound_hl7("zam_z01", "sent")
    engine.record_mss_recipient("prescriber", "unresolved")
    engine.record_mss_report("dsn", "refused")
    engine.observe_end_to_end_latency("dmp", 1.0)
    engine.record_inbound_mail()
    engine.record_inbound_document("integrated")
    engine.set_delivery_breaker("dmp", True)
    engine.set_certificate_expiry("dmp_auth", 2e9)
    engine.set_broker_up(True)
    engine.set_database_up(True)
    exported = {sample.name for family in registry.collect() for sample in family.samples}
    helps = {family.name: family.documentation for family in registry.collect()}
    for spec in CATALOGUE:
        if spec.origin != "engine":
            continue
        assert set(spec.sample_names) <= exported, spec.name
        family = spec.name.removesuffix("_total").removesuffix("_info")
        assert helps[family] == spec.help
    engine_names = {n for s in CATALOGUE if s.origin == "engine" for n in s.sample_names}
    assert {n for n in exported if n.startswith("pfi_")} == engine_names


def test_catalogue_follows_prometheus_naming():
    for spec in CATALOGUE:
        assert re.fullmatch(r"pfi_[a-z0-9_]+", spec.name), spec.name
        assert (spec.kind == "counter") == spec.name.endswith("_total"), spec.name
        if spec.kind == "histogram":
            assert spec.name.endswith(("_seconds", "_bytes")), spec.name
        assert spec.help.endswith("."), spec.name
        assert not {"patient", "message_id", "control_id", "document_id"} & set(spec.labels)


def test_module_helpers_record_into_the_served_registry():
    before = (
        metrics.REGISTRY.get_sample_value(
            "pfi_messages_received_total", {"source": "RIS", "message_type": "ORU^R01"}
        )
        or 0
    )
    metrics.record_message_received("RIS", "ORU^R01")
    after = metrics.REGISTRY.get_sample_value(
        "pfi_messages_received_total", {"source": "RIS", "message_type": "ORU^R01"}
    )
    assert after == before + 1
    assert b"pfi_messages_received_total" in metrics.render_latest()
    assert (
        "process_resident_memory_bytes" in metrics.exported_metric_names()
        or not Path("/proc/self").exists()
    )


def test_docs_list_every_metric_as_the_catalogue_defines_it():
    text = DOCS.read_text(encoding="utf-8")
    begin = text.index("<!-- metrics-table:begin")
    begin = text.index("\n", begin) + 1
    end = text.index("<!-- metrics-table:end -->")
    assert text[begin:end] == render_metrics_table(), (
        "docs/metrics.md is out of date: paste render_metrics_table() between the markers"
    )


def test_inbound_document_outcomes_are_bounded(registry, engine):
    engine.record_inbound_document("ko")
    engine.record_inbound_document("ko")
    engine.record_inbound_document("INS 279035121518989 unknown")
    assert value(registry, "pfi_inbound_documents_total", outcome="ko") == 2
    assert value(registry, "pfi_inbound_documents_total", outcome="other") == 1


def test_outbound_hl7_labels_stay_within_their_sets(registry, engine):
    engine.record_outbound_hl7("zam_z02", "dead")
    engine.record_outbound_hl7("ZAM^Z02 from a typo", "exploded")
    assert (
        registry.get_sample_value(
            "pfi_outbound_hl7_messages_total", {"kind": "zam_z02", "outcome": "dead"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "pfi_outbound_hl7_messages_total", {"kind": "other", "outcome": "other"}
        )
        == 1
    )
