"""The `observability:` section of pfi.yaml: feed working hours and alert thresholds.

The alert rules (`deploy/prometheus/alerts.yml`) are rendered from this section by
`pfi observability render-alerts`, so the schedule a hospital declares here is the one
Prometheus pages on. Every duration is written the Prometheus way (`30m`, `1h30m`,
`7d`, `1w`) and every threshold can be shortened for tests (`1m` windows).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from pfi.config.timezone_rules import UnsupportedTimeZone, zone_rule

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_CLOCK_RANGE = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")


class Section(BaseModel):
    """Unknown keys are errors: a misspelt threshold must not silently fall back."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_duration(value: Any) -> Any:
    """`30m`, `1h30m`, `7d`, `1w` (Prometheus syntax) or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            seconds = sum(
                int(n) * size for n, (_, size) in zip(match.groups(), _UNITS, strict=True) if n
            )
            return timedelta(seconds=seconds)
    raise ValueError("a duration like '30m', '1h30m', '7d' or '1w'")


def prometheus_duration(value: timedelta) -> str:
    """The shortest Prometheus spelling of `value` (`1800s` -> `30m`, `90000s` -> `1d1h`)."""
    seconds = int(value.total_seconds())
    if seconds <= 0 or seconds != value.total_seconds():
        raise ValueError(f"a positive whole number of seconds (got {value})")
    out = ""
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out


def _positive(value: timedelta) -> timedelta:
    prometheus_duration(value)  # raises on zero, negative or sub-second
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    PlainSerializer(prometheus_duration, return_type=str),
]
Ratio = Annotated[float, Field(gt=0, lt=1)]
Severity = Literal["page", "ticket"]
SourceName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")]
SnakeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
MessageTypeName = Annotated[str, Field(pattern=r"^[A-Z0-9]{3}(\^[A-Z][0-9]{2})?$")]


def _known_zone(name: str) -> str:
    try:
        zone_rule(name)
    except UnsupportedTimeZone as exc:
        raise ValueError(str(exc)) from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class ClockRange(NamedTuple):
    """Local minutes since midnight; `end <= start` means the range runs past midnight."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_clock_range(value: Any) -> Any:
    if isinstance(value, ClockRange):
        return value
    if not isinstance(value, str):
        raise ValueError("a range like '08:00-19:00'")
    match = _CLOCK_RANGE.match(value.strip())
    if not match:
        raise ValueError("a range like '08:00-19:00' or '22:00-06:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError("hours 00-23 (24:00 as an end) and minutes 00-59")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError("a range that is not empty (00:00-24:00 for a whole day)")
    return ClockRange(start, end if end != 0 else 1440)


ClockRangeText = Annotated[
    ClockRange, BeforeValidator(_parse_clock_range), PlainSerializer(str, return_type=str)
]


def _parse_days(value: Any) -> Any:
    """`[mon, tue]`, `[mon-fri, sat]` or `mon-fri` -> sorted day indexes (mon = 0)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"a list of days such as [mon-fri] or [sat, sun] (got {value!r})")
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
            continue
        text = str(item).strip().lower()
        first, _, last = text.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(
                f"days among {', '.join(DAY_NAMES)} or a range like mon-fri (got {item!r})"
            )
        i, j = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        span = (j - i) % 7
        days.update((i + k) % 7 for k in range(span + 1))
    return sorted(days)


Days = Annotated[
    list[int],
    BeforeValidator(_parse_days),
    PlainSerializer(lambda days: [DAY_NAMES[d] for d in days], return_type=list[str]),
]


class WorkingHours(Section):
    """Days and local hours during which a feed is expected to send.

    A range that ends at or before its start runs past midnight into the next day:
    `days: [fri]`, `hours: ["22:00-06:00"]` covers Friday 22:00 to Saturday 06:00.
    """

    days: Days
    hours: list[ClockRangeText] = Field(min_length=1)


ALWAYS = "always"


def _parse_schedule(value: Any) -> Any:
    """`always` is every day 00:00-24:00; the rules see a schedule without a boundary."""
    if value == ALWAYS:
        return [{"days": "mon-sun", "hours": ["00:00-24:00"]}]
    if isinstance(value, str):
        raise ValueError("'always' or a list of {days, hours} entries")
    return value


Schedule = Annotated[list[WorkingHours], BeforeValidator(_parse_schedule), Field(min_length=1)]


class VolumeDropSettings(Section):
    """Alert when a feed's volume falls under `drop_ratio` of its usual level.

    The usual level is the median of the same window `season` ago, 2 seasons ago, ...
    `seasons` ago (by default the same hour of the week over the past 4 weeks). It is
    not judged before `min_seasons` of history exist, nor when the usual level is under
    `min_baseline_messages` (1 message instead of 3 at 6 a.m. is no drop-off).
    """

    drop_ratio: Ratio = 0.5
    window: Duration = timedelta(hours=1)
    season: Duration = timedelta(weeks=1)
    seasons: Annotated[int, Field(ge=1, le=8)] = 4
    min_seasons: Annotated[int, Field(ge=1, le=8)] = 2
    min_baseline_messages: Annotated[float, Field(ge=0)] = 20
    pending_for: Duration = timedelta(minutes=15)
    severity: Severity = "ticket"

    @model_validator(mode="after")
    def _history(self) -> VolumeDropSettings:
        if self.min_seasons > self.seasons:
            raise ValueError(f"min_seasons ({self.min_seasons}) at most seasons ({self.seasons})")
        if self.window > self.season:
            raise ValueError(f"a window no longer than the season ({self.season})")
        return self


class MessageTypeFeedSettings(Section):
    """One message type of a source watched on its own; unset keys inherit the source's.

    `ORU^R01` watches that exact type; `MDM` watches every MDM event together.
    """

    working_hours: Schedule | None = None
    timezone: TimeZoneName | None = None
    silence_after: Duration | None = None
    silence_severity: Severity | None = None
    volume: VolumeDropSettings | Literal[False] | None = None


class FeedSettings(Section):
    """A source watched as a whole (any message type), plus optional per-type watches."""

    working_hours: Schedule
    timezone: TimeZoneName | None = Field(
        default=None, description="defaults to observability.timezone"
    )
    silence_after: Duration = timedelta(minutes=30)
    silence_severity: Severity = "page"
    volume: VolumeDropSettings | Literal[False] = VolumeDropSettings()
    message_types: dict[MessageTypeName, MessageTypeFeedSettings] = Field(default_factory=dict)


class FeedWatch(NamedTuple):
    """A feed with everything inherited resolved: what one set of feed rules watches."""

    source: str
    message_type: str | None
    working_hours: list[WorkingHours]
    timezone: str
    silence_after: timedelta
    silence_severity: Severity
    volume: VolumeDropSettings | None


class NackRatioSettings(Section):
    """NACKs (AE/AR/CE/CR) over all acknowledgements sent to a source."""

    max_ratio: Ratio = 0.1
    per_source: dict[SourceName, Ratio] = Field(default_factory=dict)
    window: Duration = timedelta(minutes=15)
    min_messages: Annotated[int, Field(ge=1)] = 10
    pending_for: Duration = timedelta(minutes=5)
    severity: Severity = "page"


class DeliveryFailureSettings(Section):
    """Refused, failed and dead-lettered attempts over all attempts (holds excluded)."""

    max_ratio: Ratio = 0.2
    per_destination: dict[SnakeName, Ratio] = Field(default_factory=lambda: {"dmp": 0.1})
    window: Duration = timedelta(minutes=15)
    min_attempts: Annotated[int, Field(ge=1)] = 5
    pending_for: Duration = timedelta(minutes=10)
    severity: Severity = "page"


class DmpVsCrBioSettings(Section):
    """DMP submissions of CR-BIO delivered over lab results accepted (the 2024 drop-off).

    Patients without a qualified INS are held, not submitted: `min_ratio` must stay
    below the hospital's share of qualified INS (`pfi_patients_qualified_ins_ratio`).
    """

    enabled: bool = True
    lab_sources: list[SourceName] = Field(default_factory=lambda: ["SGL"], min_length=1)
    message_type: MessageTypeName = "ORU^R01"
    dmp_destination: SnakeName = "dmp"
    document_type: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9-]{1,15}$")] = "CR-BIO"
    min_ratio: Ratio = 0.5
    window: Duration = timedelta(hours=2)
    min_messages: Annotated[int, Field(ge=1)] = 20
    pending_for: Duration = timedelta(minutes=30)
    severity: Severity = "page"


class HoldAgeSettings(Section):
    """Holds left open too long (a report the patient should have received by now)."""

    max_age: Duration = timedelta(days=7)
    per_reason: dict[SnakeName, Duration] = Field(default_factory=dict)
    severity: Severity = "ticket"


class DeadLetterSettings(Section):
    pending_for: Duration = timedelta(minutes=5)
    severity: Severity = "ticket"


class OutboundHl7AlertSettings(Section):
    """HL7 replies to the hospital (ZAM, masking ORU) given up after every retry."""

    pending_for: Duration = timedelta(minutes=5)
    severity: Severity = "ticket"


class ConsumerLagSettings(Section):
    """A stage falling behind: lag above `min_records` and still growing over `window`."""

    min_records: Annotated[int, Field(ge=0)] = 100
    window: Duration = timedelta(minutes=10)
    pending_for: Duration = timedelta(minutes=10)
    severity: Severity = "page"


class CertificateSettings(Section):
    ticket_within: Duration = timedelta(days=30)
    page_within: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _page_is_closer(self) -> CertificateSettings:
        if self.page_within >= self.ticket_within:
            raise ValueError("page_within shorter than ticket_within")
        return self


class EngineHealthSettings(Section):
    """The engine itself: scraped, broker and database reachable, outbox draining."""

    scrape_job: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "pfi"
    down_for: Duration = timedelta(minutes=2)
    broker_down_for: Duration = timedelta(minutes=2)
    database_down_for: Duration = timedelta(minutes=1)
    outbox_max_age: Duration = timedelta(minutes=10)
    outbox_pending_for: Duration = timedelta(minutes=5)


class UnmappedLoincSettings(Section):
    enabled: bool = True
    pending_for: Duration = timedelta(hours=1)
    severity: Severity = "ticket"


def _weekdays(hours: str) -> list[WorkingHours]:
    return [WorkingHours.model_validate({"days": "mon-fri", "hours": [hours]})]


def _default_feeds() -> dict[str, FeedSettings]:
    """Defaults for the three default sources; a hospital states its own hours."""
    return {
        # ADT flows day and night (emergency admissions); letters (MDM) in office hours.
        "DPI": FeedSettings(
            working_hours="always",
            silence_after=timedelta(hours=2),
            message_types={
                "MDM": MessageTypeFeedSettings(
                    working_hours=_weekdays("09:00-18:00"), silence_after=timedelta(hours=2)
                )
            },
        ),
        # Validated lab results: weekdays and Saturday morning.
        "SGL": FeedSettings(
            working_hours=[
                *_weekdays("07:00-20:00"),
                WorkingHours.model_validate({"days": ["sat"], "hours": ["08:00-13:00"]}),
            ],
            silence_after=timedelta(minutes=30),
        ),
        "RIS": FeedSettings(
            working_hours=_weekdays("08:00-19:00"), silence_after=timedelta(hours=1)
        ),
    }


class ObservabilitySettings(Section):
    """What ops is alerted on, and when."""

    timezone: TimeZoneName = "Europe/Paris"
    runbook_url: str = Field(
        default="docs/runbook.md",
        description="base of every alert's runbook_url; the alert's anchor is appended",
    )
    evaluation_interval: Duration = timedelta(minutes=1)
    silence_lookback: Duration = Field(
        default=timedelta(days=1),
        description="how far back the silence rules look for the last message",
    )
    store_gauges_refresh: Duration = timedelta(seconds=30)
    feeds: dict[SourceName, FeedSettings] = Field(default_factory=_default_feeds)
    nack_ratio: NackRatioSettings = NackRatioSettings()
    delivery_failures: DeliveryFailureSettings = DeliveryFailureSettings()
    dmp_vs_crbio: DmpVsCrBioSettings = DmpVsCrBioSettings()
    hold_age: HoldAgeSettings = HoldAgeSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()
    outbound_hl7: OutboundHl7AlertSettings = OutboundHl7AlertSettings()
    consumer_lag: ConsumerLagSettings = ConsumerLagSettings()
    certificates: CertificateSettings = CertificateSettings()
    engine: EngineHealthSettings = EngineHealthSettings()
    unmapped_loinc: UnmappedLoincSettings = UnmappedLoincSettings()

    @field_validator("runbook_url")
    @classmethod
    def _no_anchor(cls, url: str) -> str:
        if "#" in url or not url.strip():
            raise ValueError("a URL without '#': each alert appends its own section anchor")
        return url.strip()

    @model_validator(mode="after")
    def _silences_fit_lookback(self) -> ObservabilitySettings:
        for watch in self.feed_watches():
            name = watch.source + (f" {watch.message_type}" if watch.message_type else "")
            if watch.silence_after >= self.silence_lookback:
                raise ValueError(
                    f"feed {name}: silence_after ({prometheus_duration(watch.silence_after)}) "
                    f"shorter than silence_lookback ({prometheus_duration(self.silence_lookback)})"
                )
            if watch.silence_after < self.evaluation_interval:
                raise ValueError(
                    f"feed {name}: silence_after at least evaluation_interval "
                    f"({prometheus_duration(self.evaluation_interval)})"
                )
        return self

    def feed_watches(self) -> list[FeedWatch]:
        """Every watched feed, source-wide first, with inherited settings resolved."""
        out: list[FeedWatch] = []
        for source, feed in self.feeds.items():
            timezone = feed.timezone or self.timezone
            volume = feed.volume or None
            out.append(
                FeedWatch(
                    source,
                    None,
                    feed.working_hours,
                    timezone,
                    feed.silence_after,
                    feed.silence_severity,
                    volume,
                )
            )
            for message_type, typed in feed.message_types.items():
                out.append(
                    FeedWatch(
                        source,
                        message_type,
                        feed.working_hours if typed.working_hours is None else typed.working_hours,
                        typed.timezone or timezone,
                        typed.silence_after or feed.silence_after,
                        typed.silence_severity or feed.silence_severity,
                        volume if typed.volume is None else (typed.volume or None),
                    )
                )
        return out

    def for_sources(self, configured: set[str]) -> ObservabilitySettings:
        """These settings fitted to the configured sources, or ValueError.

        What the file states explicitly must name configured sources; the built-in
        defaults (feeds DPI, SGL, RIS; lab source SGL) are dropped for sources the
        hospital does not have, so a pfi.yaml without an observability section works.
        """
        fitted = self
        if "feeds" not in self.model_fields_set:
            fitted = fitted.model_copy(
                update={"feeds": {k: v for k, v in self.feeds.items() if k in configured}}
            )
        dmp = fitted.dmp_vs_crbio
        if "lab_sources" not in dmp.model_fields_set:
            labs = [s for s in dmp.lab_sources if s in configured]
            dmp = dmp.model_copy(update={"lab_sources": labs or dmp.lab_sources})
            if not labs:
                dmp = dmp.model_copy(update={"enabled": False})
            fitted = fitted.model_copy(update={"dmp_vs_crbio": dmp})
        named = set(fitted.feeds) | set(fitted.nack_ratio.per_source)
        if fitted.dmp_vs_crbio.enabled:
            named |= set(fitted.dmp_vs_crbio.lab_sources)
        unknown = sorted(named - configured)
        if unknown:
            raise ValueError(
                f"observability names source(s) {', '.join(unknown)} that are not under "
                f"sources: (configured: {', '.join(sorted(configured)) or 'none'})"
            )
        return fitted

    def unwatched_sources(self, configured: set[str]) -> list[str]:
        """Configured sources without working hours: no silence or drop-off alert."""
        return sorted(configured - set(self.feeds))
