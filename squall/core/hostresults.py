"""Outcomes of a command run on many hosts: per-host status, summary, folding.

A remote execution ends with one result per host, keyed by host name as in
StackStorm (``stdout``, ``stderr``, ``return_code``, ``succeeded``,
``failed``). Operators need the shape of a thousand results at a glance:
:func:`summarize` counts hosts by outcome, :func:`fold` groups hosts whose
outputs are identical ("197 hosts: ok"), and :func:`verdict` decides whether
the execution as a whole succeeded, given its failure budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "FAILURES",
    "FINAL",
    "Fold",
    "HostStatus",
    "fold",
    "host_result",
    "summarize",
    "verdict",
]


class HostStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the command ran and exited non-zero
    UNREACHABLE = "unreachable"  # no SSH connection (refused, no route, timed out connecting)
    TIMEOUT = "timeout"  # connected, but the command ran past its timeout
    AUTH_FAILED = "auth_failed"  # the server refused every credential offered
    HOST_KEY = "host_key"  # the host key is unknown or does not match known_hosts
    CANCELED = "canceled"


FINAL = frozenset(HostStatus) - {HostStatus.PENDING, HostStatus.RUNNING}
FAILURES = FINAL - {HostStatus.SUCCEEDED}

# The order summaries are shown in: good news first, then by kind of trouble.
_ORDER = [
    HostStatus.SUCCEEDED,
    HostStatus.FAILED,
    HostStatus.UNREACHABLE,
    HostStatus.TIMEOUT,
    HostStatus.AUTH_FAILED,
    HostStatus.HOST_KEY,
    HostStatus.CANCELED,
    HostStatus.RUNNING,
    HostStatus.PENDING,
]


def host_result(
    status: HostStatus,
    *,
    return_code: int | None = None,
    stdout: str = "",
    stderr: str = "",
    error: str | None = None,
) -> dict[str, Any]:
    """One host's result in StackStorm's shape, plus ``error`` when there is one."""
    succeeded = status == HostStatus.SUCCEEDED
    if return_code is None:
        return_code = 0 if succeeded else 255 if status != HostStatus.TIMEOUT else -9
    result: dict[str, Any] = {
        "succeeded": succeeded,
        "failed": not succeeded,
        "return_code": return_code,
        "stdout": stdout,
        "stderr": stderr,
    }
    if status == HostStatus.TIMEOUT:
        result["timeout"] = True
    if error:
        result["error"] = error
    return result


def summarize(statuses: Iterable[str]) -> dict[str, int]:
    """Counts by status, in display order, with ``total``; zero counts left out."""
    counts: dict[str, int] = {}
    total = 0
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
        total += 1
    ordered = {s.value: counts[s.value] for s in _ORDER if counts.get(s.value)}
    ordered.update({s: n for s, n in counts.items() if s not in ordered})
    ordered["total"] = total
    return ordered


def ordered_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """The same counts, in display order (for counts that come from a query)."""
    out = {s.value: counts[s.value] for s in _ORDER if counts.get(s.value)}
    out.update({s: n for s, n in counts.items() if s not in out and s != "total" and n})
    out["total"] = sum(n for s, n in counts.items() if s != "total")
    return out


@dataclass(frozen=True)
class Fold:
    """Hosts that ended the same way with the same output."""

    status: str
    return_code: int | None
    text: str  # stdout, then stderr or the error, as shown to a person
    hosts: tuple[str, ...]


def _text(result: Mapping[str, Any]) -> str:
    parts = []
    for key in ("stdout", "stderr", "error"):
        value = result.get(key)
        if value not in (None, ""):
            parts.append(value if isinstance(value, str) else repr(value))
    return "\n".join(parts)


def fold(results: Iterable[tuple[str, str, Mapping[str, Any] | None]]) -> list[Fold]:
    """Group ``(host, status, result)`` by identical outcome and output.

    Groups come largest first (the usual case on top, the odd ones out
    below), ties in the order their first host appeared."""
    groups: dict[tuple[str, int | None, str], list[str]] = {}
    for host, status, result in results:
        result = result or {}
        rc = result.get("return_code")
        key = (status, rc if isinstance(rc, int) else None, _text(result))
        groups.setdefault(key, []).append(host)
    folds = [Fold(s, rc, text, tuple(hosts)) for (s, rc, text), hosts in groups.items()]
    return sorted(folds, key=lambda f: -len(f.hosts))


def verdict(
    counts: Mapping[str, int],
    *,
    fail_on_any_host: bool = True,
    max_failures: int | None = None,
    max_failure_percent: float | None = None,
) -> str:
    """``succeeded``, ``failed`` or ``timeout`` for the execution as a whole.

    Any failed host fails the execution unless a budget allows it, or
    ``fail_on_any_host`` is off (then only a run where no host succeeded
    fails). Over budget, the execution times out when every failure was a
    timeout, else it fails."""
    failures = sum(n for s, n in counts.items() if s in FAILURES)
    total = sum(n for s, n in counts.items() if s != "total")
    if failures == 0:
        return "succeeded"
    allowed = 0 if fail_on_any_host else total - 1
    if max_failures is not None:
        allowed = max(allowed, max_failures)
    if max_failure_percent is not None and total:
        allowed = max(allowed, int(total * max_failure_percent / 100))
    if failures <= allowed:
        return "succeeded"
    if failures == counts.get(HostStatus.TIMEOUT, 0):
        return "timeout"
    return "failed"
