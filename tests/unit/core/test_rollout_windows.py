"""Tests for squall.core.rollouts.window_state: when time-window gates are open."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from squall.core.rollouts import WINDOW_OPENINGS_FOLLOWED, Window, parse_spec, window_state

HOUR = 3600.0
PARIS = "Europe/Paris"
# 2024-05-06 is a Monday.
WEEKNIGHTS = Window("0 22 * * 1-5", 6 * HOUR, PARIS)


def at(text: str, zone: str = "UTC") -> float:
    """The Unix time of ``YYYY-MM-DD HH:MM`` read in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_closed_until_the_schedule_fires_then_open_for_the_duration() -> None:
    assert window_state([WEEKNIGHTS], at("2024-05-06 21:59", PARIS)) == (
        False,
        at("2024-05-06 22:00", PARIS),
    )
    # Open from the very second it fires, closed from the second it closes.
    assert window_state([WEEKNIGHTS], at("2024-05-06 22:00", PARIS)) == (
        True,
        at("2024-05-07 04:00", PARIS),
    )
    assert window_state([WEEKNIGHTS], at("2024-05-07 03:59", PARIS) + 59.5) == (
        True,
        at("2024-05-07 04:00", PARIS),
    )
    assert window_state([WEEKNIGHTS], at("2024-05-07 04:00", PARIS)) == (
        False,
        at("2024-05-07 22:00", PARIS),
    )


def test_a_window_crosses_midnight() -> None:
    assert window_state([WEEKNIGHTS], at("2024-05-07 01:30", PARIS)) == (
        True,
        at("2024-05-07 04:00", PARIS),
    )
    # Friday's window runs into Saturday; Saturday's and Sunday's nights are closed.
    assert window_state([WEEKNIGHTS], at("2024-05-11 03:00", PARIS)) == (
        True,
        at("2024-05-11 04:00", PARIS),
    )
    assert window_state([WEEKNIGHTS], at("2024-05-11 23:00", PARIS)) == (
        False,
        at("2024-05-13 22:00", PARIS),
    )


def test_the_schedule_is_read_in_the_window_time_zone() -> None:
    now = at("2024-05-06 22:30")
    utc = Window("0 22 * * 1-5", 6 * HOUR, "UTC")
    tokyo = Window("0 22 * * 1-5", 6 * HOUR, "Asia/Tokyo")
    assert window_state([utc], now) == (True, at("2024-05-07 04:00"))
    # 22:30 UTC is 07:30 on Tuesday in Tokyo: closed until 22:00 there, 13:00 UTC.
    assert window_state([tokyo], now) == (False, at("2024-05-07 13:00"))
    # Paris is UTC+2 in summer and UTC+1 in winter.
    paris = Window("0 22 * * *", HOUR, PARIS)
    assert window_state([paris], at("2024-07-01 20:00"))[0] is True
    assert window_state([paris], at("2024-01-08 20:00")) == (False, at("2024-01-08 21:00"))


def test_several_windows_open_when_any_is() -> None:
    night = Window("0 22 * * *", 2 * HOUR)
    morning = Window("0 6 * * *", HOUR)
    assert window_state([night, morning], at("2024-05-06 23:00")) == (True, at("2024-05-07 00:00"))
    assert window_state([night, morning], at("2024-05-07 06:30")) == (True, at("2024-05-07 07:00"))
    # Closed: the earliest next opening.
    assert window_state([night, morning], at("2024-05-07 03:00")) == (False, at("2024-05-07 06:00"))
    assert window_state([night, morning], at("2024-05-07 12:00")) == (False, at("2024-05-07 22:00"))


def test_the_latest_close_among_open_windows() -> None:
    long = Window("0 22 * * *", 6 * HOUR)
    short = Window("0 23 * * *", HOUR)
    assert window_state([short, long], at("2024-05-06 23:30")) == (True, at("2024-05-07 04:00"))
    # Windows that overlap or touch are one stretch: open until the last closes.
    early = Window("0 20 * * *", 2 * HOUR)  # 20:00-22:00, then long from 22:00
    after = Window("0 3 * * *", 4 * HOUR)  # 03:00-07:00, while long is open
    assert window_state([early, long, after], at("2024-05-06 21:00")) == (
        True,
        at("2024-05-07 07:00"),
    )


def test_openings_of_one_window_that_overlap_are_one_stretch() -> None:
    # Every 4 hours for 5 hours: always open; followed for a while, then asked again.
    always = Window("0 */4 * * *", 5 * HOUR)
    now = at("2024-05-06 00:30")
    is_open, closes_at = window_state([always], now)
    assert is_open and closes_at == now - 30 * 60 + 5 * HOUR + WINDOW_OPENINGS_FOLLOWED * 4 * HOUR
    assert window_state([always], closes_at)[0] is True
    # Openings that touch: every 2 hours for 2 hours.
    touching = Window("0 */2 * * *", 2 * HOUR)
    is_open, closes_at = window_state([touching], now)
    assert is_open and closes_at > now + 24 * HOUR


