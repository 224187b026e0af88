"""dripper.schedule.slots: calendar days, `at` times, send windows, spread and DST, in tables."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.schedule.offsets import Offset, SendWindow, parse_offset, parse_quiet_hours
from dripper.schedule.slots import (
    WindowNeverOpensError,
    _step_slot,
    expires_at,
    is_allowed,
    local_iso,
    next_slot,
    spread_seconds,
    step_due,
    step_dues,
    window_ever_opens,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
SANTIAGO = ZoneInfo("America/Santiago")
SYDNEY = ZoneInfo("Australia/Sydney")
ZONES = [BERLIN, NEW_YORK, LORD_HOWE, KATHMANDU, SANTIAGO, SYDNEY, ZoneInfo("UTC")]

WEEKDAYS_9 = SendWindow(send_at="0 9 * * 1-5", spread=timedelta(0))
# Tuesday 2026-03-03 17:00 in Berlin (CET, +01:00).
TUESDAY_17 = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(send_at: str, *quiet: str, spread: timedelta = timedelta(0), **kw: object) -> SendWindow:
    return SendWindow(
        send_at=send_at,
        spread=spread,
        quiet_hours=tuple(parse_quiet_hours(q) for q in quiet),
        **kw,  # type: ignore[arg-type]
    )


# --- DST: cron slots --------------------------------------------------------------------------

CRON_DST = [
    # zone, send_at, earliest (UTC), expected (UTC), expected (local)
    pytest.param(
        BERLIN,
        "30 2 * * *",
        "2026-03-28T12:00",
        "2026-03-29T01:00",
        "2026-03-29T03:00:00+02:00",
        id="berlin-spring-gap-moves-to-0300",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * *",
        "2026-10-24T12:00",
        "2026-10-25T00:30",
        "2026-10-25T02:30:00+02:00",
        id="berlin-autumn-overlap-first-occurrence",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * *",
        "2026-10-25T00:31",
        "2026-10-26T01:30",
        "2026-10-26T02:30:00+01:00",
        id="berlin-autumn-second-occurrence-does-not-fire",
    ),
    pytest.param(
        BERLIN,
        "*/30 * * * *",
        "2026-10-25T01:10",
        "2026-10-25T02:00",
        "2026-10-25T03:00:00+01:00",
        id="berlin-earliest-inside-repeated-hour",
    ),
    pytest.param(
        BERLIN,
        "*/15 * * * *",
        "2026-03-29T00:50",
        "2026-03-29T01:00",
        "2026-03-29T03:00:00+02:00",
        id="berlin-gap-firings-collapse-to-one",
    ),
    pytest.param(
        BERLIN,
        "*/15 * * * *",
        "2026-03-29T01:01",
        "2026-03-29T01:15",
        "2026-03-29T03:15:00+02:00",
        id="berlin-after-gap",
    ),
    pytest.param(
        NEW_YORK,
        "30 2 * * *",
        "2026-03-07T12:00",
        "2026-03-08T07:00",
        "2026-03-08T03:00:00-04:00",
        id="new-york-spring-gap",
    ),
    pytest.param(
        NEW_YORK,
        "30 1 * * *",
        "2026-10-31T12:00",
        "2026-11-01T05:30",
        "2026-11-01T01:30:00-04:00",
        id="new-york-autumn-overlap-first-occurrence",
    ),
    pytest.param(
        NEW_YORK,
        "30 1 * * *",
        "2026-11-01T05:31",
        "2026-11-02T06:30",
        "2026-11-02T01:30:00-05:00",
        id="new-york-autumn-second-occurrence-does-not-fire",
    ),
    pytest.param(
        LORD_HOWE,
        "15 2 * * *",
        "2026-10-03T00:00",
        "2026-10-03T15:30",
        "2026-10-04T02:30:00+11:00",
        id="lord-howe-spring-30-minute-gap",
    ),
    pytest.param(
        LORD_HOWE,
        "45 1 * * *",
        "2026-04-04T00:00",
        "2026-04-04T14:45",
        "2026-04-05T01:45:00+11:00",
        id="lord-howe-autumn-30-minute-overlap",
    ),
    pytest.param(
        LORD_HOWE,
        "45 1 * * *",
        "2026-04-04T14:46",
        "2026-04-05T15:15",
        "2026-04-06T01:45:00+10:30",
        id="lord-howe-autumn-second-occurrence-does-not-fire",
    ),
    pytest.param(
        KATHMANDU,
        "0 9 * * 1-5",
        "2026-03-06T04:00",
        "2026-03-09T03:15",
        "2026-03-09T09:00:00+05:45",
        id="kathmandu-friday-after-nine-goes-to-monday",
    ),
    pytest.param(
        SANTIAGO,
        "30 0 * * *",
        "2026-09-05T12:00",
        "2026-09-06T04:00",
        "2026-09-06T01:00:00-03:00",
        id="santiago-spring-gap-at-midnight",
    ),
    pytest.param(
        SANTIAGO,
        "30 23 * * *",
        "2026-04-04T12:00",
        "2026-04-05T02:30",
        "2026-04-04T23:30:00-03:00",
        id="santiago-autumn-overlap-before-midnight",
    ),
    pytest.param(
        SANTIAGO,
        "30 23 * * *",
        "2026-04-05T02:31",
        "2026-04-06T03:30",
        "2026-04-05T23:30:00-04:00",
        id="santiago-autumn-second-occurrence-does-not-fire",
    ),
    pytest.param(
        SYDNEY,
        "30 2 * * *",
        "2026-10-03T00:00",
        "2026-10-03T16:00",
        "2026-10-04T03:00:00+11:00",
        id="sydney-spring-gap",
    ),
    pytest.param(
        SYDNEY,
        "30 2 * * *",
        "2026-04-04T00:00",
        "2026-04-04T15:30",
        "2026-04-05T02:30:00+11:00",
        id="sydney-autumn-overlap-first-occurrence",
    ),
]


@pytest.mark.parametrize(("tz", "send_at", "earliest", "expected_utc", "expected_local"), CRON_DST)
def test_cron_slot_across_dst(
    tz: ZoneInfo, send_at: str, earliest: str, expected_utc: str, expected_local: str
) -> None:
    due = next_slot(utc(earliest), window(send_at), tz, "enrollment:1")
    assert due == utc(expected_utc)
    assert local_iso(due, tz) == expected_local


# --- DST: explicit `at` times -------------------------------------------------------------------

AT_DST = [
    # zone, anchor (UTC), offset, expected (UTC), expected (local)
    pytest.param(
        BERLIN,
        "2026-03-28T10:00",
        "1d 02:30",
        "2026-03-29T01:00",
        "2026-03-29T03:00:00+02:00",
        id="berlin-spring-gap",
    ),
    pytest.param(
        BERLIN,
        "2026-10-24T10:00",
        "1d 02:30",
        "2026-10-25T00:30",
        "2026-10-25T02:30:00+02:00",
        id="berlin-autumn-overlap",
    ),
    pytest.param(
        NEW_YORK,
        "2026-03-07T15:00",
        "1d 02:30",
        "2026-03-08T07:00",
        "2026-03-08T03:00:00-04:00",
        id="new-york-spring-gap",
    ),
    pytest.param(
        NEW_YORK,
        "2026-10-31T15:00",
        "1d 01:30",
        "2026-11-01T05:30",
        "2026-11-01T01:30:00-04:00",
        id="new-york-autumn-overlap",
    ),
    pytest.param(
        LORD_HOWE,
        "2026-10-03T00:00",
        "1d 02:10",
        "2026-10-03T15:30",
        "2026-10-04T02:30:00+11:00",
        id="lord-howe-spring-gap",
    ),
    pytest.param(
        LORD_HOWE,
        "2026-04-04T00:00",
        "1d 01:40",
        "2026-04-04T14:40",
        "2026-04-05T01:40:00+11:00",
        id="lord-howe-autumn-overlap",
    ),
    pytest.param(
        KATHMANDU,
        "2026-03-03T11:15",
        "3d 14:00",
        "2026-03-06T08:15",
        "2026-03-06T14:00:00+05:45",
        id="kathmandu",
    ),
    pytest.param(
        SANTIAGO,
        "2026-09-05T12:00",
        "1d 00:30",
        "2026-09-06T04:00",
        "2026-09-06T01:00:00-03:00",
        id="santiago-spring-gap",
    ),
    pytest.param(
        SANTIAGO,
        "2026-04-04T12:00",
        "0d 23:30",
        "2026-04-05T02:30",
        "2026-04-04T23:30:00-03:00",
        id="santiago-autumn-overlap",
    ),
    pytest.param(
        SYDNEY,
        "2026-10-03T00:00",
        "1d 02:30",
        "2026-10-03T16:00",
        "2026-10-04T03:00:00+11:00",
        id="sydney-spring-gap",
    ),
    pytest.param(
        SYDNEY,
        "2026-04-04T00:00",
        "1d 02:30",
        "2026-04-04T15:30",
        "2026-04-05T02:30:00+11:00",
        id="sydney-autumn-overlap",
    ),
]


@pytest.mark.parametrize(("tz", "anchor", "offset", "expected_utc", "expected_local"), AT_DST)
def test_at_time_across_dst(
    tz: ZoneInfo, anchor: str, offset: str, expected_utc: str, expected_local: str
) -> None:
    any_hour = window("0 * * * *", spread=timedelta(minutes=30))
    due = step_due(utc(anchor), parse_offset(offset), any_hour, tz, "enrollment:1")
    assert due == utc(expected_utc)
    assert local_iso(due, tz) == expected_local


# --- calendar days and elapsed time ---------------------------------------------------------------

CALENDAR = [
    # anchor (UTC), offset, expected local due in Berlin with "0 9 * * 1-5"
    pytest.param("2026-03-03T16:00", "1d", "2026-03-04T09:00:00+01:00", id="tue-17h-1d-is-wed"),
    pytest.param("2026-03-03T16:00", "0d", "2026-03-04T09:00:00+01:00", id="0d-next-slot"),
    pytest.param("2026-03-03T07:00", "0d", "2026-03-03T09:00:00+01:00", id="0d-same-morning"),
    pytest.param("2026-03-03T08:00", "0d", "2026-03-03T09:00:00+01:00", id="0d-slot-at-anchor"),
    pytest.param("2026-03-03T16:00", "2d", "2026-03-05T09:00:00+01:00", id="2d-is-thu"),
    pytest.param("2026-03-03T16:00", "2w", "2026-03-17T09:00:00+01:00", id="2w"),
    pytest.param("2026-03-03T16:00", "1w 2d", "2026-03-12T09:00:00+01:00", id="1w-2d"),
    pytest.param("2026-03-03T22:30", "1d", "2026-03-04T09:00:00+01:00", id="ends-2330-1d-wed"),
    pytest.param("2026-03-03T23:30", "1d", "2026-03-05T09:00:00+01:00", id="local-date-is-wed"),
    pytest.param("2026-03-06T16:00", "1d", "2026-03-09T09:00:00+01:00", id="fri-1d-is-mon"),
    pytest.param("2026-03-28T16:00", "2d", "2026-03-30T09:00:00+02:00", id="days-not-48h-dst"),
    pytest.param("2026-03-03T16:00", "12h", "2026-03-04T09:00:00+01:00", id="12h-elapsed"),
    pytest.param("2026-03-03T16:00", "90m", "2026-03-04T09:00:00+01:00", id="90m-elapsed"),
    pytest.param("2026-03-03T16:00", "1d 12h", "2026-03-05T09:00:00+01:00", id="1d-12h-elapsed"),
    pytest.param("2026-03-04T06:00", "1d 12h", "2026-03-06T09:00:00+01:00", id="36h-after-07h"),
]


@pytest.mark.parametrize(("anchor", "offset", "expected_local"), CALENDAR)
def test_calendar_days_and_elapsed_time(anchor: str, offset: str, expected_local: str) -> None:
    due = step_due(utc(anchor), parse_offset(offset), WEEKDAYS_9, BERLIN, "enrollment:1")
    assert local_iso(due, BERLIN) == expected_local


def test_calendar_day_whose_midnight_does_not_exist() -> None:
    # Santiago skips 2026-09-06 00:00-01:00: the day starts at 01:00 local.
    every_half_hour = window("*/30 * * * *")
    due = step_due(utc("2026-09-05T15:00"), parse_offset("1d"), every_half_hour, SANTIAGO, "k")
    assert local_iso(due, SANTIAGO) == "2026-09-06T01:00:00-03:00"


def test_hours_offsets_go_to_the_next_open_slot() -> None:
    hourly = window("0 * * * *", "20:00-08:00")
    assert local_iso(step_due(TUESDAY_17, parse_offset("90m"), hourly, BERLIN, "k"), BERLIN) == (
        "2026-03-03T19:00:00+01:00"
    )
    assert local_iso(step_due(TUESDAY_17, parse_offset("4h"), hourly, BERLIN, "k"), BERLIN) == (
        "2026-03-04T08:00:00+01:00"
    )


# --- `at` offsets -----------------------------------------------------------------------------

AT_TIMES = [
    # offset, window, expected local (anchor Tuesday 17:00 Berlin)
    pytest.param("3d 14:00", WEEKDAYS_9, "2026-03-06T14:00:00+01:00", id="cron-not-applied"),
    pytest.param("4d 10:00", WEEKDAYS_9, "2026-03-07T10:00:00+01:00", id="saturday-honoured"),
    pytest.param("0d 18:00", WEEKDAYS_9, "2026-03-03T18:00:00+01:00", id="same-day-after-end"),
    pytest.param("0d 17:00", WEEKDAYS_9, "2026-03-03T17:00:00+01:00", id="exactly-at-anchor"),
    pytest.param("0d 09:00", WEEKDAYS_9, "2026-03-04T09:00:00+01:00", id="before-anchor-next-slot"),
    pytest.param(
        "1d 21:00",
        window("0 9 * * 1-5", "20:00-08:00"),
        "2026-03-05T09:00:00+01:00",
        id="in-quiet-hours-next-slot",
    ),
    pytest.param(
        "1d 14:00",
        window("0 9 * * 1-5", skip_dates=frozenset({date(2026, 3, 4)})),
        "2026-03-05T09:00:00+01:00",
        id="on-skip-date-next-slot",
    ),
]


@pytest.mark.parametrize(("offset", "send_window", "expected_local"), AT_TIMES)
def test_at_offsets(offset: str, send_window: SendWindow, expected_local: str) -> None:
    due = step_due(TUESDAY_17, parse_offset(offset), send_window, BERLIN, "enrollment:7")
    assert local_iso(due, BERLIN) == expected_local


def test_at_time_is_not_spread_but_a_fallback_slot_is() -> None:
    spread = SendWindow(send_at="0 9 * * 1-5", spread=timedelta(minutes=30))
    keys = [f"enrollment:{n}" for n in range(50)]
    exact = {step_due(TUESDAY_17, parse_offset("3d 14:00"), spread, BERLIN, k) for k in keys}
    assert exact == {utc("2026-03-06T13:00")}
    moved = {step_due(TUESDAY_17, parse_offset("0d 09:00"), spread, BERLIN, k) for k in keys}
    assert len(moved) > 40
    assert all(utc("2026-03-04T08:00") <= due < utc("2026-03-04T08:30") for due in moved)


# --- quiet hours, skip dates, weekends ------------------------------------------------------------

QUIET = [
    # send_at, quiet hours, earliest local (Berlin, March), expected local
    pytest.param("0 * * * *", ["22:00-07:00"], "2026-03-03T21:30", "2026-03-04T07:00", id="wrap"),
    pytest.param("0 * * * *", ["22:00-07:00"], "2026-03-03T23:10", "2026-03-04T07:00", id="late"),
    pytest.param("0 * * * *", ["22:00-07:00"], "2026-03-04T02:00", "2026-03-04T07:00", id="early"),
    pytest.param("0 * * * *", ["22:00-07:00"], "2026-03-03T21:00", "2026-03-03T21:00", id="edge"),
    pytest.param(
        "0 * * * *",
        ["12:00-13:00", "22:00-07:00"],
        "2026-03-03T11:30",
        "2026-03-03T13:00",
        id="two-spans",
    ),
    pytest.param(
        "*/5 * * * *",
        ["12:00-13:00", "12:30-14:00"],
        "2026-03-03T11:58",
        "2026-03-03T14:00",
        id="overlapping-spans",
    ),
    pytest.param("0 9 * * 1-5", [], "2026-03-06T09:01", "2026-03-09T09:00", id="weekend"),
    pytest.param("0 9 * * 1-5", [], "2026-03-07T08:00", "2026-03-09T09:00", id="saturday"),
]


@pytest.mark.parametrize(("send_at", "quiet", "earliest", "expected"), QUIET)
def test_quiet_hours_and_weekends(
    send_at: str, quiet: list[str], earliest: str, expected: str
) -> None:
    start = datetime.fromisoformat(earliest).replace(tzinfo=BERLIN)
    due = next_slot(start, window(send_at, *quiet), BERLIN, "k")
    assert due == datetime.fromisoformat(expected).replace(tzinfo=BERLIN)


def test_a_run_of_holidays_is_skipped() -> None:
    holidays = frozenset(date(2026, 12, 24) + timedelta(days=n) for n in range(9))  # to Jan 1
    send_window = window("0 9 * * 1-5", skip_dates=holidays)
    due = next_slot(datetime(2026, 12, 23, 12, tzinfo=BERLIN), send_window, BERLIN, "k")
    assert local_iso(due, BERLIN) == "2027-01-04T09:00:00+01:00"  # Jan 2-3 is a weekend


def test_a_calendar_day_offset_onto_a_holiday_moves_on() -> None:
    send_window = window("0 9 * * 1-5", skip_dates=frozenset({date(2026, 3, 4), date(2026, 3, 5)}))
    due = step_due(TUESDAY_17, parse_offset("1d"), send_window, BERLIN, "k")
    assert local_iso(due, BERLIN) == "2026-03-06T09:00:00+01:00"


# --- spread ---------------------------------------------------------------------------------------


def test_spread_seconds_is_deterministic_and_in_range() -> None:
    spread = timedelta(minutes=30)
    assert spread_seconds("enrollment:42", spread) == spread_seconds("enrollment:42", spread)
    values = [spread_seconds(f"enrollment:{n}", spread) for n in range(10_000)]
    assert all(0 <= value < 1800 for value in values)
    per_minute = Counter(value // 60 for value in values)
    assert len(per_minute) == 30
    assert max(per_minute.values()) < 2 * 10_000 / 30
    assert len(set(values)) > 1700
    assert max(Counter(values).values()) < 20
    assert spread_seconds("enrollment:42", timedelta(0)) == 0
    assert spread_seconds("enrollment:42", timedelta(milliseconds=500)) == 0


def test_spread_is_stable_per_key_across_steps_and_calls() -> None:
    spread = SendWindow(send_at="0 9 * * 1-5", spread=timedelta(minutes=30))
    first = step_due(TUESDAY_17, parse_offset("1d"), spread, BERLIN, "enrollment:42")
    again = step_due(TUESDAY_17, parse_offset("1d"), spread, BERLIN, "enrollment:42")
    later = step_due(TUESDAY_17, parse_offset("1w"), spread, BERLIN, "enrollment:42")
    assert first == again
    assert first - utc("2026-03-04T08:00") == later - utc("2026-03-10T08:00")
    assert first - utc("2026-03-04T08:00") == timedelta(
        seconds=spread_seconds("enrollment:42", timedelta(minutes=30))
    )


SPREAD_LIMITS = [
    # send_at, quiet, spread, earliest local (Berlin), allowed local [start, end)
    pytest.param(
        "0 9 * * *",
        ["10:00-12:00"],
        timedelta(hours=2),
        "2026-03-03T08:00",
        ("2026-03-03T09:00", "2026-03-03T10:00"),
        id="shrunk-before-quiet-hours",
    ),
    pytest.param(
        "30 23 * * *",
        [],
        timedelta(hours=2),
        "2026-03-03T08:00",
        ("2026-03-03T23:30", "2026-03-04T00:00"),
        id="shrunk-before-midnight",
    ),
    pytest.param(
        "30 19 * * *",
        ["20:00-08:00"],
        timedelta(hours=2),
        "2026-03-03T08:00",
        ("2026-03-03T19:30", "2026-03-03T20:00"),
        id="shrunk-before-wrapping-quiet-hours",
    ),
    pytest.param(
        "0 9 * * *",
        [],
        timedelta(minutes=30),
        "2026-03-03T08:00",
        ("2026-03-03T09:00", "2026-03-03T09:30"),
        id="full-spread",
    ),
]


@pytest.mark.parametrize(("send_at", "quiet", "spread", "earliest", "bounds"), SPREAD_LIMITS)
def test_spread_never_leaves_the_open_part_of_the_day(
    send_at: str, quiet: list[str], spread: timedelta, earliest: str, bounds: tuple[str, str]
) -> None:
    send_window = window(send_at, *quiet, spread=spread)
    start = datetime.fromisoformat(earliest).replace(tzinfo=BERLIN)
    low, high = (datetime.fromisoformat(b).replace(tzinfo=BERLIN) for b in bounds)
    dues = [next_slot(start, send_window, BERLIN, f"enrollment:{n}") for n in range(2000)]
    assert all(low <= due < high for due in dues)
    assert max(dues) - min(dues) > (high - low) * 0.95  # shrunk by scaling, not clipping
    assert all(is_allowed(due, send_window, BERLIN) for due in dues)


def test_spread_stops_before_a_skip_date() -> None:
    send_window = window(
        "30 23 * * *", spread=timedelta(hours=3), skip_dates=frozenset({date(2026, 3, 4)})
    )
    dues = [next_slot(utc("2026-03-03T12:00"), send_window, BERLIN, f"k{n}") for n in range(500)]
    assert all(due.astimezone(BERLIN).date() == date(2026, 3, 3) for due in dues)


def test_spread_stops_at_quiet_hours_in_the_repeated_autumn_hour() -> None:
    # Slot 02:50 CEST; ten minutes later the clock reads 02:00 CET, inside the quiet span.
    send_window = window("50 2 * * *", "02:00-02:30", spread=timedelta(hours=1))
    dues = [next_slot(utc("2026-10-24T12:00"), send_window, BERLIN, f"k{n}") for n in range(500)]
    assert all(utc("2026-10-25T00:50") <= due < utc("2026-10-25T01:00") for due in dues)


def test_spread_across_the_spring_gap_keeps_real_minutes() -> None:
    send_window = window("50 1 * * *", spread=timedelta(minutes=30))
    dues = [next_slot(utc("2026-03-28T12:00"), send_window, BERLIN, f"k{n}") for n in range(500)]
    assert all(utc("2026-03-29T00:50") <= due < utc("2026-03-29T01:20") for due in dues)
    assert max(dues) >= utc("2026-03-29T01:15")  # 03:15 CEST and later: the spread is not cut


# --- never opens, errors, helpers -----------------------------------------------------------------


def test_a_window_that_never_opens_raises_a_clear_error() -> None:
    closed = window("0 21 * * *", "20:00-08:00")
    assert not window_ever_opens(closed)
    with pytest.raises(WindowNeverOpensError, match=r"never opens.*'0 21 \* \* \*'.*20:00-08:00"):
        step_due(TUESDAY_17, parse_offset("1d"), closed, BERLIN, "k")
    assert issubclass(WindowNeverOpensError, ValueError)


def test_window_ever_opens() -> None:
    assert window_ever_opens(SendWindow())
    assert window_ever_opens(window("0 7 * * *", "20:00-08:00")) is False
    assert window_ever_opens(window("0 8 * * *", "20:00-08:00"))
    assert not window_ever_opens(window("0 0 30 2 *"))
    with pytest.raises(ValueError, match="five fields"):
        window_ever_opens(window("0 9 * *"))
    with pytest.raises(ValueError, match="cannot read send_at"):
        window_ever_opens(window("0 25 * * *"))


def test_skip_dates_that_cover_every_slot_for_two_years_raise() -> None:
    christmas_only = window(
        "0 9 25 12 *", skip_dates=frozenset({date(2026, 12, 25), date(2027, 12, 25)})
    )
    assert window_ever_opens(christmas_only)
    with pytest.raises(WindowNeverOpensError):
        next_slot(utc("2026-12-01T00:00"), christmas_only, BERLIN, "k")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        step_due(datetime(2026, 3, 3, 17), parse_offset("1d"), WEEKDAYS_9, BERLIN, "k")
    with pytest.raises(ValueError, match="no time zone"):
        next_slot(datetime(2026, 3, 3, 17), WEEKDAYS_9, BERLIN, "k")


def test_expires_at() -> None:
    due = utc("2026-03-04T08:00")
    assert expires_at(due, WEEKDAYS_9) is None
    expiring = SendWindow(expire_after=timedelta(days=2))
    assert expires_at(due, expiring) == utc("2026-03-06T08:00")


def test_local_iso() -> None:
    assert local_iso(utc("2026-03-09T03:15"), KATHMANDU) == "2026-03-09T09:00:00+05:45"
    assert local_iso(utc("2026-04-05T15:15"), LORD_HOWE) == "2026-04-06T01:45:00+10:30"


def test_step_dues_matches_step_due() -> None:
    offsets = [parse_offset(text) for text in ["0d", "1d", "3d 14:00", "12h", "2w", "0d 09:00"]]
    spread = SendWindow(send_at="0 9 * * 1-5", spread=timedelta(minutes=30))
    for key in ["enrollment:1", "enrollment:2", "enrollment:3"]:
        assert step_dues(TUESDAY_17, offsets, spread, BERLIN, key) == [
            step_due(TUESDAY_17, offset, spread, BERLIN, key) for offset in offsets
        ]


# --- properties -----------------------------------------------------------------------------------

WINDOWS = [
    SendWindow(),
    window("0 9 * * 1-5", "20:00-08:00", spread=timedelta(minutes=45)),
    window("30 2 * * *", spread=timedelta(hours=2)),
    window("*/20 * * * *", "22:00-07:00", "12:00-13:30", spread=timedelta(minutes=90)),
    window("15 0,12 * * *", "23:00-01:00", spread=timedelta(hours=3)),
    window(
        "0 18 * * 1-5",
        "18:20-18:40",
        spread=timedelta(hours=1),
        skip_dates=frozenset(date(2026, 12, 20) + timedelta(days=n) for n in range(20)),
    ),
]

offsets = st.one_of(
    st.builds(Offset, st.integers(0, 60).map(lambda n: timedelta(days=n))),
    st.builds(
        Offset,
        st.integers(0, 60).map(lambda n: timedelta(days=n)),
        st.builds(time, st.integers(0, 23), st.sampled_from([0, 10, 15, 30, 45, 59])),
    ),
    st.builds(Offset, st.integers(0, 14 * 24 * 60).map(lambda n: timedelta(minutes=n))),
)
anchors = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


def _is_cron_slot(moment: datetime, send_at: str, tz: ZoneInfo) -> bool:
    """A firing on the local clock, or the end of a DST gap a firing fell into."""
    local = moment.astimezone(tz).replace(tzinfo=None)
    if croniter.match(send_at, local):
        return True
    just_before = (moment - timedelta(minutes=1)).astimezone(tz)
    return just_before.utcoffset() != moment.astimezone(tz).utcoffset()


@settings(max_examples=300, deadline=None)
@given(
    anchor=anchors,
    offset=offsets,
    send_window=st.sampled_from(WINDOWS),
    tz=st.sampled_from(ZONES),
    key=st.text(min_size=1, max_size=20),
)
def test_due_is_after_the_anchor_allowed_and_deterministic(
    anchor: datetime, offset: Offset, send_window: SendWindow, tz: ZoneInfo, key: str
) -> None:
    due = step_due(anchor, offset, send_window, tz, key)
    assert due >= anchor
    assert due.tzinfo is UTC
    assert is_allowed(due, send_window, tz)
    assert due == step_due(anchor.astimezone(tz), offset, send_window, tz, key)
    assert [due] == step_dues(anchor, [offset], send_window, tz, key)

    unspread = step_due(anchor, offset, without_spread(send_window), tz, key)
    assert unspread <= due < unspread + max(send_window.spread, timedelta(seconds=1))
    assert due.astimezone(tz).date() == unspread.astimezone(tz).date()
    if offset.at is None or due.astimezone(tz).time() != offset.at:
        assert _is_cron_slot(unspread, send_window.send_at, tz)
    # The cache stands one anchor in for a whole minute: the exact anchor must agree.
    assert step_due(anchor, offset, send_window, tz, key) == _uncached_due(
        anchor, offset, send_window, tz, key
    )


def without_spread(send_window: SendWindow) -> SendWindow:
    return dataclasses.replace(send_window, spread=timedelta(0))


def _uncached_due(
    anchor: datetime, offset: Offset, send_window: SendWindow, tz: ZoneInfo, key: str
) -> datetime:
    slot, limit = _step_slot.__wrapped__(anchor, offset, send_window, tz)
    return slot + timedelta(seconds=spread_seconds(key, timedelta(seconds=limit)))


@settings(max_examples=200, deadline=None)
@given(
    earliest=anchors,
    send_window=st.sampled_from(WINDOWS),
    tz=st.sampled_from(ZONES),
    key=st.text(min_size=1, max_size=20),
)
def test_next_slot_is_the_first_open_firing(
    earliest: datetime, send_window: SendWindow, tz: ZoneInfo, key: str
) -> None:
    due = next_slot(earliest, send_window, tz, key)
    assert due >= earliest
    assert is_allowed(due, send_window, tz)
    assert due == next_slot(earliest, send_window, tz, key)
    unspread = next_slot(earliest, without_spread(send_window), tz, key)
    assert _is_cron_slot(unspread, send_window.send_at, tz)
    # No open firing was passed over: walk the cron on the local clock up to the slot.
    firings = croniter(send_window.send_at, earliest.astimezone(tz).replace(tzinfo=None))
    for _ in range(500):
        wall = firings.get_next(datetime)
        moment = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: the first occurrence
        if moment >= unspread:
            break
        exists = moment.astimezone(tz).replace(tzinfo=None) == wall
        if exists and moment >= earliest:
            assert not is_allowed(moment, send_window, tz), f"open slot {wall} passed over"
