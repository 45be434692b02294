"""HL7 date/time values (DTM, DT): 'YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]'."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")


def parse_dtm(value: str, local_zone: ZoneInfo) -> datetime | None:
    """A timezone-aware UTC datetime, or None when empty or malformed.

    Without an offset the value is the sender's local time (`local_zone`), which is how
    French hospital systems send them.
    """
    m = _DTM.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        dt = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")[:6]),
        )
    except ValueError:
        return None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return dt.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    return dt.replace(tzinfo=local_zone).astimezone(UTC)


def parse_date(value: str) -> date | None:
    """The date part of a DT/DTM value; None when empty or malformed."""
    m = _DTM.match(value.strip())
    if not m or not m.group(2) or not m.group(3):
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