def test_spring_forward_a_time_in_the_gap_fires_when_the_gap_ends() -> None:
    # 2024-03-31 in Paris: 02:00 CET is 03:00 CEST (01:00 UTC); 02:30 never comes,
    # and croniter fires at 03:00 CEST instead.
    window = Window("30 2 * * *", HOUR, PARIS)
    assert window_state([window], at("2024-03-31 00:59")) == (False, at("2024-03-31 01:00"))
    assert window_state([window], at("2024-03-31 01:15")) == (True, at("2024-03-31 02:00"))
    assert window_state([window], at("2024-03-31 02:00")) == (False, at("2024-04-01 02:30", PARIS))
    # The next day, 02:30 CEST as usual.
    assert window_state([window], at("2024-04-01 02:45", PARIS)) == (
        True,
        at("2024-04-01 03:30", PARIS),
    )


def test_fall_back_a_repeated_time_fires_twice() -> None:
    # 2024-10-27 in Paris: 03:00 CEST is 02:00 CET (01:00 UTC); 02:30 comes twice,
    # at 00:30 UTC and 01:30 UTC, and croniter fires at both.
    window = Window("30 2 * * *", 30 * 60, PARIS)
    assert window_state([window], at("2024-10-27 00:45")) == (True, at("2024-10-27 01:00"))
    assert window_state([window], at("2024-10-27 01:10")) == (False, at("2024-10-27 01:30"))
    assert window_state([window], at("2024-10-27 01:40")) == (True, at("2024-10-27 02:00"))


def test_the_duration_is_real_time_across_a_clock_change() -> None:
    # Saturday 22:00 CEST (20:00 UTC) for 6 hours: 02:00 UTC, 03:00 CET on the wall.
    window = Window("0 22 * * *", 6 * HOUR, PARIS)
    assert window_state([window], at("2024-10-27 01:00")) == (True, at("2024-10-27 02:00"))
    assert at("2024-10-27 02:00") == at("2024-10-27 03:00", PARIS)


def test_no_window_is_always_open_and_one_that_never_fires_is_never_open() -> None:
    assert window_state([], at("2024-05-06 12:00")) == (True, math.inf)
    never = Window("0 0 30 2 *", HOUR)  # not through parse_spec, which refuses it
    assert window_state([never], at("2024-05-06 12:00")) == (False, math.inf)
    daily = Window("0 13 * * *", HOUR)
    assert window_state([never, daily], at("2024-05-06 12:00")) == (False, at("2024-05-06 13:00"))


def test_macros_and_names_from_a_spec() -> None:
    spec = parse_spec(
        {
            "name": "r",
            "target": "all",
            "action": "pack.act",
            "batches": [1],
            "gates": [
                {"window": {"cron": "@daily", "duration": "1h", "timezone": PARIS}},
                {"window": {"cron": "0 12 * * SAT,sun", "duration": "30m"}},
                {"pause": "10m"},
            ],
        }
    )
    assert spec.windows == (
        Window("@daily", HOUR, PARIS),
        Window("0 12 * * SAT,sun", 30 * 60, "UTC"),
    )
    assert window_state(spec.windows, at("2024-05-07 00:30", PARIS)) == (
        True,
        at("2024-05-07 01:00", PARIS),
    )
    assert window_state(spec.windows, at("2024-05-11 12:10")) == (True, at("2024-05-11 12:30"))
    assert window_state(spec.windows, at("2024-05-11 13:00")) == (
        False,
        at("2024-05-12 00:00", PARIS),
    )


@pytest.mark.parametrize("zone", ["UTC", PARIS, "America/New_York", "Australia/Lord_Howe"])
def test_open_and_closed_alternate_across_clock_changes(zone: str) -> None:
    """Stepping from each answer's time to the next, through the clocks
    going forward and back (Lord Howe's go by half an hour): the state
    alternates, and every opening is one the schedule gives."""
    window = Window("30 1,2 * * *", 20 * 60, zone)
    for start, end in (("2024-03-01", "2024-04-15"), ("2024-09-25", "2024-11-10")):
        now = at(f"{start} 00:00", zone)
        last_state = None
        while now < at(f"{end} 00:00", zone):
            is_open, when = window_state([window], now)
            assert when > now and is_open != last_state
            if is_open:
                local = datetime.fromtimestamp(now, ZoneInfo(zone))
                assert (local.hour, local.minute) in ((1, 30), (2, 30), (3, 0))
                assert when - now == 20 * 60
            last_state, now = is_open, when
