"""When timers fire: the schedules of StackStorm's three timer trigger types.

* ``core.st2.IntervalTimer`` — every ``delta`` ``unit`` (weeks ... seconds),
* ``core.st2.DateTimer`` — once at ``date`` (ISO 8601, in ``timezone``),
* ``core.st2.CronTimer`` — APScheduler cron fields (``year``, ``month``,
  ``day``, ``week``, ``day_of_week``, ``hour``, ``minute``, ``second``) in
  ``timezone``; StackStorm hands these fields to APScheduler, so Squall uses
  the same library for the same meaning (fields smaller than the smallest
  given one default to their minimum, larger ones to ``*``).

Times are UTC epoch seconds. Nothing here reads a clock: callers pass "now".
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Mapping
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from squall.core.triggers import CRON_TIMER, DATE_TIMER, INTERVAL_TIMER
from squall.errors import InvalidInput

_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
_CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")


def _zone(parameters: Mapping[str, Any]) -> dt.tzinfo:
    name = parameters.get("timezone") or "UTC"
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f'unknown time zone "{name}" (use an IANA name like Europe/Paris)'
        ) from None


def _date(parameters: Mapping[str, Any]) -> float:
    text = str(parameters.get("date", ""))
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f'date "{text}" is not an ISO 8601 date and time (like 2026-12-01 05:00:00)'
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_zone(parameters))
    return when.timestamp()


@functools.lru_cache(maxsize=256)
def _cron(fields: tuple[tuple[str, Any], ...], zone: str) -> CronTrigger:
    try:
        return CronTrigger(timezone=zoneinfo.ZoneInfo(zone), **dict(fields))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid cron schedule: {exc}") from None


def _cron_trigger(parameters: Mapping[str, Any]) -> CronTrigger:
    _zone(parameters)
    fields = tuple((k, parameters[k]) for k in _CRON_FIELDS if parameters.get(k) is not None)
    if not fields:
        raise InvalidInput("a CronTimer needs at least one of: " + ", ".join(_CRON_FIELDS))
    return _cron(fields, str(parameters.get("timezone") or "UTC"))


def check(type_ref: str, parameters: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidInput` when the schedule cannot be computed."""
    if type_ref == INTERVAL_TIMER:
        if parameters.get("unit") not in _UNIT_SECONDS:
            raise InvalidInput(f"IntervalTimer unit must be one of {', '.join(_UNIT_SECONDS)}")
        delta = parameters.get("delta")
        if not isinstance(delta, int) or isinstance(delta, bool) or delta < 1:
            raise InvalidInput("IntervalTimer delta must be a whole number of at least 1")
    elif type_ref == DATE_TIMER:
        _date(parameters)
    elif type_ref == CRON_TIMER:
        _cron_trigger(parameters)


def next_fire(type_ref: str, parameters: Mapping[str, Any], after: float) -> float | None:
    """The first fire time strictly after ``after``, or None when there is none."""
    if type_ref == INTERVAL_TIMER:
        return after + int(parameters["delta"]) * _UNIT_SECONDS[str(parameters["unit"])]
    if type_ref == DATE_TIMER:
        when = _date(parameters)
        return when if when > after else None
    if type_ref == CRON_TIMER:
        trigger = _cron_trigger(parameters)
        # The cron trigger rounds "now" up to a whole second and may return
        # it; starting just past ``after`` keeps a fire time from repeating.
        now = dt.datetime.fromtimestamp(after + 0.001, tz=dt.UTC)
        nxt = trigger.get_next_fire_time(None, now)
        return None if nxt is None else float(nxt.timestamp())
    raise InvalidInput(f"{type_ref} is not a timer")


def describe(type_ref: str, parameters: Mapping[str, Any]) -> str:
    """A short human description of the schedule, for listings."""
    if type_ref == INTERVAL_TIMER:
        return f"every {parameters.get('delta')} {parameters.get('unit')}"
    if type_ref == DATE_TIMER:
        return f"once at {parameters.get('date')} {parameters.get('timezone') or 'UTC'}"
    fields = " ".join(f"{k}={parameters[k]}" for k in _CRON_FIELDS if k in parameters)
    return f"cron {fields} {parameters.get('timezone') or 'UTC'}"
