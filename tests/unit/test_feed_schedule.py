"""Working hours turned into spans of the week and PromQL."""

from datetime import UTC, datetime

import pytest

from pfi.config.observability import WorkingHours
from pfi.observability.feed_schedule import (
    WEEK_SECONDS,
    ActiveSpan,
    active_spans,
    describe_schedule,
    local_week_seconds,
    window_opened_at,
    window_start_expr,
)

H = 3600
D = 86400


def hours(*entries):
    return [WorkingHours.model_validate({"days": d, "hours": h}) for d, h in entries]


def test_weekday_hours_become_one_span_per_day():
    spans = active_spans(hours(("mon-fri", ["08:00-19:00"])))
    assert spans == tuple(
        ActiveSpan(d * D + 8 * H, d * D + 19 * H, d * D + 8 * H) for d in range(5)
    )


def test_touching_and_overlapping_ranges_merge_into_one_window():
    spans = active_spans(hours(("mon", ["08:00-12:00", "12:00-14:00", "13:00-18:00"])))
    assert spans == (ActiveSpan(8 * H, 18 * H, 8 * H),)


def test_overnight_hours_run_into_the_next_day():
    spans = active_spans(hours(("fri", ["22:00-06:00"])))
    assert spans == (ActiveSpan(4 * D + 22 * H, 5 * D + 6 * H, 4 * D + 22 * H),)


def test_a_window_across_the_end_of_the_week_opened_last_sunday():
    spans = active_spans(hours(("sun", ["22:00-06:00"])))
    sunday_22 = 6 * D + 22 * H
    assert spans == (
        ActiveSpan(0, 6 * H, sunday_22 - WEEK_SECONDS),
        ActiveSpan(sunday_22, WEEK_SECONDS, sunday_22),
    )
    assert window_opened_at(spans, 5 * H) == sunday_22 - WEEK_SECONDS
    assert window_opened_at(spans, 23 * H + 6 * D) == sunday_22
    assert window_opened_at(spans, 7 * H) is None


def test_always_has_no_window():
    assert active_spans(hours(("mon-sun", ["00:00-24:00"]))) is None
    assert active_spans(hours(("mon-sun", ["00:00-12:00", "12:00-24:00"]))) is None
    # every day 06:00 to 05:59 the next day leaves one minute a day uncovered: 7 windows,
    # the one opened on Sunday split at the end of the week
    spans = active_spans(hours(("mon-sun", ["06:00-05:59"])))
    assert spans is not None and len(spans) == 8
    assert spans[0] == ActiveSpan(0, 5 * H + 59 * 60, 6 * D + 6 * H - WEEK_SECONDS)


def test_local_week_seconds_follow_summer_time():
    # Monday 2024-07-01 06:30 UTC is 08:30 in Paris (UTC+2), 10:30 in La Réunion (UTC+4)
    instant = datetime(2024, 7, 1, 6, 30, tzinfo=UTC)
    assert local_week_seconds(instant, "Europe/Paris") == 8 * H + 30 * 60
    assert local_week_seconds(instant, "Indian/Reunion") == 10 * H + 30 * 60
    # Monday 2024-01-08 06:30 UTC is 07:30 in Paris (UTC+1)
    assert local_week_seconds(datetime(2024, 1, 8, 6, 30, tzinfo=UTC), "Europe/Paris") == (
        7 * H + 30 * 60
    )


def test_window_start_promql_names_every_span_and_subtracts_its_opening():
    spans = active_spans(hours(("sun", ["22:00-06:00"]), ("wed", ["08:00-18:00"])))
    expr = window_start_expr(spans, "W", 86400)
    assert expr.startswith("time() - max(")
    assert "(W < 21600) + 7200" in expr  # Monday morning: opened Sunday 22:00 last week
    assert "((W >= 201600) < 237600) - 201600" in expr  # Wednesday 08:00-18:00
    assert "(W >= 597600) - 597600" in expr
    assert window_start_expr(None, "W", 86400) == "vector(time() - 86400)"


def test_schedule_descriptions_read_like_a_timetable():
    assert (
        describe_schedule(
            hours(("mon-fri", ["07:00-20:00"]), ("sat", ["08:00-13:00"])), "Europe/Paris"
        )
        == "mon-fri 07:00-20:00, sat 08:00-13:00 Europe/Paris time"
    )
    assert describe_schedule(hours((["mon", "wed", "fri"], ["08:00-12:00"])), "UTC") == (
        "mon,wed,fri 08:00-12:00 UTC time"
    )
    assert describe_schedule(hours(("mon-sun", ["00:00-24:00"])), "UTC") == "around the clock"


def test_window_opened_at_refuses_a_whole_week():
    with pytest.raises(ValueError, match="whole week"):
        window_opened_at(None, 0)
