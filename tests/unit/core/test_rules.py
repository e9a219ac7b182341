from typing import Any

import pytest

from squall.core import rules
from squall.core.rules import DEFERRED, THROTTLED
from squall.core.triggers import trigger_ref
from squall.errors import InvalidInput


def rule(**extra: Any) -> rules.CompiledRule:
    meta = rules.normalize(
        {
            "name": "r",
            "pack": "p",
            "enabled": True,
            "trigger": {"type": "core.st2.webhook", "parameters": {"url": "alerts"}},
            "action": {"ref": "core.noop"},
            **extra,
        }
    )
    return rules.compile_rule({**meta, "id": "1"})


def test_normalize_fills_in_stackstorm_defaults():
    meta = rules.normalize(
        {
            "name": "n",
            "trigger": {"type": "core.st2.generic.actiontrigger"},
            "action": {"ref": "a.b"},
        }
    )
    assert meta["pack"] == "default"
    assert meta["ref"] == "default.n"
    assert meta["uid"] == "rule:default:n"
    assert meta["enabled"] is False  # as in StackStorm
    assert meta["trigger"]["ref"] == "core.st2.generic.actiontrigger"
    assert meta["type"] == {"ref": "standard", "parameters": {}}


def test_parameterised_triggers_get_a_stable_ref():
    a = trigger_ref("core.st2.webhook", {"url": "x"})
    assert a == trigger_ref("core.st2.webhook", {"url": "x"})
    assert a != trigger_ref("core.st2.webhook", {"url": "y"})
    assert a.startswith("core.")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trigger": {"type": "t"}, "action": {"ref": "a"}}, "name"),
        ({"name": "n", "action": {"ref": "a"}}, '"trigger"'),
        ({"name": "n", "trigger": {"type": "t"}}, '"action"'),
        (
            {"name": "n", "trigger": {"type": "t"}, "action": {"ref": "a"}, "enabled": "y"},
            "enabled",
        ),
    ],
)
def test_normalize_names_what_is_wrong(data, message):
    with pytest.raises(InvalidInput, match=message):
        rules.normalize(data)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), ("30s", 30.0), ("5 minutes", 300.0), ("1h", 3600.0), ("2 days", 172800.0)],
)
def test_periods(value, seconds):
    assert rules.parse_period(value, "p") == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", 0, "5 fortnights", True])
def test_bad_periods(value):
    with pytest.raises(InvalidInput):
        rules.parse_period(value, "throttle.once_within")


def test_hygiene_specs_are_checked():
    with pytest.raises(InvalidInput, match="exactly one"):
        rule(throttle={"once_within": 5, "once_after": 5})
    with pytest.raises(InvalidInput, match="not both"):
        rule(throttle={"once_within": 5}, accumulate={"count": 2})
    with pytest.raises(InvalidInput, match="count"):
        rule(accumulate={"count": 0})
    with pytest.raises(InvalidInput, match="unknown field"):
        rule(throttle={"once_within": 5, "per": "host"})


def test_once_within_fires_first_and_drops_the_rest_until_the_window_ends():
    r = rule(throttle={"once_within": "60s"})
    first = rules.on_event(r, None, "e1", 100.0)
    assert first.fire and first.instances == ("e1",)
    second = rules.on_event(r, first.window, "e2", 130.0)
    assert not second.fire and second.status == THROTTLED
    assert second.window is not None and second.window.count == 2
    third = rules.on_event(r, second.window, "e3", 161.0)
    assert third.fire and third.instances == ("e3",)


def test_once_after_fires_once_at_the_end_with_the_last_event():
    r = rule(throttle={"once_after": 10})
    d1 = rules.on_event(r, None, "e1", 0.0)
    assert not d1.fire and d1.status == DEFERRED and d1.close_at == 10.0
    d2 = rules.on_event(r, d1.window, "e2", 5.0)
    assert not d2.fire and d2.close_at is None
    assert rules.on_close(r, d2.window, 9.0).fire is False  # early wake-up: not yet
    closed = rules.on_close(r, d2.window, 10.0)
    assert closed.fire and closed.instances == ("e2",) and closed.window is None


def test_accumulate_by_count_and_by_time():
    r = rule(accumulate={"count": 3, "within": "1 minute"})
    d = rules.on_event(r, None, "a", 0.0)
    assert d.close_at == 60.0
    d = rules.on_event(r, d.window, "b", 1.0)
    d = rules.on_event(r, d.window, "c", 2.0)
    assert d.fire and d.instances == ("a", "b", "c") and d.window is None

    timed = rules.on_event(r, None, "x", 0.0)
    closed = rules.on_close(r, timed.window, 60.0)
    assert closed.fire and closed.instances == ("x",)


def test_group_keys_separate_hosts():
    paths = ("trigger.body.host",)
    a = rules.group_key(paths, {"body": {"host": "web-1"}})
    b = rules.group_key(paths, {"body": {"host": "web-2"}})
    assert a != b
    assert a == rules.group_key(paths, {"body": {"host": "web-1", "other": 1}})
    assert rules.group_key((), {"body": {}}) == ""


def test_index_only_holds_enabled_rules_by_trigger():
    on = rule()
    off = rules.compile_rule(
        {**rules.normalize({**on.meta, "name": "off", "enabled": False}), "id": "2"}
    )
    index = rules.RuleIndex([on, off])
    assert [r.ref for r in index.for_trigger(on.trigger_ref)] == ["p.r"]
    assert index.for_trigger("nothing") == ()
    assert len(index) == 2
