"""Gauges whose truth is in the database: holds, dead letters, outbox backlog, INS share.

They are not set as events happen (a hold released by another engine instance, a dead
letter replayed from the console) but read from the store. Prometheus may scrape every
few seconds, from several servers; the store answers at most every `min_interval_s`
and a scrape in between is served from the last snapshot, with ages recomputed at
scrape time from the oldest timestamps so they keep growing between refreshes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pfi.observability.catalogue import spec
from pfi.observability.labels import (
    OUTBOUND_HL7_KINDS,
    member_label,
    snake_label,
    source_label,
)

log = logging.getLogger(__name__)

#: Statuses of an HL7 reply not sent yet (pfi_outbound_hl7_messages).
_REPLY_STATUSES = frozenset({"pending", "failed", "dead"})


@dataclass(frozen=True)
class HoldStats:
    """Open holds of one reason: how many, and when the oldest was placed."""

    open: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class StoreSnapshot:
    """What the store knows now. Keys are bounded names (reasons, stages, lab sources).

    Timestamps are aware, or naive UTC (what SQLite returns).
    """

    holds: Mapping[str, HoldStats] = field(default_factory=dict)
    dead_letters: Mapping[str, int] = field(default_factory=dict)
    outbox_unpublished: int = 0
    outbox_oldest_unpublished_at: datetime | None = None
    #: Qualified INS / known patients; None while the store has no patient.
    qualified_ins_ratio: float | None = None
    unmapped_loinc_codes: Mapping[str, int] = field(default_factory=dict)
    #: Inbound MSSanté documents in the KO worklist, and not yet acknowledged by the DPI.
    inbound_ko_documents: int = 0
    inbound_pending_documents: int = 0
    #: HL7 replies not sent yet: (kind, status) -> count (statuses pending, failed, dead).
    outbound_hl7: Mapping[tuple[str, str], int] = field(default_factory=dict)


class StoreGaugeProvider(Protocol):
    """Implemented by the store: a handful of aggregate queries, no row is loaded."""

    def __call__(self) -> StoreSnapshot: ...


class StoreGaugeCollector(Collector):
    """A prometheus-client collector that rate-limits its database reads."""

    def __init__(
        self,
        provider: StoreGaugeProvider,
        *,
        min_interval_s: float = 30.0,
        max_staleness_s: float = 300.0,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_interval_s <= 0 or max_staleness_s < min_interval_s:
            raise ValueError(
                "store gauges need 0 < min_interval_s <= max_staleness_s, "
                f"got {min_interval_s} and {max_staleness_s}"
            )
        self._provider = provider
        self._min_interval_s = min_interval_s
        self._max_staleness_s = max_staleness_s
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._snapshot: StoreSnapshot | None = None
        self._snapshot_at: float | None = None  # monotonic
        self._snapshot_wall: float | None = None
        self._last_attempt_at: float | None = None
        self._errors = 0

    def describe(self) -> Iterator[Metric]:
        """The families without reading the store (registration must not hit the DB)."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._current())

    def _current(self) -> StoreSnapshot | None:
        with self._lock:
            now = self._monotonic()
            due = self._last_attempt_at is None or now - self._last_attempt_at >= (
                self._min_interval_s
            )
            if due:
                self._last_attempt_at = now
                try:
                    snapshot = self._provider()
                except Exception:  # the scrape must still answer when the DB does not
                    self._errors += 1
                    log.warning("store gauges: refresh failed", exc_info=True)
                else:
                    self._snapshot, self._snapshot_at = snapshot, now
                    self._snapshot_wall = self._wall_clock()
            if self._snapshot_at is None or now - self._snapshot_at > self._max_staleness_s:
                return None
            return self._snapshot

    def _families(self, snap: StoreSnapshot | None) -> Iterator[Metric]:
        now = self._wall_clock()
        holds_open = _gauge("pfi_holds_open")
        hold_age = _gauge("pfi_hold_oldest_age_seconds")
        dead = _gauge("pfi_dead_letters")
        outbox = _gauge("pfi_outbox_unpublished_records")
        outbox_age = _gauge("pfi_outbox_oldest_unpublished_age_seconds")
        ins = _gauge("pfi_patients_qualified_ins_ratio")
        loinc = _gauge("pfi_unmapped_loinc_codes")
        inbound_ko = _gauge("pfi_inbound_ko_documents")
        inbound_pending = _gauge("pfi_inbound_pending_documents")
        replies = _gauge("pfi_outbound_hl7_messages")
        refreshed = _gauge("pfi_store_gauges_refresh_timestamp_seconds")
        errors_spec = spec("pfi_store_gauges_refresh_errors_total")
        errors = CounterMetricFamily(errors_spec.name, errors_spec.help)
        if snap is not None:
            for reason, stats in _merge_by_label(snap.holds, snake_label).items():
                holds_open.add_metric([reason], stats.open)
                if stats.oldest_created_at is not None:
                    hold_age.add_metric([reason], _age(now, stats.oldest_created_at))
            for stage, count in _sum_by_label(snap.dead_letters, snake_label).items():
                dead.add_metric([stage], count)
            outbox.add_metric([], snap.outbox_unpublished)
            outbox_age.add_metric(
                [],
                0.0
                if snap.outbox_oldest_unpublished_at is None
                else _age(now, snap.outbox_oldest_unpublished_at),
            )
            if snap.qualified_ins_ratio is not None:
                ins.add_metric([], snap.qualified_ins_ratio)
            for lab, count in _sum_by_label(snap.unmapped_loinc_codes, source_label).items():
                loinc.add_metric([lab], count)
            inbound_ko.add_metric([], snap.inbound_ko_documents)
            inbound_pending.add_metric([], snap.inbound_pending_documents)
            waiting: dict[tuple[str, str], int] = {}
            for (kind, status), count in snap.outbound_hl7.items():
                key = (
                    member_label(kind, OUTBOUND_HL7_KINDS),
                    member_label(status, _REPLY_STATUSES),
                )
                waiting[key] = waiting.get(key, 0) + count
            for (kind, status), count in waiting.items():
                replies.add_metric([kind, status], count)
        if self._snapshot_wall is not None:
            refreshed.add_metric([], self._snapshot_wall)
        errors.add_metric([], self._errors)
        yield from (
            holds_open,
            hold_age,
            dead,
            outbox,
            outbox_age,
            ins,
            loinc,
            inbound_ko,
            inbound_pending,
            replies,
            refreshed,
            errors,
        )


def _gauge(name: str) -> GaugeMetricFamily:
    s = spec(name)
    return GaugeMetricFamily(s.name, s.help, labels=list(s.labels))


def _age(now: float, since: datetime) -> float:
    """Naive datetimes are UTC: the store keeps UTC, and SQLite hands them back naive."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(now - since.timestamp(), 0.0)


def _sum_by_label(values: Mapping[str, int], label: Callable[[str], str]) -> dict[str, int]:
    """Two raw keys that collapse to "other" must add up, not overwrite each other."""
    out: dict[str, int] = {}
    for key, count in values.items():
        name = label(key)
        out[name] = out.get(name, 0) + count
    return out


def _merge_by_label(
    values: Mapping[str, HoldStats], label: Callable[[str], str]
) -> dict[str, HoldStats]:
    out: dict[str, HoldStats] = {}
    for key, stats in values.items():
        name = label(key)
        prev = out.get(name)
        if prev is None:
            out[name] = stats
            continue
        oldest = [d for d in (prev.oldest_created_at, stats.oldest_created_at) if d is not None]
        out[name] = HoldStats(prev.open + stats.open, min(oldest) if oldest else None)
    return out
