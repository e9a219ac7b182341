"""Rules: "when this trigger fires and these criteria hold, run that action".

A rule is stored as the mapping StackStorm's API uses (``name``, ``pack``,
``enabled``, ``trigger: {type, ref, parameters}``, ``criteria``,
``action: {ref, parameters}``), plus Squall's optional event hygiene:

* ``throttle: {once_within | once_after: PERIOD, group_by: [PATH, ...]}``
  — ``once_within`` runs the action for the first event of a group and
  drops the others until the period has passed; ``once_after`` opens a
  window at the first event and runs the action once when it closes, with
  the last event;
* ``accumulate: {count: N, within: PERIOD, group_by: [...]}`` — collects
  events and runs the action once with all of them (``events`` in the
  templates) when ``count`` arrived or when the window closes.

:func:`compile_rule` checks a rule and prepares it for fast matching;
:class:`RuleIndex` finds the rules of a trigger; :func:`on_event` and
:func:`on_close` decide what hygiene does with an event. No I/O here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from squall.core.criteria import Criteria, compile_criteria
from squall.core.criteria import lookup as payload_lookup
from squall.core.triggers import trigger_ref
from squall.errors import InvalidInput

MAX_ACCUMULATE = 1000  # events one action call can receive
_PERIOD_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_PERIOD_UNITS = {
    "": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_THROTTLE_MODES = ("once_within", "once_after")


def parse_period(value: Any, what: str) -> float:
    """Seconds in ``value``: a number of seconds, or text like "5 minutes", "30s", "1h"."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a period such as 30, '30s' or '5 minutes'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _PERIOD_RE.fullmatch(str(value))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _PERIOD_UNITS:
            raise InvalidInput(f'{what}: "{value}" is not a period such as 30s, 5 minutes or 1h')
        seconds = float(match.group(1)) * _PERIOD_UNITS[unit]
    if seconds <= 0:
        raise InvalidInput(f"{what} must be longer than zero")
    return seconds


@dataclass(frozen=True)
class Throttle:
    mode: str  # "once_within" | "once_after"
    period: float
    group_by: tuple[str, ...]


@dataclass(frozen=True)
class Accumulate:
    count: int | None
    within: float | None
    group_by: tuple[str, ...]


def _group_by(spec: Mapping[str, Any], what: str) -> tuple[str, ...]:
    paths = spec.get("group_by", spec.get("group_by_attributes")) or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise InvalidInput(
            f"{what}.group_by must be a list of payload paths like trigger.body.host"
        )
    return tuple(paths)


def parse_throttle(spec: Any) -> Throttle | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise InvalidInput("throttle must be a mapping with once_within or once_after")
    unknown = set(spec) - {*_THROTTLE_MODES, "group_by", "group_by_attributes"}
    if unknown:
        raise InvalidInput(f"throttle: unknown field {sorted(unknown)[0]!r}")
    modes = [m for m in _THROTTLE_MODES if m in spec]
    if len(modes) != 1:
        raise InvalidInput("throttle needs exactly one of once_within and once_after")
    mode = modes[0]
    return Throttle(mode, parse_period(spec[mode], f"throttle.{mode}"), _group_by(spec, "throttle"))


def parse_accumulate(spec: Any) -> Accumulate | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise InvalidInput("accumulate must be a mapping with count and/or within")
    unknown = set(spec) - {"count", "within", "group_by", "group_by_attributes"}
    if unknown:
        raise InvalidInput(f"accumulate: unknown field {sorted(unknown)[0]!r}")
    count = spec.get("count")
    if count is not None and (
        not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_ACCUMULATE
    ):
        raise InvalidInput(f"accumulate.count must be a whole number from 1 to {MAX_ACCUMULATE}")
    within = spec.get("within")
    period = None if within is None else parse_period(within, "accumulate.within")
    if count is None and period is None:
        raise InvalidInput("accumulate needs count, within, or both")
    return Accumulate(count, period, _group_by(spec, "accumulate"))


