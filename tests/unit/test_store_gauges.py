"""Database-backed gauges: read at most every N seconds, ages fresh at every scrape."""

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from pfi.observability.metrics import (
    HoldStats,
    StoreGaugeCollector,
    StoreSnapshot,
    register_store_gauges,
)

NOW = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.wall = NOW
        self.mono = 100.0

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds


class Provider:
    """Counts its calls; raises while `failing` is set."""

    def __init__(self, snapshot):
        self.snapshot = snapshot
        self.calls = 0
        self.failing = False

    def __call__(self):
        self.calls += 1
        if self.failing:
            raise ConnectionError("database unreachable")
        return self.snapshot


def at(seconds_ago):
    return datetime.fromtimestamp(NOW - seconds_ago, tz=UTC)


SNAPSHOT = StoreSnapshot(
    holds={
        "announcement": HoldStats(open=3, oldest_created_at=at(3600)),
        "ins_not_qualified": HoldStats(open=1, oldest_created_at=at(60)),
    },
    dead_letters={"delivery_dmp": 2, "Documents Stage!": 1, "bad stage?": 4},
    outbox_unpublished=5,
    outbox_oldest_unpublished_at=at(30),
    qualified_ins_ratio=0.83,
    unmapped_loinc_codes={"SGL": 4},
    outbound_hl7={("zam_z01", "dead"): 1, ("zam_z02", "pending"): 2, ("ZAM?", "dead"): 3},
)


@pytest.fixture
def clock():
    return Clock()


def collector_for(provider, clock, registry, **kwargs):
    collector = StoreGaugeCollector(
        provider, wall_clock=lambda: clock.wall, monotonic=lambda: clock.mono, **kwargs
    )
    registry.register(collector)
    return collector


def test_registration_does_not_query_the_database():
    provider = Provider(SNAPSHOT)
    register_store_gauges(provider, registry=CollectorRegistry())
    assert provider.calls == 0


def test_snapshot_values_are_exported_with_bounded_labels(clock):
    registry = CollectorRegistry()
    collector_for(Provider(SNAPSHOT), clock, registry)
    get = registry.get_sample_value
    assert get("pfi_holds_open", {"reason": "announcement"}) == 3
    assert get("pfi_hold_oldest_age_seconds", {"reason": "announcement"}) == 3600
    assert get("pfi_dead_letters", {"stage": "delivery_dmp"}) == 2
    # two malformed stage names collapse into one "other" series, counts added up
    assert get("pfi_dead_letters", {"stage": "other"}) == 5
    assert get("pfi_outbox_unpublished_records") == 5
    assert get("pfi_outbox_oldest_unpublished_age_seconds") == 30
    assert get("pfi_patients_qualified_ins_ratio") == 0.83
    assert get("pfi_outbound_hl7_messages", {"kind": "zam_z01", "status": "dead"}) == 1
    assert get("pfi_outbound_hl7_messages", {"kind": "zam_z02", "status": "pending"}) == 2
    assert get("pfi_outbound_hl7_messages", {"kind": "other", "status": "dead"}) == 3
    assert get("pfi_unmapped_loinc_codes", {"lab": "SGL"}) == 4
    assert get("pfi_store_gauges_refresh_timestamp_seconds") == NOW
    assert get("pfi_store_gauges_refresh_errors_total") == 0


def test_scrapes_within_the_interval_reuse_the_snapshot_but_ages_keep_growing(clock):
    registry = CollectorRegistry()
    provider = Provider(SNAPSHOT)
    collector_for(provider, clock, registry, min_interval_s=30)
    for _ in range(5):
        registry.get_sample_value("pfi_holds_open", {"reason": "announcement"})
    assert provider.calls == 1
    clock.advance(20)
    age = registry.get_sample_value("pfi_hold_oldest_age_seconds", {"reason": "announcement"})
    assert age == 3620
    assert provider.calls == 1
    clock.advance(10)
    registry.get_sample_value("pfi_holds_open", {"reason": "announcement"})
    assert provider.calls == 2


def test_a_failing_database_serves_the_last_snapshot_then_drops_it(clock):
    registry = CollectorRegistry()
    provider = Provider(SNAPSHOT)
    collector_for(provider, clock, registry, min_interval_s=30, max_staleness_s=120)
    assert registry.get_sample_value("pfi_dead_letters", {"stage": "delivery_dmp"}) == 2
    provider.failing = True
    clock.advance(60)
    assert registry.get_sample_value("pfi_dead_letters", {"stage": "delivery_dmp"}) == 2
    assert registry.get_sample_value("pfi_store_gauges_refresh_errors_total") == 1
    clock.advance(90)  # the snapshot is now 150 s old
    assert registry.get_sample_value("pfi_dead_letters", {"stage": "delivery_dmp"}) is None
    assert registry.get_sample_value("pfi_store_gauges_refresh_timestamp_seconds") == NOW
    assert registry.get_sample_value("pfi_store_gauges_refresh_errors_total") == 2
    provider.failing = False
    clock.advance(30)
    assert registry.get_sample_value("pfi_dead_letters", {"stage": "delivery_dmp"}) == 2


def test_empty_store_exports_zero_backlog_and_no_ratio(clock):
    registry = CollectorRegistry()
    collector_for(Provider(StoreSnapshot()), clock, registry)
    assert registry.get_sample_value("pfi_outbox_unpublished_records") == 0
    assert registry.get_sample_value("pfi_outbox_oldest_unpublished_age_seconds") == 0
    assert registry.get_sample_value("pfi_patients_qualified_ins_ratio") is None


def test_naive_timestamps_from_the_store_are_read_as_utc(clock):
    registry = CollectorRegistry()
    naive_utc = at(7200).astimezone(UTC).replace(tzinfo=None)
    snapshot = StoreSnapshot(holds={"manual": HoldStats(1, naive_utc)})
    collector_for(Provider(snapshot), clock, registry)
    assert registry.get_sample_value("pfi_hold_oldest_age_seconds", {"reason": "manual"}) == 7200


def test_interval_settings_are_checked():
    with pytest.raises(ValueError, match="min_interval_s"):
        StoreGaugeCollector(Provider(SNAPSHOT), min_interval_s=60, max_staleness_s=30)
