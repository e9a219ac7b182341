import datetime as dt

import pytest

from squall.core import timers
from squall.core.triggers import CRON_TIMER, DATE_TIMER, INTERVAL_TIMER
from squall.errors import InvalidInput


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_interval_adds_its_period():
    params = {"unit": "minutes", "delta": 5}
    assert timers.next_fire(INTERVAL_TIMER, params, 1000.0) == 1300.0


def test_date_timer_fires_once_in_its_zone():
    params = {"date": "2030-01-01 08:00:00", "timezone": "Europe/Paris"}
    when = ts("2030-01-01T07:00:00+00:00")
    assert timers.next_fire(DATE_TIMER, params, when - 10) == when
    assert timers.next_fire(DATE_TIMER, params, when) is None


def test_cron_smaller_fields_default_to_their_minimum():
    # hour=5 alone means 05:00:00 every day, as in APScheduler and StackStorm.
    params = {"hour": 5, "timezone": "UTC"}
    after = ts("2030-03-10T06:00:00+00:00")
    assert timers.next_fire(CRON_TIMER, params, after) == ts("2030-03-11T05:00:00+00:00")


def test_cron_does_not_repeat_the_same_second():
    params = {"second": "*/10"}
    first = timers.next_fire(CRON_TIMER, params, ts("2030-01-01T00:00:01+00:00"))
    assert first == ts("2030-01-01T00:00:10+00:00")
    assert timers.next_fire(CRON_TIMER, params, first) == first + 10


def test_cron_respects_time_zone_and_day_of_week():
    params = {"day_of_week": "mon", "hour": 9, "minute": 30, "timezone": "America/New_York"}
    after = ts("2030-01-01T00:00:00+00:00")  # a Tuesday
    nxt = timers.next_fire(CRON_TIMER, params, after)
    assert nxt == ts("2030-01-07T09:30:00-05:00")


@pytest.mark.parametrize(
    ("type_ref", "params", "message"),
    [
        (INTERVAL_TIMER, {"unit": "fortnights", "delta": 1}, "unit must be one of"),
        (INTERVAL_TIMER, {"unit": "seconds", "delta": 0}, "delta must be"),
        (DATE_TIMER, {"date": "tomorrow"}, "not an ISO 8601"),
        (CRON_TIMER, {"hour": 25}, "invalid cron"),
        (CRON_TIMER, {"minute": 1, "timezone": "Mars/Olympus"}, "unknown time zone"),
        (CRON_TIMER, {}, "needs at least one"),
    ],
)
def test_bad_schedules_are_refused(type_ref, params, message):
    with pytest.raises(InvalidInput, match=message):
        timers.check(type_ref, params)
