"""Policy decisions, StackStorm's ``action.concurrency`` and ``action.retry``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def concurrency_decision(
    policy: Mapping[str, Any],
    parameters: Mapping[str, Any],
    active: Sequence[Mapping[str, Any]],
) -> str:
    """``run``, ``delay`` or ``cancel`` for an execution with ``parameters``,
    given the parameters of the executions of the same action in flight.

    With ``attributes``, only in-flight executions whose values for those
    parameters equal this one's count against the threshold.
    """
    options = policy.get("parameters") or {}
    threshold = int(options.get("threshold", 1))
    attributes = list(options.get("attributes") or [])
    if attributes:
        mine = [parameters.get(a) for a in attributes]
        count = sum(1 for p in active if [p.get(a) for a in attributes] == mine)
    else:
        count = len(active)
    if count < threshold:
        return "run"
    return "cancel" if options.get("action") == "cancel" else "delay"


def retry_decision(policy: Mapping[str, Any], status: str, retry_count: int) -> float | None:
    """Seconds to wait before retrying an execution that ended in ``status``
    after ``retry_count`` retries, or None when it must not be retried."""
    options = policy.get("parameters") or {}
    retry_on = options.get("retry_on", "failure")
    if status == "failed" and retry_on != "failure":
        return None
    if status == "timeout" and retry_on != "timeout":
        return None
    if status not in ("failed", "timeout"):
        return None
    if retry_count >= int(options.get("max_retry_count", 2)):
        return None
    return float(options.get("delay", 0) or 0)