@dataclass(frozen=True)
class CompiledRule:
    ref: str
    id: str
    pack: str
    enabled: bool
    trigger_type: str
    trigger_ref: str
    criteria: Criteria
    action_ref: str
    action_parameters: Mapping[str, Any]
    throttle: Throttle | None
    accumulate: Accumulate | None
    meta: Mapping[str, Any] = field(repr=False)

    @property
    def group_by(self) -> tuple[str, ...]:
        hygiene = self.throttle or self.accumulate
        return hygiene.group_by if hygiene else ()


def normalize(data: Mapping[str, Any], *, pack: str | None = None) -> dict[str, Any]:
    """The stored form of a rule given to the API or read from a pack.

    Fills in StackStorm's defaults and the trigger's ref; raises
    :class:`InvalidInput` naming the problem. References to trigger types
    and actions are checked by the caller, which knows what exists.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("a rule must be a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput('a rule needs a non-empty "name"')
    rule_pack = data.get("pack") or pack or "default"
    if not isinstance(rule_pack, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", rule_pack):
        raise InvalidInput(f'rule "{name}": "pack" must be a pack name')
    trigger = data.get("trigger")
    if not isinstance(trigger, Mapping) or not isinstance(trigger.get("type"), str):
        raise InvalidInput(f'rule "{name}": "trigger" must be a mapping with a "type"')
    action = data.get("action")
    if not isinstance(action, Mapping) or not isinstance(action.get("ref"), str):
        raise InvalidInput(f'rule "{name}": "action" must be a mapping with a "ref"')
    t_params = trigger.get("parameters") or {}
    a_params = action.get("parameters") or {}
    for what, value in (("trigger.parameters", t_params), ("action.parameters", a_params)):
        if not isinstance(value, Mapping):
            raise InvalidInput(f'rule "{name}": "{what}" must be a mapping')
    criteria = data.get("criteria") or {}
    if not isinstance(criteria, Mapping):
        raise InvalidInput(f'rule "{name}": "criteria" must be a mapping')
    enabled = data.get("enabled", False)
    if not isinstance(enabled, bool):
        raise InvalidInput(f'rule "{name}": "enabled" must be true or false')
    rule = {
        key: value
        for key, value in data.items()
        if key not in ("id", "uid", "ref", "trigger", "action", "criteria", "pack", "name")
    }
    rule.update(
        name=name,
        pack=rule_pack,
        ref=f"{rule_pack}.{name}",
        uid=f"rule:{rule_pack}:{name}",
        description=data.get("description") or "",
        enabled=enabled,
        trigger={
            "type": trigger["type"],
            "ref": trigger_ref(trigger["type"], t_params),
            "parameters": dict(t_params),
        },
        criteria=dict(criteria),
        action={"ref": action["ref"], "parameters": dict(a_params)},
        context=dict(data.get("context") or {}),
        tags=list(data.get("tags") or []),
        type=dict(data.get("type") or {"ref": "standard", "parameters": {}}),
    )
    if action.get("description"):
        rule["action"]["description"] = action["description"]
    return rule


def compile_rule(meta: Mapping[str, Any]) -> CompiledRule:
    """Check a stored rule's criteria and hygiene and prepare them for matching."""
    ref = str(meta.get("ref"))
    try:
        criteria = compile_criteria(meta.get("criteria") or {})
        throttle = parse_throttle(meta.get("throttle"))
        accumulate = parse_accumulate(meta.get("accumulate"))
    except InvalidInput as exc:
        raise InvalidInput(f"rule {ref}: {exc.message}") from None
    if throttle and accumulate:
        raise InvalidInput(f"rule {ref}: use throttle or accumulate, not both")
    return CompiledRule(
        ref=ref,
        id=str(meta.get("id") or ""),
        pack=str(meta["pack"]),
        enabled=bool(meta.get("enabled")),
        trigger_type=str(meta["trigger"]["type"]),
        trigger_ref=str(meta["trigger"]["ref"]),
        criteria=criteria,
        action_ref=str(meta["action"]["ref"]),
        action_parameters=meta["action"].get("parameters") or {},
        throttle=throttle,
        accumulate=accumulate,
        meta=meta,
    )


