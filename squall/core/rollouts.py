r"""Batch gray rollouts: the rollout spec and the batch planner.

A *rollout* applies one action to many hosts of the inventory, a batch at a
time, with growing batches, gates between them and failure budgets that stop
it early. This module is the pure core: :func:`parse_spec` reads and checks a
spec (already loaded from YAML into a mapping) and :func:`plan` lays the
targeted hosts out in batches. Resolving the target against the inventory,
running anything and reading clocks are the caller's business.

A spec, with every key (only ``name``, ``target``, ``action`` and, in waves
mode, ``batches`` are required)::

    name: patch-openssl               # letters, digits, "_", "." and "-"
    description: Patch OpenSSL everywhere
    target: "hagroup=a or hagroup=b"  # a targeting expression (squall.core.targeting)
    action: examples.patch_host       # "pack.name"
    parameters: {package: openssl}    # the action's parameters (default {})
    host_parameter: host              # the parameter that receives each host's
                                      # inventory name (default "host")
    batches: [1, "10%", "50%", "100%"]
    mode: waves                       # waves (default) | window
    concurrency: 20                   # waves: hosts in flight within a batch
                                      # (default: the whole batch); window: the
                                      # hosts in flight at any time (required)
    order: inventory                  # inventory | sorted | reverse | shuffle
                                      # | {fact: NAME, descending: false}
    seed: 42                          # shuffle's seed (default: crc32 of the name)
    canary: [web-01, web-02]          # host names, or a targeting expression
    group_by: hagroup                 # fault domains one after the other
    max_per_group: {fact: lb_pool, max: 1}
    stop_on_first_failure: false
    max_failures: 5                   # across the rollout
    max_failure_percent: 2.5          # across the rollout
    batch_budget: {max_failures: 1, max_failure_percent: 10}
    count_as_failure: [failed, unreachable, timeout]
    on_breach: finish                 # finish | cancel
    gates:
      - after: each                   # each (default) | batch index | [indexes]
        pause: 10m
      - after: 0
        approval: {users: [alice], roles: [ops], timeout: 4h, on_timeout: abort}
      - after: each
        hold: true
      - after: each
        analysis: error-rate
      - window: {cron: "0 22 * * 1-5", duration: 6h, timezone: Europe/Paris}
    checks:
      preflight: {command: "systemctl is-active nginx", on_fail: exclude}
      health:
        http: {url: "http://{{ host.address }}:8080/health", status: 200, body: "ok"}
        retries: 5
        interval: 10s
        timeout: 5s
        successes: 2
    hooks:
      pre_host: {action: lb.drain, parameters: {pool: web}}
      post_host: {action: lb.undrain}
      pre_batch: {action: chatops.post_message, parameters: {text: starting}}
      post_batch: {action: chatops.post_message, parameters: {text: done}}
      on_success: {action: chatops.post_message, parameters: {text: all done}}
      on_failure: {action: pagerduty.trigger}
    analysis:
      - name: error-rate
        provider: prometheus          # prometheus {url, query} | http {url, jsonpath}
        url: http://prometheus:9090   # | command {command}
        query: 'sum(rate(http_errors_total[5m]))'
        interval: 1m
        count: 5
        success: "result < 0.01"
        failure: "result > 0.05"
        failure_limit: 1
    rollback: {action: examples.unpatch_host, parameters: {}, automatic: true}
    estimate: {host_seconds: 60}

Batches. A batch size is a number of hosts or a percentage of all the
targeted hosts (``"N%"``, ``0 < N <= 100``, rounded down but at least 1); a
list is consumed in order and its last size repeats until every host is in a
batch, and the last batch takes what is left. This is Ansible's ``serial``:
200 hosts with ``[1, "10%", "50%", "100%"]`` give batches of 1, 20, 100 and
79 (percentages are computed exactly, so ``"29%"`` of 100 is 29).

Modes. In ``waves`` mode a batch finishes before the gates after it are
checked and the next one starts; ``concurrency`` (a number or a percentage
of the batch) bounds the hosts in flight inside a batch. ``window`` mode is
Salt's batch mode, a sliding window without waves: ``concurrency`` hosts (a
number, or a percentage of all the targeted hosts) are in flight at any
time, and a new host starts as soon as one finishes. Its plan is one batch
of every host, with that concurrency. ``batches`` is not used in window mode
and is refused, and so is what needs more than one batch: the gates that
wait between batches (``pause``, ``hold``, ``approval``, ``analysis``) and
``batch_budget`` (the one batch is the whole rollout: ``max_failures`` and
``max_failure_percent`` say it). ``window`` gates apply: no new host starts
while every window is closed.

Order. The targeted hosts are ordered by ``order``: ``inventory``,
``sorted`` (by name, as text), ``reverse`` (the reverse inventory order),
``shuffle`` (reproducible: seeded by ``seed``, or by the name's CRC-32), or
a fact (numbers in numeric order before other values as text, hosts without
the fact last, whichever the direction; ties keep inventory order); then
grouped by ``group_by`` (a stable grouping: all hosts whose fact has the
first value in sorted order, then the next value..., hosts without the fact
last), then the canary hosts, in the order the caller gives them, are
pinned first. ``max_per_group`` keeps more than ``max`` hosts sharing a value
of ``fact`` out of one batch (waves) or out of the window (window, enforced
by the controller); in waves mode the hosts that do not fit stay queued, in
order, for the next batches, so there may be more batches than the sizes
alone give. Hosts without the fact are not limited.

Failures. A host counts as failed when its result is one of
``count_as_failure``. The budget is *breached* when failures exceed it:
``max_failures: 5`` tolerates five failures and stops at the sixth;
``stop_on_first_failure`` is a budget of 0. The rollout's budget is the
smaller of ``max_failures`` and ``max_failure_percent`` of all the hosts
(rounded down: 2.5% of 100 hosts tolerates 2); a batch's is the same
for ``batch_budget`` and the batch's size. On a breach no new host starts;
``on_breach`` says whether hosts in flight finish or are cancelled.

Gates. Each gate has exactly one of ``pause`` (a soak time), ``approval``,
``hold`` (wait for ``squall rollout resume``), ``analysis`` (the name of an
entry of ``analysis``) or ``window``. ``after: each`` (the default) means
between every two batches; explicit batch indexes (from 0) may also name the
last batch. A ``window`` gate takes no ``after``: no batch, the first
included, starts outside the window (a 5-field cron schedule for its start,
a duration and an IANA time zone, UTC by default).

Windows. A window opens each time its cron schedule fires, read in its time
zone, and stays open ``duration`` seconds of real time; with several window
gates, batches start while any of them is open, and a batch started before
the windows close may run past them. :func:`window_state` tells whether they
are open at a moment, and until when (or when they open next). The schedule
is computed by croniter, with its handling of daylight saving time: a time
that does not exist on the day the clocks go forward (02:30 in Europe/Paris
on the last Sunday of March) fires once, when the gap ends (03:00, for
every time in the gap); a time that happens twice on the day the clocks go
back fires twice, once in each offset (so a 30-minute window at 02:30 opens
twice, an hour apart). :func:`check_cron` accepts only what croniter
computes.

Estimate. A wave takes ``ceil(batch size / concurrency)`` rounds of
``estimate.host_seconds`` (or the caller's figure), plus the pauses after
it; a window rollout takes ``ceil(hosts / concurrency)`` rounds.
Holds, approvals, analyses and windows count as no time.

Durations are seconds (a number) or text such as ``30s``, ``10m``, ``2h``,
``1h30m`` or ``1d``.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import math
import operator
import random
import re
import zlib
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Literal, TypeAlias, TypeVar

from croniter import CroniterBadDateError, croniter

from squall.core import targeting
from squall.core.analysis import check_analysis
from squall.core.inventory import Host
from squall.core.workflow import Problem
from squall.errors import InvalidInput

__all__ = [
    "Action",
    "Analysis",
    "Approval",
    "Check",
    "Checks",
    "FailureBudget",
    "Gate",
    "GroupLimit",
    "Hooks",
    "HttpProbe",
    "Order",
    "Percent",
    "Plan",
    "PlanBudget",
    "Problem",
    "Rollback",
    "RolloutSpec",
    "RolloutSpecInvalid",
    "Size",
    "TcpProbe",
    "Window",
    "batch_sizes",
    "check_cron",
    "order_hosts",
    "parse_duration",
    "parse_spec",
    "plan",
    "window_state",
]

T = TypeVar("T")

Mode: TypeAlias = Literal["waves", "window"]
OrderKind: TypeAlias = Literal["inventory", "sorted", "reverse", "shuffle", "fact"]
GateKind: TypeAlias = Literal["pause", "approval", "hold", "analysis", "window"]
FAILURE_STATUSES: tuple[str, ...] = ("failed", "unreachable", "timeout")
HOOKS = ("pre_host", "post_host", "pre_batch", "post_batch", "on_success", "on_failure")
DEFAULT_HOST_SECONDS = 60.0


class RolloutSpecInvalid(InvalidInput):
    """A rollout spec that cannot run; the message lists every problem, one per line."""

    def __init__(self, problems: Iterable[Problem], source: str = "spec") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"rollout {source} has {count} {noun}:\n{lines}")

    def to_dict(self) -> dict[str, object]:
        return {
            "faultstring": self.message,
            "problems": [{"path": p.path, "message": p.message} for p in self.problems],
        }


# --- the spec ------------------------------------------------------------------


@dataclass(frozen=True)
class Percent:
    """A share of a number of hosts: ``Percent(10)`` is ``"10%"``."""

    value: float  # 0 < value <= 100

    def of(self, total: int) -> int:
        """``value`` percent of ``total``, rounded down, computed exactly."""
        return math.floor(total * _exact(self.value) / 100)

    def __str__(self) -> str:
        return f"{_number_text(self.value)}%"


Size: TypeAlias = int | Percent


@dataclass(frozen=True)
class Action:
    """An action to run: a hook, or the rollback."""

    action: str  # "pack.name"
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rollback(Action):
    automatic: bool = False


@dataclass(frozen=True)
class Order:
    kind: OrderKind = "inventory"
    fact: str | None = None  # kind "fact"
    descending: bool = False  # kind "fact"


@dataclass(frozen=True)
class GroupLimit:
    """``max_per_group``: at most ``max`` hosts sharing a value of ``fact``."""

    fact: str
    max: int


@dataclass(frozen=True)
class FailureBudget:
    """How many failures are tolerated; None is no limit."""

    max_failures: int | None = None
    max_failure_percent: float | None = None

    def resolve(self, total: int) -> int | None:
        """The absolute number of failures tolerated among ``total`` hosts."""
        limits = []
        if self.max_failures is not None:
            limits.append(self.max_failures)
        if self.max_failure_percent is not None:
            limits.append(Percent(self.max_failure_percent).of(total))
        return min(limits) if limits else None


@dataclass(frozen=True)
class Approval:
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    timeout: float | None = None  # seconds; None waits for ever
    on_timeout: Literal["abort", "continue"] = "abort"


@dataclass(frozen=True)
class Window:
    """Batches start only while a window is open: from each time the cron
    schedule fires, for ``duration`` seconds, in ``timezone`` (see
    :func:`window_state`)."""

    cron: str
    duration: float
    timezone: str = "UTC"


@dataclass(frozen=True)
class Gate:
    """One entry of ``gates``: ``index`` is its position there."""

    index: int
    kind: GateKind
    after: tuple[int, ...] | None = None  # None: between every two batches
    pause: float | None = None  # seconds
    approval: Approval | None = None
    analysis: str | None = None
    window: Window | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"gate": self.index, "kind": self.kind}
        if self.kind != "window":
            data["after"] = "each" if self.after is None else list(self.after)
        if self.pause is not None:
            data["seconds"] = self.pause
        if self.approval is not None:
            data["users"] = list(self.approval.users)
            data["roles"] = list(self.approval.roles)
            data["timeout"] = self.approval.timeout
            data["on_timeout"] = self.approval.on_timeout
        if self.analysis is not None:
            data["analysis"] = self.analysis
        if self.window is not None:
            data["cron"] = self.window.cron
            data["duration"] = self.window.duration
            data["timezone"] = self.window.timezone
        return data


@dataclass(frozen=True)
class HttpProbe:
    url: str
    status: int = 200
    body: str | None = None  # a regex searched in the body


@dataclass(frozen=True)
class TcpProbe:
    port: int


@dataclass(frozen=True)
class Check:
    """A probe of one host: exactly one of ``command``, ``http``, ``tcp``.

    It passes after ``successes`` passes in a row, ``interval`` seconds
    apart, each given ``timeout`` seconds; it fails after ``retries`` more
    failures than that allows."""

    command: str | None = None
    http: HttpProbe | None = None
    tcp: TcpProbe | None = None
    retries: int = 0
    interval: float = 10.0
    timeout: float = 10.0
    successes: int = 1
    on_fail: Literal["exclude", "abort"] = "abort"  # preflight only


@dataclass(frozen=True)
class Checks:
    preflight: Check | None = None
    health: Check | None = None


@dataclass(frozen=True)
class Hooks:
    pre_host: Action | None = None
    post_host: Action | None = None  # runs even when the host fails or the rollout aborts
    pre_batch: Action | None = None
    post_batch: Action | None = None
    on_success: Action | None = None
    on_failure: Action | None = None


@dataclass(frozen=True)
class Analysis:
    name: str
    provider: Literal["prometheus", "http", "command"]
    url: str | None = None  # prometheus, http
    query: str | None = None  # prometheus
    jsonpath: str | None = None  # http
    command: str | None = None  # command
    interval: float = 60.0
    count: int = 1
    success: str | None = None
    failure: str | None = None
    failure_limit: int = 0


@dataclass(frozen=True)
class RolloutSpec:
    """A checked, normalized rollout spec (see the module's documentation)."""

    name: str
    target: str
    action: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    host_parameter: str = "host"
    batches: tuple[Size, ...] = ()  # empty in window mode
    mode: Mode = "waves"
    concurrency: Size | None = None
    order: Order = field(default_factory=Order)
    seed: int = 0
    canary: tuple[str, ...] | str | None = None  # host names, or an expression
    group_by: str | None = None
    max_per_group: GroupLimit | None = None
    stop_on_first_failure: bool = False
    max_failures: int | None = None
    max_failure_percent: float | None = None
    batch_budget: FailureBudget = field(default_factory=FailureBudget)
    count_as_failure: tuple[str, ...] = FAILURE_STATUSES
    on_breach: Literal["finish", "cancel"] = "finish"
    gates: tuple[Gate, ...] = ()
    checks: Checks = field(default_factory=Checks)
    hooks: Hooks = field(default_factory=Hooks)
    analysis: tuple[Analysis, ...] = ()
    rollback: Rollback | None = None
    host_seconds: float = DEFAULT_HOST_SECONDS  # estimate.host_seconds

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows of the ``window`` gates, for :func:`window_state`."""
        return tuple(g.window for g in self.gates if g.window is not None)

    @property
    def failure_budget(self) -> FailureBudget:
        """The rollout-wide budget (``stop_on_first_failure`` is 0 failures)."""
        if self.stop_on_first_failure:
            return FailureBudget(max_failures=0)
        return FailureBudget(self.max_failures, self.max_failure_percent)


# --- reading a spec ------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_ACTION_REF = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+")
_PARAMETER = re.compile(r"\w+")
_FACT_NAME = re.compile(r"[\w/-]+(?:\.[\w/-]+)*")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*%")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")

_TOP = (
    "name",
    "description",
    "target",
    "action",
    "parameters",
    "host_parameter",
    "batches",
    "mode",
    "concurrency",
    "order",
    "seed",
    "canary",
    "group_by",
    "max_per_group",
    "stop_on_first_failure",
    "max_failures",
    "max_failure_percent",
    "batch_budget",
    "count_as_failure",
    "on_breach",
    "gates",
    "checks",
    "hooks",
    "analysis",
    "rollback",
    "estimate",
)
_GATE_KINDS: tuple[GateKind, ...] = ("pause", "approval", "hold", "analysis", "window")
_A_GATE = {
    "pause": "a pause",
    "approval": "an approval",
    "hold": "a hold",
    "analysis": "an analysis",
    "window": "a window",
}
_CHECK = ("command", "http", "tcp", "retries", "interval", "timeout", "successes")
_PROBES = ("command", "http", "tcp")
_ANALYSIS = (
    "name",
    "provider",
    "url",
    "query",
    "jsonpath",
    "command",
    "interval",
    "count",
    "success",
    "failure",
    "failure_limit",
)
_PROVIDERS: dict[str, Literal["prometheus", "http", "command"]] = {
    "prometheus": "prometheus",
    "http": "http",
    "command": "command",
}
_PROVIDER_KEYS = {
    "prometheus": (("url", "query"), ()),  # (required, optional)
    "http": (("url",), ("jsonpath",)),
    "command": (("command",), ()),
}


def parse_spec(data: Mapping[str, Any], source: str = "spec") -> RolloutSpec:
    """The checked, normalized spec; :class:`RolloutSpecInvalid` lists every
    problem found, each with its path in the spec."""
    if not isinstance(data, Mapping):
        found = "empty" if data is None else _describe(data)
        raise RolloutSpecInvalid(
            [Problem("", f"a rollout spec must be a mapping, not {found}")], source
        )
    reader = _Reader()
    spec = reader.spec(data)
    if reader.problems:
        raise RolloutSpecInvalid(reader.problems, source)
    return spec


def parse_duration(value: Any) -> float:
    """Seconds in ``value``: a number, or text like ``30s``, ``10m``, ``1h30m``, ``1d``.
    Raises ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"{value} is not a duration")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.fullmatch(text)
        if text and match:
            d, h, m, s = match.groups()
            return int(d or 0) * 86400 + int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    raise ValueError(f'{_show(value)} is not a duration (use seconds, or "30s", "10m", "1h30m")')


