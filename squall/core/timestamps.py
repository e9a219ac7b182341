"""Times as the API shows them. Squall stores UTC epoch seconds (floats) and
formats them the way StackStorm does at the edges."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from squall.errors import InvalidInput


def iso(ts: float | None) -> str | None:
    """StackStorm's time format: 2026-01-31T12:00:00.000000Z."""
    if ts is None:
        return None
    seconds = int(ts)
    micros = round((ts - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds of an ISO 8601 time; a time without a zone is UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