class RuleIndex:
    """Enabled rules by the trigger they listen to."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self._by_trigger: dict[str, list[CompiledRule]] = {}
        self.by_ref: dict[str, CompiledRule] = {}
        for rule in rules:
            self.by_ref[rule.ref] = rule
            if rule.enabled:
                self._by_trigger.setdefault(rule.trigger_ref, []).append(rule)

    def for_trigger(self, ref: str) -> Sequence[CompiledRule]:
        return self._by_trigger.get(ref, ())

    def listens(self, ref: str) -> bool:
        return ref in self._by_trigger

    def __len__(self) -> int:
        return len(self.by_ref)


def group_key(paths: Sequence[str], payload: Any) -> str:
    """Which group an event belongs to, from the values at ``paths``."""
    if not paths:
        return ""
    values = [repr(payload_lookup(payload, p)) for p in paths]
    text = "\x1f".join(values)
    if len(text) <= 200:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------
# Event hygiene


@dataclass
class Window:
    """An open throttle or accumulate window of one rule and group."""

    opened_at: float
    closes_at: float
    count: int
    instances: list[str]


@dataclass(frozen=True)
class Decision:
    fire: bool  # start the action now, for ``instances``
    status: str  # the enforcement's status when not firing
    window: Window | None  # the window to keep (None: there is none)
    close_at: float | None = None  # when :func:`on_close` must run for a new window
    instances: tuple[str, ...] = ()


FOREVER = float("inf")
THROTTLED = "throttled"  # dropped by once_within
DEFERRED = "deferred"  # waiting in a once_after or accumulate window


def on_event(rule: CompiledRule, window: Window | None, instance_id: str, now: float) -> Decision:
    """What to do with a matching event, given the rule's open window."""
    expired = window is not None and window.closes_at <= now
    if expired and rule.throttle is not None and rule.throttle.mode == "once_within":
        window = None  # the next event fires again
    throttle, accumulate = rule.throttle, rule.accumulate
    if throttle is not None and throttle.mode == "once_within":
        if window is None:
            new = Window(now, now + throttle.period, 1, [instance_id])
            return Decision(True, "", new, close_at=None, instances=(instance_id,))
        window.count += 1
        return Decision(False, THROTTLED, window)
    if throttle is not None:  # once_after: one action when the window closes, with the last event
        if window is None:
            new = Window(now, now + throttle.period, 1, [instance_id])
            return Decision(False, DEFERRED, new, close_at=new.closes_at)
        window.count += 1
        window.instances = [instance_id]
        return Decision(False, DEFERRED, window)
    if accumulate is not None:
        if window is None:
            closes = now + accumulate.within if accumulate.within else FOREVER
            window = Window(now, closes, 0, [])
            close_at = closes if accumulate.within else None
        else:
            close_at = None
        window.count += 1
        window.instances.append(instance_id)
        if accumulate.count is not None and window.count >= accumulate.count:
            return Decision(True, "", None, instances=tuple(window.instances))
        return Decision(False, DEFERRED, window, close_at=close_at)
    return Decision(True, "", None, instances=(instance_id,))


def on_close(rule: CompiledRule, window: Window | None, now: float) -> Decision:
    """A window's time is up: fire for what it holds, or just forget it."""
    if window is None or window.closes_at > now or not window.instances:
        return Decision(False, "", window)
    if rule.throttle is not None and rule.throttle.mode == "once_within":
        return Decision(False, "", None)
    return Decision(True, "", None, instances=tuple(window.instances))


RenderFn = Callable[[Any], Any]