def _at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _describe(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """A private copy, so the caller's data is never shared or changed."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _unknown(key: object, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f'unknown key "{key}"{hint}; allowed: {", ".join(allowed)}'


class _Reader:
    """Builds the spec, noting each malformed field as a problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # --- generic readers: each returns None after noting a problem

    def mapping(
        self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.bad(path, f"must be a mapping, not {_describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.bad(_at(path, key), _unknown(key, allowed))
        for key in required:
            if value.get(key) is None:
                self.bad(_at(path, key), "is required")
        return value

    def get(
        self,
        data: Mapping[str, Any],
        path: str,
        key: str,
        read: Callable[[Any, str], T | None],
        default: T,
    ) -> T:
        """``data[key]`` read by ``read``; ``default`` when absent (or null) or wrong."""
        value = data.get(key)
        if value is None:
            return default
        result = read(value, _at(path, key))
        return default if result is None else result

    def text(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.bad(path, f"must be a non-empty string, not {_describe(value)}")
            return None
        return value

    def any_text(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.bad(path, f"must be a string, not {_describe(value)}")
            return None
        return value

    def name(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is not None and not _NAME.fullmatch(text):
            self.bad(path, f'"{text}" may hold only letters, digits, "_", "." and "-"')
            return None
        return text

    def action_ref(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is not None and not _ACTION_REF.fullmatch(text):
            self.bad(path, f'"{text}" is not an action reference like "pack.action"')
            return None
        return text

    def fact_name(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is not None and not _FACT_NAME.fullmatch(text):
            self.bad(path, f'"{text}" is not a fact name (like hagroup or packages.nginx)')
            return None
        return text

    def expression(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is None:
            return None
        try:
            targeting.parse(text)
        except targeting.TargetError as exc:
            self.bad(path, exc.reason)
            return None
        return text

    def integer(
        self, value: Any, path: str, minimum: int, maximum: int | None = None
    ) -> int | None:
        if not _is_int(value):
            self.bad(path, f"must be a whole number, not {_describe(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
            self.bad(path, f"{value} is out of range; it must be {bounds}")
            return None
        return int(value)

    def count(self, value: Any, path: str) -> int | None:
        return self.integer(value, path, 0)

    def positive(self, value: Any, path: str) -> int | None:
        return self.integer(value, path, 1)

    def percentage(self, value: Any, path: str) -> float | None:
        if not _is_number(value):
            self.bad(path, f"must be a number from 0 to 100, not {_describe(value)}")
            return None
        if not 0 <= value <= 100:
            self.bad(path, f"{value} is out of range; it must be from 0 to 100")
            return None
        return float(value)

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.bad(path, f"must be true or false, not {_describe(value)}")
            return None
        return value

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str | None:
        if value not in choices:
            *first, last = choices
            options = f"{', '.join(first)} or {last}" if first else last
            self.bad(path, f"must be {options}, not {_show(value)}")
            return None
        return str(value)

    def duration(self, value: Any, path: str, *, zero: bool = False) -> float | None:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.bad(path, str(exc))
            return None
        if seconds == 0 and not zero:
            self.bad(path, "must be longer than 0 seconds")
            return None
        return seconds

    def parameters(self, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.bad(
                path, f"must be a mapping of parameter names to values, not {_describe(value)}"
            )
            return None
        for key in value:
            if not isinstance(key, str):
                self.bad(path, f"parameter names must be strings, not {_describe(key)}")
                return None
        return dict(_plain(value))

    def names(self, value: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.bad(path, f"must be a list of names, not {_describe(value)}")
            return None
        out = []
        for i, item in enumerate(value):
            text = self.text(item, f"{path}[{i}]")
            if text is not None:
                out.append(text)
        return tuple(out) if len(out) == len(value) else None

    def size(self, value: Any, path: str) -> Size | None:
        """A number of hosts (>= 1) or a percentage ``"N%"`` (0 < N <= 100)."""
        if _is_int(value):
            if value < 1:
                self.bad(path, f"{value} is not a number of hosts; it must be at least 1")
                return None
            return int(value)
        if isinstance(value, str):
            match = _PERCENT.fullmatch(value.strip())
            if match:
                share = float(match[1])
                if share == 0:
                    self.bad(path, f'"{value}" must be more than 0%')
                    return None
                if share > 100:
                    self.bad(path, f'"{value}" is over 100%')
                    return None
                return Percent(share)
        self.bad(
            path,
            f'must be a number of hosts or a percentage like "10%", not {_show(value)}',
        )
        return None

    def sizes(self, value: Any, path: str) -> tuple[Size, ...] | None:
        if not isinstance(value, list):
            one = self.size(value, path)
            return None if one is None else (one,)
        if not value:
            self.bad(path, "must give at least one batch size")
            return None
        read = [self.size(item, f"{path}[{i}]") for i, item in enumerate(value)]
        out = tuple(size for size in read if size is not None)
        return out if len(out) == len(read) else None

    def action(self, value: Any, path: str) -> Action | None:
        data = self.mapping(value, path, ("action", "parameters"), ("action",))
        if data is None:
            return None
        ref = self.get(data, path, "action", self.action_ref, "")
        parameters: dict[str, Any] = self.get(data, path, "parameters", self.parameters, {})
        return Action(ref, parameters) if ref else None

    # --- the parts of a spec

    def spec(self, data: Mapping[str, Any]) -> RolloutSpec:
        required = ["name", "target", "action"]
        if data.get("mode") in (None, "waves"):
            required.append("batches")
        self.mapping(data, "", _TOP, required)
        mode = self.get(
            data, "", "mode", lambda v, p: self.choice(v, p, ("waves", "window")), "waves"
        )
        if mode not in ("waves", "window"):
            mode = ""  # wrong: check what is there, require nothing more

        name = self.get(data, "", "name", self.name, "")
        description = self.get(data, "", "description", self.any_text, "")
        target = self.get(data, "", "target", self.expression, "")
        action = self.get(data, "", "action", self.action_ref, "")
        parameters: dict[str, Any] = self.get(data, "", "parameters", self.parameters, {})
        host_parameter = self.get(data, "", "host_parameter", self.host_parameter, "host")
        if host_parameter in parameters:
            self.bad(
                f"parameters.{host_parameter}",
                f'is given to each host by host_parameter "{host_parameter}"; remove it',
            )

        batches: tuple[Size, ...] = ()
        if mode == "window" and data.get("batches") is not None:
            self.bad(
                "batches",
                "is not used in window mode: concurrency sets how many hosts run at once",
            )
        else:
            batches = self.get(data, "", "batches", self.sizes, ())
        concurrency = self.get(data, "", "concurrency", self.size, None)
        if mode == "window" and data.get("concurrency") is None:
            self.bad("concurrency", "is required in window mode: the number of hosts in flight")

        order = self.get(data, "", "order", self.order, Order())
        seed = zlib.crc32(name.encode())
        if data.get("seed") is not None:
            if _is_int(data["seed"]):
                seed = data["seed"]
            else:
                self.bad("seed", f"must be a whole number, not {_describe(data['seed'])}")
        canary = self.get(data, "", "canary", self.canary, None)
        group_by = self.get(data, "", "group_by", self.fact_name, None)
        max_per_group = self.get(data, "", "max_per_group", self.group_limit, None)

        stop = self.get(data, "", "stop_on_first_failure", self.boolean, False)
        max_failures = self.get(data, "", "max_failures", self.count, None)
        max_failure_percent = self.get(data, "", "max_failure_percent", self.percentage, None)
        if stop:
            for key in ("max_failures", "max_failure_percent"):
                if data.get(key) is not None:
                    self.bad(key, "contradicts stop_on_first_failure: true; keep only one")
        batch_budget = self.get(data, "", "batch_budget", self.budget, FailureBudget())
        count_as_failure = self.get(
            data, "", "count_as_failure", self.failure_statuses, FAILURE_STATUSES
        )
        on_breach = self.get(
            data, "", "on_breach", lambda v, p: self.choice(v, p, ("finish", "cancel")), "finish"
        )

        gates: tuple[Gate, ...] = self.get(data, "", "gates", self.gates, ())
        misplaced = self.one_batch(data, gates) if mode == "window" else set()
        checks = self.get(data, "", "checks", self.checks, Checks())
        hooks = self.get(data, "", "hooks", self.hooks, Hooks())
        analysis: tuple[Analysis, ...] = self.get(data, "", "analysis", self.analyses, ())
        # Names of entries with problems of their own count: one mistake, one problem.
        raw = data.get("analysis")
        known = {a.name for a in analysis} | {
            entry["name"]
            for entry in (raw if isinstance(raw, list) else [])
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
        }
        for gate in gates:
            if gate.index in misplaced:
                continue  # one mistake, one problem
            if gate.analysis is not None and gate.analysis not in known:
                listed = ", ".join(sorted(known)) if known else "none is defined"
                self.bad(
                    f"gates[{gate.index}].analysis",
                    f'"{gate.analysis}" is not the name of an entry of analysis ({listed})',
                )
        rollback = self.get(data, "", "rollback", self.rollback, None)
        host_seconds = self.get(data, "", "estimate", self.estimate, DEFAULT_HOST_SECONDS)

        return RolloutSpec(
            name=name,
            target=target,
            action=action,
            description=description,
            parameters=parameters,
            host_parameter=host_parameter,
            batches=batches,
            mode="window" if mode == "window" else "waves",
            concurrency=concurrency,
            order=order,
            seed=seed,
            canary=canary,
            group_by=group_by,
            max_per_group=max_per_group,
            stop_on_first_failure=stop,
            max_failures=max_failures,
            max_failure_percent=max_failure_percent,
            batch_budget=batch_budget,
            count_as_failure=count_as_failure,
            on_breach="cancel" if on_breach == "cancel" else "finish",
            gates=gates,
            checks=checks,
            hooks=hooks,
            analysis=analysis,
            rollback=rollback,
            host_seconds=host_seconds,
        )

    def one_batch(self, data: Mapping[str, Any], gates: Sequence[Gate]) -> set[int]:
        """Window mode has one batch: what only works between batches, or per
        batch, is a problem. The indexes of the gates reported."""
        reported = set()
        for gate in gates:
            if gate.kind == "window":
                continue  # no host starts while the windows are closed
            reported.add(gate.index)
            self.bad(
                f"gates[{gate.index}]",
                f"{_A_GATE[gate.kind]} gate waits between batches, and window mode has one "
                "batch (a new host starts as soon as one finishes): only window gates apply; "
                "remove it, or use mode: waves",
            )
        if data.get("batch_budget") is not None:
            self.bad(
                "batch_budget",
                "counts failures per batch, and window mode has one batch of every host: "
                "use max_failures or max_failure_percent",
            )
        return reported

    def host_parameter(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is not None and not _PARAMETER.fullmatch(text):
            self.bad(path, f'"{text}" is not a parameter name (letters, digits and "_")')
            return None
        return text

    def order(self, value: Any, path: str) -> Order | None:
        if isinstance(value, Mapping):
            data = self.mapping(value, path, ("fact", "descending"), ("fact",))
            if data is None:
                return None
            fact = self.get(data, path, "fact", self.fact_name, "")
            descending = self.get(data, path, "descending", self.boolean, False)
            return Order("fact", fact, descending) if fact else None
        kinds = ("inventory", "sorted", "reverse", "shuffle")
        if value not in kinds:
            self.bad(
                path,
                f"must be inventory, sorted, reverse, shuffle or {{fact: NAME, descending: false}},"
                f" not {_show(value)}",
            )
            return None
        kind: OrderKind = value
        return Order(kind)

    def canary(self, value: Any, path: str) -> tuple[str, ...] | str | None:
        if isinstance(value, str):
            return self.expression(value, path)
        names = self.names(value, path)
        if names is None:
            return None
        if not names:
            self.bad(path, "names no host; give at least one, or remove canary")
            return None
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in seen:
                self.bad(f"{path}[{i}]", f'"{name}" is already canary[{seen[name]}]')
            seen.setdefault(name, i)
        return names if len(seen) == len(names) else None

    def group_limit(self, value: Any, path: str) -> GroupLimit | None:
        data = self.mapping(value, path, ("fact", "max"), ("fact", "max"))
        if data is None:
            return None
        fact = self.get(data, path, "fact", self.fact_name, "")
        limit = self.get(data, path, "max", self.positive, 0)
        return GroupLimit(fact, limit) if fact and limit else None

    def budget(self, value: Any, path: str) -> FailureBudget | None:
        allowed = ("max_failures", "max_failure_percent")
        data = self.mapping(value, path, allowed)
        if data is None:
            return None
        return FailureBudget(
            self.get(data, path, "max_failures", self.count, None),
            self.get(data, path, "max_failure_percent", self.percentage, None),
        )

    def failure_statuses(self, value: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.bad(path, f"must be a non-empty list of: {', '.join(FAILURE_STATUSES)}")
            return None
        out: list[str] = []
        for i, item in enumerate(value):
            status = self.choice(item, f"{path}[{i}]", FAILURE_STATUSES)
            if status is not None and status in out:
                self.bad(f"{path}[{i}]", f'"{status}" is listed twice')
            elif status is not None:
                out.append(status)
        return tuple(out) if len(out) == len(value) else None

    def gates(self, value: Any, path: str) -> tuple[Gate, ...] | None:
        if not isinstance(value, list):
            self.bad(path, f"must be a list of gates, not {_describe(value)}")
            return None
        # The gates read well, even when others are wrong: their analysis
        # names are checked later.
        gates = [self.gate(item, f"{path}[{i}]", i) for i, item in enumerate(value)]
        return tuple(g for g in gates if g is not None)

    def gate(self, value: Any, path: str, index: int) -> Gate | None:
        data = self.mapping(value, path, ("after", *_GATE_KINDS))
        if data is None:
            return None
        kinds = [k for k in _GATE_KINDS if data.get(k) is not None]
        if len(kinds) != 1:
            found = f" (it has {' and '.join(kinds)}; use one gate for each)" if kinds else ""
            self.bad(path, f"needs exactly one of {', '.join(_GATE_KINDS)}{found}")
            return None
        kind = kinds[0]
        after: tuple[int, ...] | None = None
        if kind == "window":
            if data.get("after") is not None:
                self.bad(_at(path, "after"), "a window gate holds every batch, the first too")
                return None
        elif data.get("after") is not None:
            after = self.after(data["after"], _at(path, "after"))
            if after is None and data["after"] != "each":
                return None
        where = _at(path, kind)
        raw = data[kind]
        if kind == "pause":
            seconds = self.duration(raw, where, zero=True)
            return None if seconds is None else Gate(index, kind, after, pause=seconds)
        if kind == "hold":
            if raw is not True:
                self.bad(where, "must be true (remove the gate not to hold)")
                return None
            return Gate(index, kind, after)
        if kind == "analysis":
            name = self.text(raw, where)
            return None if name is None else Gate(index, kind, after, analysis=name)
        if kind == "approval":
            approval = self.approval(raw, where)
            return None if approval is None else Gate(index, kind, after, approval=approval)
        window = self.window(raw, where)
        return None if window is None else Gate(index, kind, window=window)

    def after(self, value: Any, path: str) -> tuple[int, ...] | None:
        """Batch indexes; None for "each" (and after noting a problem)."""
        if value == "each":
            return None
        if _is_int(value):
            index = self.count(value, path)
            return None if index is None else (index,)
        if isinstance(value, list) and value:
            read = [self.count(item, f"{path}[{i}]") for i, item in enumerate(value)]
            return tuple(sorted({i for i in read if i is not None})) if None not in read else None
        self.bad(path, f'must be "each", a batch index or a list of them, not {_show(value)}')
        return None

    def approval(self, value: Any, path: str) -> Approval | None:
        allowed = ("users", "roles", "timeout", "on_timeout")
        data = self.mapping(value, path, allowed)
        if data is None:
            return None
        count = len(self.problems)
        users: tuple[str, ...] = self.get(data, path, "users", self.names, ())
        roles: tuple[str, ...] = self.get(data, path, "roles", self.names, ())
        timeout = self.get(data, path, "timeout", self.duration, None)
        on_timeout = self.get(
            data,
            path,
            "on_timeout",
            lambda v, p: self.choice(v, p, ("abort", "continue")),
            "abort",
        )
        if data.get("on_timeout") in ("abort", "continue") and data.get("timeout") is None:
            self.bad(_at(path, "on_timeout"), "needs a timeout")
        if len(self.problems) > count:
            return None
        return Approval(users, roles, timeout, "continue" if on_timeout == "continue" else "abort")

    def window(self, value: Any, path: str) -> Window | None:
        data = self.mapping(value, path, ("cron", "duration", "timezone"), ("cron", "duration"))
        if data is None:
            return None
        cron = self.get(data, path, "cron", self.cron, "")
        duration = self.get(data, path, "duration", self.duration, 0.0)
        zone = self.get(data, path, "timezone", self.timezone, "UTC")
        return Window(cron, duration, zone) if cron and duration else None

    def cron(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is None:
            return None
        problem = check_cron(text)
        if problem:
            self.bad(path, problem)
            return None
        return text.strip()

    def timezone(self, value: Any, path: str) -> str | None:
        text = self.text(value, path)
        if text is None:
            return None
        try:
            zoneinfo.ZoneInfo(text)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.bad(path, f'unknown time zone "{text}" (use an IANA name like Europe/Paris)')
            return None
        return text

    def checks(self, value: Any, path: str) -> Checks | None:
        data = self.mapping(value, path, ("preflight", "health"))
        if data is None:
            return None
        return Checks(
            self.get(data, path, "preflight", lambda v, p: self.check(v, p, preflight=True), None),
            self.get(data, path, "health", lambda v, p: self.check(v, p, preflight=False), None),
        )

    def check(self, value: Any, path: str, *, preflight: bool) -> Check | None:
        allowed = (*_CHECK, "on_fail") if preflight else _CHECK
        data = self.mapping(value, path, allowed)
        if data is None:
            return None
        count = len(self.problems)
        probes = [k for k in _PROBES if data.get(k) is not None]
        if len(probes) != 1:
            found = f" (it has {' and '.join(probes)})" if probes else ""
            self.bad(path, f"needs exactly one of command, http or tcp{found}")
        on_fail = self.get(
            data, path, "on_fail", lambda v, p: self.choice(v, p, ("exclude", "abort")), "abort"
        )
        check = Check(
            command=self.get(data, path, "command", self.text, None),
            http=self.get(data, path, "http", self.http, None),
            tcp=self.get(data, path, "tcp", self.tcp, None),
            retries=self.get(data, path, "retries", self.count, 0),
            interval=self.get(data, path, "interval", self.duration, 10.0),
            timeout=self.get(data, path, "timeout", self.duration, 10.0),
            successes=self.get(data, path, "successes", self.positive, 1),
            on_fail="exclude" if on_fail == "exclude" else "abort",
        )
        return check if len(self.problems) == count else None

    def http(self, value: Any, path: str) -> HttpProbe | None:
        data = self.mapping(value, path, ("url", "status", "body"), ("url",))
        if data is None:
            return None
        url = self.get(data, path, "url", self.text, "")
        status = self.get(data, path, "status", lambda v, p: self.integer(v, p, 100, 599), 200)
        body = self.get(data, path, "body", self.regex, None)
        return HttpProbe(url, status, body) if url else None

    def regex(self, value: Any, path: str) -> str | None:
        text = self.any_text(value, path)
        if text is None:
            return None
        try:
            re.compile(text)
        except re.error as exc:
            self.bad(path, f"is not a valid regular expression: {exc}")
            return None
        return text

    def tcp(self, value: Any, path: str) -> TcpProbe | None:
        data = self.mapping(value, path, ("port",), ("port",))
        if data is None:
            return None
        port = self.get(data, path, "port", lambda v, p: self.integer(v, p, 1, 65535), 0)
        return TcpProbe(port) if port else None

    def hooks(self, value: Any, path: str) -> Hooks | None:
        data = self.mapping(value, path, HOOKS)
        if data is None:
            return None
        found = {key: self.get(data, path, key, self.action, None) for key in HOOKS}
        return Hooks(**found)

    def analyses(self, value: Any, path: str) -> tuple[Analysis, ...] | None:
        if not isinstance(value, list):
            self.bad(path, f"must be a list of analyses, not {_describe(value)}")
            return None
        out: list[Analysis] = []
        names: dict[str, int] = {}
        for i, item in enumerate(value):
            analysis = self.analysis(item, f"{path}[{i}]")
            if analysis is None:
                continue
            if analysis.name in names:
                self.bad(
                    f"{path}[{i}].name",
                    f'"{analysis.name}" is already the name of {path}[{names[analysis.name]}]',
                )
            names.setdefault(analysis.name, i)
            out.append(analysis)
        return tuple(out)

    def analysis(self, value: Any, path: str) -> Analysis | None:
        data = self.mapping(value, path, _ANALYSIS, ("name", "provider"))
        if data is None:
            return None
        count = len(self.problems)
        name = self.get(data, path, "name", self.name, "")
        provider = self.get(
            data, path, "provider", lambda v, p: self.choice(v, p, tuple(_PROVIDER_KEYS)), ""
        )
        if provider:
            needed, optional = _PROVIDER_KEYS[provider]
            for key in needed:
                if data.get(key) is None:
                    self.bad(_at(path, key), f"is required by the {provider} provider")
            for key in ("url", "query", "jsonpath", "command"):
                if data.get(key) is not None and key not in needed and key not in optional:
                    self.bad(_at(path, key), f"is not used by the {provider} provider")
        if data.get("success") is None and data.get("failure") is None:
            self.bad(path, "needs a success or a failure condition, or both")
        analysis = Analysis(
            name=name,
            provider=_PROVIDERS.get(provider, "prometheus"),
            url=self.get(data, path, "url", self.text, None),
            query=self.get(data, path, "query", self.text, None),
            jsonpath=self.get(data, path, "jsonpath", self.text, None),
            command=self.get(data, path, "command", self.text, None),
            interval=self.get(data, path, "interval", self.duration, 60.0),
            count=self.get(data, path, "count", self.positive, 1),
            success=self.get(data, path, "success", self.text, None),
            failure=self.get(data, path, "failure", self.text, None),
            failure_limit=self.get(data, path, "failure_limit", self.count, 0),
        )
        for problem in check_analysis(analysis):
            self.bad(_at(path, problem.path), problem.message)
        return analysis if len(self.problems) == count else None

    def rollback(self, value: Any, path: str) -> Rollback | None:
        data = self.mapping(value, path, ("action", "parameters", "automatic"), ("action",))
        if data is None:
            return None
        ref = self.get(data, path, "action", self.action_ref, "")
        parameters: dict[str, Any] = self.get(data, path, "parameters", self.parameters, {})
        automatic = self.get(data, path, "automatic", self.boolean, False)
        return Rollback(ref, parameters, automatic) if ref else None

    def estimate(self, value: Any, path: str) -> float | None:
        data = self.mapping(value, path, ("host_seconds",))
        if data is None:
            return None
        seconds = data.get("host_seconds")
        if seconds is None:
            return None
        if not _is_number(seconds) or seconds <= 0:
            self.bad(_at(path, "host_seconds"), f"must be a number above 0, not {_show(seconds)}")
            return None
        return float(seconds)


# --- cron schedules --------------------------------------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (what the field is, lowest, highest, names for lowest, lowest+1...)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 0 and 7 are Sunday
)


def check_cron(expression: str) -> str | None:
    """What is wrong with a standard 5-field cron schedule (minute, hour,
    day of month, month, day of week: numbers, ``*``, ranges, lists, steps,
    month and day names, and the ``@daily``-style macros), or None.

    What it accepts, croniter computes (:func:`window_state`): a schedule
    whose days never come (``0 0 30 2 *``) is refused too."""
    text = _cron_text(expression)
    fields = text.split()
    if len(fields) != 5:
        return (
            f'"{expression}" has {len(fields)} fields; a cron schedule has 5: '
            "minute, hour, day of month, month and day of week"
        )
    for written, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in written.split(","):
            problem = _cron_item(item, low, high, names)
            if problem:
                return f'the {what} field "{written}" is wrong: {problem}'
    try:
        croniter(text, _CRON_REFERENCE, datetime).get_next()
    except CroniterBadDateError:
        return (
            f'the day of month "{fields[2]}" never comes in the month "{fields[3]}": '
            f'"{expression}" never fires'
        )
    except (ValueError, TypeError, LookupError) as exc:  # CroniterError is a ValueError
        return f'"{expression}" is not a schedule that can be computed: {exc}'
    return None


_DIGITS = re.compile(r"[0-9]+")
_CRON_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


def _cron_text(expression: str) -> str:
    """The schedule as croniter reads it: macros spelled out, fields
    separated by one space."""
    text = expression.strip()
    return " ".join(_CRON_MACROS.get(text.lower(), text).split())


def _cron_item(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    span, slash, step = item.partition("/")
    if slash and not (_DIGITS.fullmatch(step) and int(step) > 0):
        return f'the step "{step}" must be a whole number above 0'
    if span == "*":
        return None
    first, dash, last = span.partition("-")
    values = []
    for part in (first, last) if dash else (first,):
        if _DIGITS.fullmatch(part):
            value = int(part)
        elif part.lower() in names:
            value = low + names.index(part.lower())
        else:
            kind = "a number" + (" or a name" if names else "")
            return f'"{part}" is not {kind}'
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
        values.append(value)
    if dash and values[0] > values[1]:
        return f'the range "{span}" goes backwards'
    return None


# --- time windows ------------------------------------------------------------------

# How many openings window_state follows to find when overlapping openings
# close: a schedule that keeps itself open would otherwise never end.
WINDOW_OPENINGS_FOLLOWED = 50


def window_state(windows: Sequence[Window], now: float) -> tuple[bool, float]:
    """Whether batches may start at ``now`` (a Unix time), and until when.

    A window is open from each time its cron schedule fires, in its time
    zone, for ``duration`` seconds: ``[fire, fire + duration)``. With
    several windows, it is open while any of them is. Returns
    ``(True, closes_at)``: open until ``closes_at`` (batches that start
    before it may run past it), or ``(False, opens_at)``: closed until the
    earliest next opening. Openings that overlap or touch, of one window or
    of several, are one stretch: ``closes_at`` is when the last of them
    closes. A schedule that keeps itself open (it fires again before it
    closes) is followed for at most :data:`WINDOW_OPENINGS_FOLLOWED`
    openings: ``closes_at`` is then a time at which it may still be open,
    and asking again then goes on.

    No window is always open: ``(True, inf)``; windows that never fire are
    never open: ``(False, inf)``. Daylight saving time is croniter's (see
    the module's documentation): a time in the gap of the clocks going
    forward fires at the end of the gap, a time repeated when they go back
    fires twice."""
    if not windows:
        return True, math.inf
    followed = 0

    def open_until(window: Window, at: float) -> float | None:
        """When the stretch of ``window`` open at ``at`` closes; None if closed."""
        nonlocal followed
        zone = zoneinfo.ZoneInfo(window.timezone)
        cron = _cron_text(window.cron)
        try:
            # The last opening at or before ``at``: get_prev is strictly before.
            last = croniter(cron, datetime.fromtimestamp(at, zone), datetime).get_prev()
            following = croniter(cron, last, datetime)
            upcoming = following.get_next()
            if upcoming.timestamp() <= at:
                last, upcoming = upcoming, following.get_next()
            closes = last.timestamp() + window.duration
            if at >= closes:
                return None
            while upcoming.timestamp() <= closes and followed < WINDOW_OPENINGS_FOLLOWED:
                followed += 1
                closes = max(closes, upcoming.timestamp() + window.duration)
                upcoming = following.get_next()
        except CroniterBadDateError:
            return None  # it never fires
        return closes

    ends = [end for w in windows if (end := open_until(w, now)) is not None]
    if not ends:
        return False, min(_next_opening(w, now) for w in windows)
    closes_at = max(ends)
    # Another window open when this stretch closes carries it on.
    while followed < WINDOW_OPENINGS_FOLLOWED:
        followed += 1
        later = [end for w in windows if (end := open_until(w, closes_at)) is not None]
        if not later:
            break
        closes_at = max(later)
    return True, closes_at


def _next_opening(window: Window, after: float) -> float:
    """The first time ``window`` opens after ``after``; inf if never."""
    zone = zoneinfo.ZoneInfo(window.timezone)
    start = datetime.fromtimestamp(after, zone)
    try:
        return croniter(_cron_text(window.cron), start, datetime).get_next().timestamp()
    except CroniterBadDateError:
        return math.inf


# --- planning ----------------------------------------------------------------------


def batch_sizes(batches: Size | Sequence[Size], total: int) -> list[int]:
    """The sizes of the batches ``total`` hosts make, as Ansible's ``serial``.

    A percentage is of ``total``, rounded down but at least 1; the last
    size repeats until every host is in a batch, and the last batch takes
    what is left. No host, no batch."""
    sizes = (batches,) if isinstance(batches, int | Percent) else tuple(batches)
    if not sizes:
        raise ValueError("no batch size")
    counts = [_count(size, total) for size in sizes]
    out: list[int] = []
    left = total
    for count in counts:
        if left <= 0:
            break
        out.append(min(count, left))
        left -= out[-1]
    if left > 0:
        last = counts[-1]
        out.extend([last] * (left // last))
        if left % last:
            out.append(left % last)
    return out


def _count(size: Size, total: int) -> int:
    if isinstance(size, Percent):
        return max(1, size.of(total))
    if size < 1:
        raise ValueError(f"a batch size must be at least 1, not {size}")
    return size


def order_hosts(
    spec: RolloutSpec, hosts: Sequence[Host], canary: Sequence[Host] = ()
) -> list[Host]:
    """``hosts`` in the order the rollout takes them: ``order``, then
    ``group_by`` (stable), then the canary hosts first, in the order given.
    Canary hosts that are not among ``hosts`` are ignored."""
    ordered = _ordered(spec, hosts)
    if spec.group_by is not None:
        ordered = _grouped(ordered, spec.group_by)
    if canary:
        wanted = dict.fromkeys(h.name for h in canary)
        pinned = {h.name: h for h in ordered if h.name in wanted}
        if pinned:
            ordered = [pinned[n] for n in wanted if n in pinned] + [
                h for h in ordered if h.name not in pinned
            ]
    return ordered


def _ordered(spec: RolloutSpec, hosts: Sequence[Host]) -> list[Host]:
    kind = spec.order.kind
    if kind == "sorted":
        return sorted(hosts, key=_name)
    if kind == "reverse":
        return list(reversed(hosts))
    if kind == "shuffle":
        out = list(hosts)
        random.Random(spec.seed).shuffle(out)
        return out
    if kind == "fact":
        key = spec.order.fact or ""
        present: list[tuple[tuple[int, Any], Host]] = []
        missing: list[Host] = []
        for host in hosts:
            value = _fact(host.facts, key)
            if value is _MISSING:
                missing.append(host)
            else:
                present.append((_sort_key(value), host))
        present.sort(key=_first, reverse=spec.order.descending)
        return [host for _, host in present] + missing
    return list(hosts)


def _grouped(hosts: list[Host], fact: str) -> list[Host]:
    _, groups, missing = _classify(hosts, fact)
    out = [hosts[p] for key in sorted(groups, key=_sort_key) for p in groups[key]]
    out.extend(hosts[p] for p in missing)
    return out


def _classify(
    hosts: Sequence[Host], fact: str
) -> tuple[list[Any], dict[Any, list[int]], list[int]]:
    """Each host's value of ``fact`` (None when it has none), the positions
    of the hosts by value, each list in order, and the positions of the
    hosts without the fact. Values that cannot be keys (lists, mappings)
    are replaced by their repr."""
    values = [host.facts.get(fact) for host in hosts]
    if "." in fact:
        values = [
            _fact(host.facts, fact) if value is None else value
            for value, host in zip(values, hosts, strict=True)
        ]
        values = [None if value is _MISSING else value for value in values]
    groups: dict[Any, list[int]] = {}
    missing: list[int] = []
    for position, value in enumerate(values):
        if value is None:
            missing.append(position)
            continue
        try:
            groups[value].append(position)
        except KeyError:
            groups[value] = [position]
        except TypeError:
            value = values[position] = repr(value)
            groups.setdefault(value, []).append(position)
    return values, groups, missing


_name: Callable[[Host], str] = operator.attrgetter("name")


def _first(pair: tuple[tuple[int, Any], Host]) -> tuple[int, Any]:
    return pair[0]


_MISSING: Any = object()


def _fact(facts: Mapping[str, Any], key: str) -> Any:
    """A fact's value, or _MISSING (null counts as missing); ``a.b`` is
    facts["a.b"] or facts["a"]["b"], as in targeting expressions."""
    value = facts.get(key)
    if value is not None:
        return value
    if "." in key:
        parts = key.split(".")
        for cut in range(1, len(parts)):
            inner = facts.get(".".join(parts[:cut]))
            if isinstance(inner, Mapping):
                found = _fact(inner, ".".join(parts[cut:]))
                if found is not _MISSING:
                    return found
    return _MISSING


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order before everything else as text."""
    if _is_number(value):
        return (0, value)
    return (1, str(value))


@dataclass(frozen=True)
class PlanBudget:
    """Failure budgets in numbers of hosts; None is no limit. A budget is
    breached when the failures exceed it."""

    max_failures: int | None
    batches: tuple[int | None, ...]  # one per batch
    count_as_failure: tuple[str, ...]
    on_breach: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_failures": self.max_failures,
            "batches": list(self.batches),
            "count_as_failure": list(self.count_as_failure),
            "on_breach": self.on_breach,
        }


@dataclass(frozen=True)
class Plan:
    """The batches of a rollout: host names only, in order.

    ``hosts`` are the hosts in the order they run: the batches one after
    the other (``max_per_group`` may move a host after others that came
    later in the order). ``gates[i]`` are the gates to pass after batch ``i``; ``before_first``
    the window gates that hold the first batch. ``concurrency[i]`` is the
    number of hosts in flight in batch ``i``. In window mode there is one
    batch of every host (none without hosts), its concurrency the window,
    and the window gates hold every host's start, not only the first.
    ``notes`` tell what in the spec does not apply to these hosts."""

    mode: str
    hosts: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    concurrency: tuple[int, ...]
    budget: PlanBudget
    before_first: tuple[Gate, ...]
    gates: tuple[tuple[Gate, ...], ...]
    estimated_seconds: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        gate_dicts: dict[int, dict[str, Any]] = {}

        def as_dict(gate: Gate) -> dict[str, Any]:
            if gate.index not in gate_dicts:
                gate_dicts[gate.index] = gate.to_dict()
            return gate_dicts[gate.index]

        return {
            "mode": self.mode,
            "hosts": list(self.hosts),
            "batches": [list(batch) for batch in self.batches],
            "concurrency": list(self.concurrency),
            "budget": self.budget.to_dict(),
            "before_first": [as_dict(g) for g in self.before_first],
            "gates": [[as_dict(g) for g in gates] for gates in self.gates],
            "estimated_seconds": self.estimated_seconds,
            "notes": list(self.notes),
        }


def plan(
    spec: RolloutSpec,
    hosts: Sequence[Host],
    *,
    canary: Sequence[Host] = (),
    host_seconds: float | None = None,
) -> Plan:
    """Lay ``hosts`` (the resolved target) out in batches.

    ``canary`` are the hosts the spec's ``canary`` resolved to; the caller
    resolves it. ``host_seconds`` (how long one host takes) overrides the
    spec's estimate."""
    per_host = spec.host_seconds if host_seconds is None else host_seconds
    if not per_host > 0:
        raise ValueError(f"host_seconds must be above 0, not {per_host}")
    ordered = order_hosts(spec, hosts, canary)
    names = tuple(map(_name, ordered))
    total = len(names)

    batches: list[tuple[str, ...]]
    concurrency: tuple[int, ...]
    if spec.mode == "window":
        # One batch of every host, ``concurrency`` of them in flight: a new
        # host starts as soon as one finishes.
        if spec.concurrency is None:
            raise ValueError("window mode needs a concurrency")
        batches = [names] if total else []
        concurrency = (min(_count(spec.concurrency, total), total),) if total else ()
    else:
        if spec.max_per_group is not None and total:
            batches = _limited_batches(ordered, names, spec.batches, spec.max_per_group)
            names = tuple(itertools.chain.from_iterable(batches))
        else:
            batches = []
            start = 0
            for size in batch_sizes(spec.batches, total):
                batches.append(names[start : start + size])
                start += size
        concurrency = tuple(_in_flight(spec.concurrency, len(b)) for b in batches)

    count = len(batches)
    before_first, gates, notes = _gates(spec, count)

    budgets: dict[int, int | None] = {}
    per_batch = []
    for batch in batches:
        size = len(batch)
        if size not in budgets:
            budgets[size] = spec.batch_budget.resolve(size)
        per_batch.append(budgets[size])
    budget = PlanBudget(
        spec.failure_budget.resolve(total),
        tuple(per_batch),
        spec.count_as_failure,
        spec.on_breach,
    )

    pauses = sum(g.pause or 0.0 for after in gates for g in after)
    # A wave's rounds; in window mode the one batch is ceil(hosts / window).
    rounds = sum(-(-len(b) // c) for b, c in zip(batches, concurrency, strict=True))
    return Plan(
        mode=spec.mode,
        hosts=names,
        batches=tuple(batches),
        concurrency=concurrency,
        budget=budget,
        before_first=before_first,
        gates=gates,
        estimated_seconds=rounds * per_host + pauses,
        notes=notes,
    )


_gate_index: Callable[[Gate], int] = operator.attrgetter("index")


def _in_flight(concurrency: Size | None, size: int) -> int:
    if concurrency is None:
        return size
    if isinstance(concurrency, Percent):
        return max(1, concurrency.of(size))
    return min(concurrency, size)


def _gates(
    spec: RolloutSpec, count: int
) -> tuple[tuple[Gate, ...], tuple[tuple[Gate, ...], ...], tuple[str, ...]]:
    """The window gates before the first batch, the gates after each batch,
    and notes about gates that never apply."""
    windows = tuple(g for g in spec.gates if g.kind == "window")
    between = tuple(g for g in spec.gates if g.after is None)  # windows included
    explicit: dict[int, list[Gate]] = {}
    notes: list[str] = []
    for gate in spec.gates:
        if gate.after is None:
            continue
        for index in gate.after:
            if index < count:
                explicit.setdefault(index, []).append(gate)
            else:
                last = f"0-{count - 1}" if count else "none"
                notes.append(
                    f"gates[{gate.index}]: after batch {index}, but the plan has "
                    f"{count} batches ({last}); it never applies"
                )
    after: list[tuple[Gate, ...]] = []
    for i in range(count):
        base = between if i < count - 1 else ()
        extra = explicit.get(i)
        # Gates in the order the spec lists them; batches without an explicit
        # gate share one tuple.
        after.append(tuple(sorted((*base, *extra), key=_gate_index)) if extra else base)
    return (windows if count else ()), tuple(after), tuple(notes)


def _limited_batches(
    hosts: Sequence[Host],
    names: tuple[str, ...],
    sizes: Sequence[Size],
    limit: GroupLimit,
) -> list[tuple[str, ...]]:
    """Batches in which no more than ``limit.max`` hosts share a value of
    ``limit.fact``; hosts that do not fit wait, in order, for the next ones.

    Hosts are numbered by their position in the order. Each group (a value
    of the fact) queues its positions; the heap holds the first ``max``
    waiting positions of every group and the hosts without the fact: the
    hosts eligible for the next batch. A batch takes the lowest eligible
    positions until it is full or nothing is eligible (a group's first
    waiting hosts, so never more than ``max`` of it), then each group it
    took from lets as many of its next waiting hosts in.
    Every host enters and leaves the heap once: O(n log n) at worst, and
    large batches are sorted slices rather than one pop per host."""
    total = len(names)
    counts = [_count(size, total) for size in sizes]
    cap = limit.max
    values, groups, free = _classify(hosts, limit.fact)
    heads = {value: min(cap, len(queue)) for value, queue in groups.items()}
    heap = [p for queue in groups.values() for p in queue[:cap]]
    heap.extend(free)  # hosts without the fact are always eligible
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush

    batches: list[tuple[str, ...]] = []
    left = total
    while left:
        size = min(counts[min(len(batches), len(counts) - 1)], left, len(heap))
        if size * 8 >= len(heap):
            # A large share of the eligible hosts: sorting is cheaper than
            # popping one by one, and what is left, sorted, is still a heap.
            heap.sort()
            taken = heap[:size]
            del heap[:size]
        else:
            taken = [pop(heap) for _ in range(size)]
        # Each host taken from a group lets the group's next waiting host in.
        refills: list[int] = []
        for value, used in Counter(map(values.__getitem__, taken)).items():
            if value is None:
                continue
            queue, head = groups[value], heads[value]
            refills.extend(queue[head : head + used])
            heads[value] = head + used
        if len(refills) * 4 > len(heap):
            heap.extend(refills)
            heapq.heapify(heap)
        else:
            for position in refills:
                push(heap, position)
        batches.append(tuple(map(names.__getitem__, taken)))
        left -= size
    return batches


def _exact(number: float) -> Fraction:
    """The decimal number as written (``0.7`` is 7/10, not the nearest float)."""
    return Fraction(repr(number)) if isinstance(number, float) else Fraction(number)


def _number_text(number: float) -> str:
    return str(int(number)) if number == int(number) else repr(number)
