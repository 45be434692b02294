"""Working hours as PromQL: local time of week, and when the current working window opened.

Prometheus only knows UTC, so local time is built in two recording rules:

- `pfi:utc_offset_seconds{timezone}`: the zone's offset now. A fixed-offset zone is a
  constant; an EU zone adds one hour from the last Sunday of March 01:00 UTC to the
  last Sunday of October 01:00 UTC, computed from `month()`, `day_of_month()`,
  `day_of_week()` and `hour()`. The day of the month minus the day of the week is the
  date of the Sunday on or before today; it is 25 or more exactly when that Sunday is
  the month's last one (the last Sunday falls on the 25th to the 31st).
- `pfi:local_week_seconds{timezone}`: seconds since local Monday 00:00. The Unix epoch
  was a Thursday, three days after a Monday, hence the `+ 259200`.

A schedule becomes a list of spans of the week. For the silence alert what matters is
when the current working window opened: a feed whose last message was yesterday
evening is silent since this morning's opening, not since yesterday. A window running
across the week's end (Sunday 22:00 to Monday 06:00) is one window: its Monday part
opened the previous Sunday, hence negative openings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pfi.config.observability import DAY_NAMES, WorkingHours
from pfi.config.timezone_rules import EuSummerTime, FixedOffset, ZoneRule, zone_rule

WEEK_SECONDS = 7 * 86400
#: Unix time 0 was Thursday 1970-01-01 00:00; Monday 00:00 was 3 days before.
EPOCH_TO_MONDAY_SECONDS = 3 * 86400


@dataclass(frozen=True)
class ActiveSpan:
    """Local week seconds in [lo, hi) belong to the window that opened at `opened_at`."""

    lo: int
    hi: int
    opened_at: int


def active_spans(hours: list[WorkingHours]) -> tuple[ActiveSpan, ...] | None:
    """The schedule's spans of the week, or None when it covers the whole week."""
    pieces: list[tuple[int, int]] = []
    for entry in hours:
        for day in entry.days:
            for clock in entry.hours:
                start = day * 86400 + clock.start * 60
                length = ((clock.end - clock.start) % 1440 or 1440) * 60
                end = start + length
                if end > WEEK_SECONDS:
                    pieces += [(start, WEEK_SECONDS), (0, end - WEEK_SECONDS)]
                else:
                    pieces.append((start, end))
    merged: list[list[int]] = []
    for lo, hi in sorted(pieces):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if merged == [[0, WEEK_SECONDS]]:
        return None
    spans = [ActiveSpan(lo, hi, lo) for lo, hi in merged]
    if len(spans) > 1 and spans[0].lo == 0 and spans[-1].hi == WEEK_SECONDS:
        # The Monday-morning part continues the window opened late last week.
        spans[0] = ActiveSpan(0, spans[0].hi, spans[-1].lo - WEEK_SECONDS)
    return tuple(spans)


def window_opened_at(spans: tuple[ActiveSpan, ...] | None, week_seconds: int) -> int | None:
    """Local week second at which the current window opened, None outside working hours.

    The Python twin of `window_start_expr`, used to check the PromQL against zoneinfo.
    """
    if spans is None:
        raise ValueError("a schedule covering the whole week has no window opening")
    for span in spans:
        if span.lo <= week_seconds < span.hi:
            return span.opened_at
    return None


def local_week_seconds(instant: datetime, timezone: str) -> int:
    """Seconds since Monday 00:00 local time at `instant` (aware), via zoneinfo."""
    from zoneinfo import ZoneInfo

    local = instant.astimezone(ZoneInfo(timezone))
    return local.weekday() * 86400 + local.hour * 3600 + local.minute * 60 + local.second


_AFTER_LAST_SUNDAY = (
    "(day_of_month() - day_of_week() >= bool 25)"
    " * clamp_max((day_of_week() > bool 0) + (hour() >= bool 1), 1)"
)


def utc_offset_expr(rule: ZoneRule) -> str:
    """PromQL for the zone's UTC offset in seconds at evaluation time (label-less)."""
    if isinstance(rule, FixedOffset):
        return f"vector({rule.offset_seconds})"
    assert isinstance(rule, EuSummerTime)
    return (
        f"{rule.standard_offset_seconds} + 3600 * (\n"
        "    (month() > bool 3) * (month() < bool 10)\n"
        f"  + (month() == bool 3) * {_AFTER_LAST_SUNDAY}\n"
        f"  + (month() == bool 10) * (1 - {_AFTER_LAST_SUNDAY})\n"
        ")"
    )


def local_week_seconds_expr(offset: str) -> str:
    """PromQL for seconds since local Monday 00:00, given the offset expression."""
    return f"(time() + {EPOCH_TO_MONDAY_SECONDS} + {offset}) % {WEEK_SECONDS}"


def offset_series(timezone: str) -> str:
    return f'pfi:utc_offset_seconds{{timezone="{timezone}"}}'


def week_series(timezone: str) -> str:
    return f'pfi:local_week_seconds{{timezone="{timezone}"}}'


def zone_offset_expr(timezone: str) -> str:
    return utc_offset_expr(zone_rule(timezone))


def window_start_expr(spans: tuple[ActiveSpan, ...] | None, week: str, lookback_s: int) -> str:
    """PromQL for the unix time the current working window opened; empty outside hours.

    `week` is the local-week-seconds expression. A whole-week schedule has no opening:
    it is "open since the silence lookback", so silence is measured from the last
    message alone.
    """
    if spans is None:
        return f"vector(time() - {lookback_s})"
    terms = []
    for span in spans:
        selected = week
        if span.lo > 0:
            selected = f"({selected} >= {span.lo})"
        if span.hi < WEEK_SECONDS:
            selected = f"({selected} < {span.hi})"
        if span.opened_at > 0:
            selected = f"{selected} - {span.opened_at}"
        elif span.opened_at < 0:  # the window opened last week
            selected = f"{selected} + {-span.opened_at}"
        terms.append(selected)
    body = "\n  or\n  ".join(terms)
    return f"time() - max(\n  {body}\n)"


def describe_schedule(hours: list[WorkingHours], timezone: str) -> str:
    """`mon-fri 07:00-20:00, sat 08:00-13:00 Europe/Paris time` for alert descriptions."""
    if active_spans(hours) is None:
        return "around the clock"
    parts = []
    for entry in hours:
        ranges = " ".join(str(r) for r in entry.hours)
        parts.append(f"{_describe_days(entry.days)} {ranges}")
    return f"{', '.join(parts)} {timezone} time"


def _describe_days(days: list[int]) -> str:
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ",".join(
        DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs
    )
