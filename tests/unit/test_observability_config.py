"""The observability section of pfi.yaml: working hours, durations, zones, thresholds."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from pfi.config import ConfigError, load_settings
from pfi.config.observability import (
    ClockRange,
    ObservabilitySettings,
    parse_duration,
    prometheus_duration,
)
from pfi.config.timezone_rules import (
    EuSummerTime,
    FixedOffset,
    UnsupportedTimeZone,
    zone_rule,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("1h30m", 5400), ("7d", 604800), ("1w", 604800), ("90s", 90), (45, 45)],
)
def test_durations_are_read_the_prometheus_way(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("seconds", "text"), [(1800, "30m"), (90000, "1d1h"), (604800, "1w")])
def test_durations_are_written_back_in_their_shortest_form(seconds, text):
    assert prometheus_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("bad", ["30 minutes", "1x", "", "m30"])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError, match="duration like"):
        parse_duration(bad)


def feeds(**sgl):
    return {"feeds": {"SGL": {"working_hours": "always", **sgl}}}


def test_working_hours_accept_day_ranges_and_overnight_hours():
    settings = ObservabilitySettings.model_validate(
        feeds(
            working_hours=[
                {"days": ["mon-fri", "sun"], "hours": ["07:30-20:00"]},
                {"days": "fri-mon", "hours": ["22:00-06:00", "12:00-24:00"]},
            ]
        )
    )
    first, second = settings.feeds["SGL"].working_hours
    assert first.days == [0, 1, 2, 3, 4, 6]
    assert first.hours == [ClockRange(450, 1200)]
    assert second.days == [0, 4, 5, 6]
    assert second.hours == [ClockRange(1320, 360), ClockRange(720, 1440)]
    dumped = settings.model_dump(mode="json")["feeds"]["SGL"]["working_hours"][0]
    assert dumped == {"days": ["mon", "tue", "wed", "thu", "fri", "sun"], "hours": ["07:30-20:00"]}


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        (["25:00-19:00"], "hours 00-23"),
        (["08:00-08:00"], "not empty"),
        (["8h-19h"], "range like"),
        (["08:00-24:30"], "hours 00-23"),
    ],
)
def test_bad_hour_ranges_say_what_is_expected(hours, message):
    with pytest.raises(ValidationError, match=message):
        ObservabilitySettings.model_validate(
            feeds(working_hours=[{"days": ["mon"], "hours": hours}])
        )


def test_bad_days_say_what_is_expected():
    with pytest.raises(ValidationError, match="days among mon, tue"):
        ObservabilitySettings.model_validate(
            feeds(working_hours=[{"days": ["monday"], "hours": ["08:00-18:00"]}])
        )


def test_unknown_keys_are_errors():
    with pytest.raises(ValidationError, match="extra"):
        ObservabilitySettings.model_validate(feeds(silence_afer="30m"))


def test_zones_are_classified_for_promql():
    assert zone_rule("Europe/Paris") == EuSummerTime(3600)
    assert zone_rule("Indian/Reunion") == FixedOffset(4 * 3600)
    assert zone_rule("America/Cayenne") == FixedOffset(-3 * 3600)
    with pytest.raises(UnsupportedTimeZone, match="America/Miquelon"):
        zone_rule("America/Miquelon")  # North-American summer time
    with pytest.raises(UnsupportedTimeZone, match="IANA time zone"):
        zone_rule("Europe/Pariss")


def test_message_types_inherit_what_they_do_not_set():
    settings = ObservabilitySettings.model_validate(
        {
            "timezone": "Indian/Reunion",
            "feeds": {
                "SGL": {
                    "working_hours": [{"days": ["mon-fri"], "hours": ["07:00-19:00"]}],
                    "silence_after": "45m",
                    "volume": {"drop_ratio": 0.3},
                    "message_types": {
                        "ORU^R01": {"silence_after": "20m"},
                        "ADT": {"volume": False, "timezone": "Europe/Paris"},
                    },
                }
            },
        }
    )
    source, oru, adt = settings.feed_watches()
    assert (source.message_type, source.timezone, source.silence_after) == (
        None,
        "Indian/Reunion",
        timedelta(minutes=45),
    )
    assert oru.message_type == "ORU^R01"
    assert oru.silence_after == timedelta(minutes=20)
    assert oru.volume is not None and oru.volume.drop_ratio == 0.3
    assert oru.working_hours == source.working_hours
    assert adt.volume is None
    assert adt.timezone == "Europe/Paris"


def test_silence_must_fit_in_the_lookback():
    with pytest.raises(ValidationError, match=r"feed SGL: silence_after \(2d\) shorter"):
        ObservabilitySettings.model_validate(feeds(silence_after="2d"))


def test_short_test_windows_are_accepted():
    settings = ObservabilitySettings.model_validate(
        {
            "evaluation_interval": "15s",
            "feeds": {
                "SGL": {
                    "working_hours": "always",
                    "silence_after": "1m",
                    "volume": {"window": "1m", "season": "5m", "pending_for": "1m"},
                }
            },
            "nack_ratio": {"window": "1m", "pending_for": "1m"},
        }
    )
    assert settings.feed_watches()[0].silence_after == timedelta(minutes=1)


def test_feeds_must_name_configured_sources(tmp_path):
    path = tmp_path / "pfi.yaml"
    path.write_text(
        "observability:\n  feeds:\n    LAB2:\n      working_hours: always\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert "LAB2" in message and "not under sources" in message
    assert "configured: DPI, RIS, SGL" in message


def test_a_misspelt_key_points_at_its_line(tmp_path):
    path = tmp_path / "pfi.yaml"
    path.write_text(
        "observability:\n"
        "  feeds:\n"
        "    SGL:\n"
        "      working_hours: always\n"
        "      silense_after: 30m\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert f"{path}:5: observability.feeds.SGL.silense_after: unknown key" in str(caught.value)


def test_without_an_observability_section_defaults_fit_the_configured_sources(tmp_path):
    path = tmp_path / "pfi.yaml"
    path.write_text(
        "sources:\n"
        "  DPI: {port: 3000, allowed_message_types: [ADT]}\n"
        "  LABO: {port: 3001, allowed_message_types: [ORU^R01]}\n",
        encoding="utf-8",
    )
    settings = load_settings(path, environ={})
    observability = settings.observability
    assert list(observability.feeds) == ["DPI"]
    assert observability.dmp_vs_crbio.enabled is False  # the default lab source SGL is absent
    assert observability.unwatched_sources(set(settings.sources)) == ["LABO"]


def test_the_render_command_warns_about_unwatched_sources(tmp_path):
    from typer.testing import CliRunner

    from pfi.cli import app

    path = tmp_path / "pfi.yaml"
    path.write_text(
        "sources:\n"
        "  LABO: {port: 3001, allowed_message_types: [ORU^R01]}\n"
        "observability:\n"
        "  dmp_vs_crbio: {lab_sources: [LABO]}\n",
        encoding="utf-8",
    )
    out = tmp_path / "alerts.yml"
    result = CliRunner().invoke(
        app, ["observability", "render-alerts", "-c", str(path), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "source LABO has no working hours" in result.output
    assert 'source=~"LABO"' in out.read_text(encoding="utf-8")
