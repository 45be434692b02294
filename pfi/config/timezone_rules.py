"""Which time zones PromQL can follow, and how.

Prometheus evaluates `hour()` and `day_of_week()` in UTC only. PFI's alert rules turn
UTC into the feed's local time with a recording rule (`pfi:utc_offset_seconds`), which
can express two kinds of zone exactly: a fixed offset (Indian/Reunion,
America/Martinique, UTC...) and the EU summer-time rule (Europe/Paris and every EU zone:
+1h from the last Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC).
Any other zone (e.g. America/Miquelon, on North-American rules) is refused at
configuration time instead of paging an hour early for half the year.

The classification is checked against the IANA database (zoneinfo) day by day over
`CHECKED_YEARS` and at every transition instant, so a zone that only looks like the EU
rule is still refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Years over which a zone must match its rule. Fixed, so that validation never depends
#: on today's date.
CHECKED_YEARS = range(2024, 2041)


@dataclass(frozen=True)
class FixedOffset:
    """A zone without summer time."""

    offset_seconds: int


@dataclass(frozen=True)
class EuSummerTime:
    """A zone on the EU rule: `standard_offset_seconds` in winter, one hour more in summer."""

    standard_offset_seconds: int


ZoneRule = FixedOffset | EuSummerTime


class UnsupportedTimeZone(ValueError):
    """The zone is unknown, or changes offset in a way PromQL rules cannot follow."""


def last_sunday(year: int, month: int) -> datetime:
    """01:00 UTC on the last Sunday of `month`: the EU switch instant."""
    first_next = datetime(year + (month == 12), month % 12 + 1, 1, 1, tzinfo=UTC)
    last_day = first_next - timedelta(days=1)
    return last_day - timedelta(days=(last_day.weekday() + 1) % 7)


def eu_summer_time_active(instant: datetime) -> bool:
    """Whether the EU summer-time rule applies at `instant` (aware)."""
    utc = instant.astimezone(UTC)
    return last_sunday(utc.year, 3) <= utc < last_sunday(utc.year, 10)


@cache
def zone_rule(name: str) -> ZoneRule:
    """Classify the IANA zone `name`, or raise UnsupportedTimeZone saying why."""
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnsupportedTimeZone("an IANA time zone such as 'Europe/Paris'") from None
    instants = _check_instants()
    offsets = {_offset(zone, t) for t in instants}
    if len(offsets) == 1:
        return FixedOffset(offsets.pop())
    standard = _offset(zone, datetime(CHECKED_YEARS[0], 1, 15, 12, tzinfo=UTC))
    for t in instants:
        expected = standard + (3600 if eu_summer_time_active(t) else 0)
        if _offset(zone, t) != expected:
            raise UnsupportedTimeZone(
                f"a fixed-offset zone or one on the EU summer-time rule; {name!r} is "
                f"UTC{_hours(_offset(zone, t))} at {t:%Y-%m-%d %H:%M} UTC where that rule "
                f"gives UTC{_hours(expected)}, and PromQL rules cannot follow that"
            )
    return EuSummerTime(standard)


@cache
def _check_instants() -> tuple[datetime, ...]:
    out: list[datetime] = []
    start = datetime(CHECKED_YEARS[0], 1, 1, tzinfo=UTC)
    end = datetime(CHECKED_YEARS[-1] + 1, 1, 1, tzinfo=UTC)
    t = start
    while t < end:
        out.append(t)
        t += timedelta(hours=12)
    for year in CHECKED_YEARS:
        for month in (3, 10):
            switch = last_sunday(year, month)
            out += [switch - timedelta(seconds=1), switch]
    return tuple(out)


def _offset(zone: ZoneInfo, instant: datetime) -> int:
    delta = instant.astimezone(zone).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def _hours(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours}" + (f":{rest // 60:02d}" if rest else "")
