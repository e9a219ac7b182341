"""Tests for squall.core.rollouts: the rollout spec and the batch planner."""

from __future__ import annotations

import random
import textwrap
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from squall.core import rollouts
from squall.core.inventory import Host
from squall.core.rollouts import (
    Gate,
    GroupLimit,
    Order,
    Percent,
    Plan,
    RolloutSpec,
    RolloutSpecInvalid,
    batch_sizes,
    check_cron,
    order_hosts,
    parse_duration,
    parse_spec,
    plan,
)
from squall.errors import InvalidInput

FULL = """
name: patch-openssl
description: Patch OpenSSL everywhere
target: "hagroup=a or hagroup=b"
action: examples.patch_host
parameters: {package: openssl}
host_parameter: host
batches: [1, "10%", "50%", "100%"]
mode: waves
concurrency: 20
order: inventory
seed: 42
canary: [web-01, web-02]
group_by: hagroup
max_per_group: {fact: lb_pool, max: 1}
stop_on_first_failure: false
max_failures: 5
max_failure_percent: 2.5
batch_budget: {max_failures: 1, max_failure_percent: 10}
count_as_failure: [failed, unreachable, timeout]
on_breach: finish
gates:
  - after: each
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
analysis:
  - name: error-rate
    provider: prometheus
    url: http://prometheus:9090
    query: 'sum(rate(http_errors_total[5m]))'
    interval: 1m
    count: 5
    success: "result < 0.01"
    failure: "result > 0.05"
    failure_limit: 1
rollback: {action: examples.unpatch_host, parameters: {}, automatic: true}
estimate: {host_seconds: 30}
"""


def _spec(**fields: Any) -> RolloutSpec:
    data: dict[str, Any] = {"name": "r", "target": "all", "action": "examples.patch_host"}
    if fields.get("mode") != "window":
        data["batches"] = [1]
    data.update(fields)
    return parse_spec(data)


def _hosts(count: int, **facts: Any) -> list[Host]:
    """Hosts h00..; a fact given as a list is cycled through."""
    out = []
    for i in range(count):
        values = {k: v[i % len(v)] if isinstance(v, list) else v for k, v in facts.items()}
        values = {k: v for k, v in values.items() if v is not None}
        out.append(Host(f"h{i:02d}", f"h{i:02d}", facts=values))
    return out


def _names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


def _problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(RolloutSpecInvalid) as caught:
        parse_spec(data)
    return [(p.path, p.message) for p in caught.value.problems]


# --- the spec --------------------------------------------------------------------


def test_full_spec_is_read_and_normalized() -> None:
    spec = parse_spec(yaml.safe_load(FULL))
    assert spec.name == "patch-openssl"
    assert spec.batches == (1, Percent(10), Percent(50), Percent(100))
    assert spec.concurrency == 20
    assert spec.seed == 42
    assert spec.canary == ("web-01", "web-02")
    assert spec.max_per_group == GroupLimit("lb_pool", 1)
    assert spec.max_failure_percent == 2.5
    assert spec.batch_budget.max_failures == 1
    assert [g.kind for g in spec.gates] == ["pause", "approval", "hold", "analysis", "window"]
    assert spec.gates[0].pause == 600.0
    assert spec.gates[0].after is None
    approval = spec.gates[1].approval
    assert approval is not None and approval.timeout == 4 * 3600
    assert spec.gates[1].after == (0,)
    window = spec.gates[4].window
    assert window is not None and window.duration == 6 * 3600
    assert window.timezone == "Europe/Paris"
    health = spec.checks.health
    assert health is not None and health.http is not None
    assert (health.interval, health.timeout, health.successes) == (10.0, 5.0, 2)
    assert spec.checks.preflight is not None and spec.checks.preflight.on_fail == "exclude"
    assert spec.hooks.pre_host is not None and spec.hooks.pre_host.parameters == {"pool": "web"}
    assert spec.hooks.post_host is not None and spec.hooks.post_host.parameters == {}
    assert spec.analysis[0].interval == 60.0
    assert spec.rollback is not None and spec.rollback.automatic
    assert spec.host_seconds == 30.0


def test_module_documentation_example_is_valid() -> None:
    doc = rollouts.__doc__ or ""
    example = doc.split("A spec, with every key", 1)[1].split("::\n", 1)[1]
    example = example.split("\n\nBatches.", 1)[0]
    spec = parse_spec(yaml.safe_load(textwrap.dedent(example)))
    assert spec.hooks.on_failure is not None


def test_defaults() -> None:
    spec = _spec()
    assert spec.mode == "waves"
    assert spec.host_parameter == "host"
    assert spec.parameters == {}
    assert spec.order == Order("inventory")
    assert spec.count_as_failure == ("failed", "unreachable", "timeout")
    assert spec.on_breach == "finish"
    assert spec.host_seconds == 60.0
    assert spec.concurrency is None
    assert spec.failure_budget.resolve(100) is None


def test_single_batch_size_and_seed_derived_from_the_name() -> None:
    spec = _spec(batches="25%")
    assert spec.batches == (Percent(25),)
    assert spec.seed == _spec(batches=3).seed  # the same name
    assert spec.seed != parse_spec({**_base("other"), "batches": 1}).seed


def _base(name: str) -> dict[str, Any]:
    return {"name": name, "target": "all", "action": "a.b"}


def test_parameters_are_copied() -> None:
    parameters = {"package": {"name": "openssl"}}
    spec = _spec(parameters=parameters)
    parameters["package"]["name"] = "changed"
    assert spec.parameters == {"package": {"name": "openssl"}}


def test_every_problem_is_reported_with_its_path() -> None:
    problems = _problems(
        {
            "name": "bad name!",
            "target": "hagroup=",
            "action": "nodot",
            "parameters": {"host": "x"},
            "batches": [1, "150%", 0, "abc", "0%"],
            "concurrency": 0,
            "order": "random",
            "canary": ["web-01", "web-01"],
            "group_by": 7,
            "max_per_group": {"fact": "lb_pool", "max": 0},
            "max_failures": -1,
            "max_failure_percent": 120,
            "batch_budget": {"max_failure": 1},
            "count_as_failure": ["failed", "crashed"],
            "on_breach": "stop",
            "gates": [
                {"pause": "10x"},
                {"after": 0, "approval": {"users": "alice", "on_timeout": "later"}},
                {"hold": False},
                {"after": "each", "analysis": "latency"},
                {"window": {"cron": "0 25 * * *", "duration": "6h", "timezone": "Mars/Base"}},
                {"pause": 10, "hold": True},
                {},
                {"after": [0, -1], "pause": 1},
                {"window": {"cron": "0 22 * * *", "duration": "1h"}, "after": 0},
            ],
            "checks": {
                "preflight": {"command": "true", "on_fail": "skip"},
                "health": {"http": {"url": "x", "status": 700, "body": "("}, "tcp": {"port": 0}},
                "smoke": {},
            },
            "hooks": {"pre_host": {"action": "lb"}, "prehost": {}, "post_host": {"parameters": {}}},
            "analysis": [
                {"name": "error-rate", "provider": "prometheus", "url": "http://p"},
                {"name": "error-rate", "provider": "dns", "success": "x"},
                {"name": "cmd", "provider": "command", "command": "x", "url": "u", "success": ""},
            ],
            "rollback": {"parameters": {}, "automatic": "yes"},
            "estimate": {"host_seconds": 0},
            "colour": "blue",
        }
    )
    expected = {
        "colour": 'unknown key "colour"',
        "name": "may hold only",
        "target": "syntax error",
        "action": "is not an action reference",
        "parameters.host": "host_parameter",
        "batches[1]": '"150%" is over 100%',
        "batches[2]": "must be at least 1",
        "batches[3]": 'percentage like "10%", not "abc"',
        "batches[4]": '"0%" must be more than 0%',
        "concurrency": "must be at least 1",
        "order": "must be inventory, sorted, reverse, shuffle",
        "canary[1]": "is already canary[0]",
        "group_by": "must be a non-empty string",
        "max_per_group.max": "at least 1",
        "max_failures": "at least 0",
        "max_failure_percent": "from 0 to 100",
        "batch_budget.max_failure": 'did you mean "max_failures"',
        "count_as_failure[1]": "must be failed, unreachable or timeout",
        "on_breach": "must be finish or cancel",
        "gates[0].pause": "is not a duration",
        "gates[1].approval.users": "must be a list of names",
        "gates[1].approval.on_timeout": "must be abort or continue",
        "gates[2].hold": "must be true",
        "gates[4].window.cron": 'the hour field "25" is wrong: 25 is outside 0-23',
        "gates[4].window.timezone": "unknown time zone",
        "gates[5]": "needs exactly one of pause, approval, hold, analysis, window (it has",
        "gates[6]": "needs exactly one of",
        "gates[7].after[1]": "at least 0",
        "gates[8].after": "a window gate holds every batch",
        "checks.preflight.on_fail": "must be exclude or abort",
        "checks.health": "needs exactly one of command, http or tcp (it has http and tcp)",
        "checks.health.http.status": "100 to 599",
        "checks.health.http.body": "not a valid regular expression",
        "checks.health.tcp.port": "1 to 65535",
        "checks.smoke": 'unknown key "smoke"',
        "hooks.prehost": 'did you mean "pre_host"',
        "hooks.pre_host.action": "is not an action reference",
        "hooks.post_host.action": "is required",
        "analysis[0].query": "is required by the prometheus provider",
        "analysis[0]": "needs a success or a failure condition",
        "analysis[1].provider": "must be prometheus, http or command",
        "analysis[2].url": "is not used by the command provider",
        "analysis[2].success": "must be a non-empty string",
        "rollback.action": "is required",
        "rollback.automatic": "must be true or false",
        "estimate.host_seconds": "must be a number above 0",
        "gates[3].analysis": '"latency" is not the name of an entry of analysis (cmd, error-rate)',
    }
    for path, fragment in expected.items():
        assert any(p == path and fragment in m for p, m in problems), (path, problems)
    assert len(problems) == len(expected)
    assert "allowed: name, description, target" in dict(problems)["colour"]


def test_analysis_names_are_unique() -> None:
    entry = {"provider": "command", "command": "check", "failure": "result > 1"}
    problems = _problems(
        {
            **_base("r"),
            "batches": 1,
            "analysis": [{"name": "a", **entry}, {"name": "a", **entry}],
            "gates": [{"analysis": "a"}],
        }
    )
    assert problems == [("analysis[1].name", '"a" is already the name of analysis[0]')]


def test_error_lists_every_problem_and_serializes() -> None:
    with pytest.raises(RolloutSpecInvalid) as caught:
        parse_spec(
            {"name": "r", "target": "all", "action": "a.b", "batches": ["150%", 0]}, "x.yaml"
        )
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.message.splitlines() == [
        "rollout x.yaml has 2 problems:",
        '  batches[0]: "150%" is over 100%',
        "  batches[1]: 0 is not a number of hosts; it must be at least 1",
    ]
    data = error.to_dict()
    assert data["problems"] == [
        {"path": "batches[0]", "message": '"150%" is over 100%'},
        {"path": "batches[1]", "message": "0 is not a number of hosts; it must be at least 1"},
    ]
    assert data["faultstring"] == error.message


def test_required_keys_and_not_a_mapping() -> None:
    assert _problems({}) == [
        ("name", "is required"),
        ("target", "is required"),
        ("action", "is required"),
        ("batches", "is required"),
    ]
    assert _problems(None) == [("", "a rollout spec must be a mapping, not empty")]
    assert _problems([1]) == [("", "a rollout spec must be a mapping, not a list")]


def test_window_mode_requires_concurrency_and_refuses_batches() -> None:
    assert _problems({**_base("r"), "mode": "window"}) == [
        ("concurrency", "is required in window mode: the number of hosts in flight")
    ]
    problems = _problems({**_base("r"), "mode": "window", "concurrency": 5, "batches": [1]})
    assert [p for p, _ in problems] == ["batches"]
    spec = parse_spec({**_base("r"), "mode": "window", "concurrency": "10%"})
    assert spec.batches == () and spec.concurrency == Percent(10)


def test_stop_on_first_failure_contradicts_max_failures() -> None:
    problems = _problems(
        {**_base("r"), "batches": 1, "stop_on_first_failure": True, "max_failures": 3}
    )
    assert problems == [("max_failures", "contradicts stop_on_first_failure: true; keep only one")]


def test_canary_expression_syntax_is_checked() -> None:
    assert _spec(canary="web-* and hagroup=a").canary == "web-* and hagroup=a"
    ((path, message),) = _problems({**_base("r"), "batches": 1, "canary": "(web-01"})
    assert path == "canary" and "syntax error" in message


def test_order_kinds_are_read() -> None:
    assert _spec(order="shuffle", seed=7).order == Order("shuffle")
    assert _spec(order={"fact": "rack", "descending": True}).order == Order("fact", "rack", True)
    problems = _problems({**_base("r"), "batches": 1, "order": {"descending": True, "by": 1}})
    assert ("order.fact", "is required") in problems
    assert any(p == "order.by" for p, _ in problems)


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("10m") == 600
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1d") == 86400
    assert parse_duration(45) == 45.0
    assert parse_duration("1.5s") == 1.5
    for wrong in ("", "10", "1m1h", "-5s", -1, True, "h"):
        with pytest.raises(ValueError):
            parse_duration(wrong)


def test_cron_schedules() -> None:
    for good in ("0 22 * * 1-5", "*/15 * * * *", "0 0 1 jan,jul *", "0 6 * * sun-sat/2", "@daily"):
        assert check_cron(good) is None, good
    assert check_cron("0 22 * *") is not None and "5" in (check_cron("0 22 * *") or "")
    assert "minute" in (check_cron("60 * * * *") or "")
    assert "backwards" in (check_cron("0 5-2 * * *") or "")
    assert "step" in (check_cron("*/0 * * * *") or "")
    assert "day of week" in (check_cron("0 0 * * 8") or "")
    assert check_cron("0 0 * * 7") is None  # Sunday
    # Digits, but not ASCII ones: "\u00b2" is a superscript 2, "\u0661" an Arabic-Indic 1.
    assert check_cron("0 0 * * \u00b2") == (
        'the day of week field "\u00b2" is wrong: "\u00b2" is not a number or a name'
    )
    assert check_cron("0 0 * * \u0661") is not None
    assert check_cron("0 0 30 2 *") == (
        'the day of month "30" never comes in the month "2": "0 0 30 2 *" never fires'
    )
    assert check_cron("0 0 31 4,6,9,11 *") is not None
    assert check_cron("0 0 29 2 *") is None  # leap years
    assert check_cron("0 0 30 2 mon") is None  # or on Mondays


# What check_cron accepts, croniter computes: every form of a field, and
# random expressions made of the pieces check_cron knows and some it does not.
CRON_ACCEPTED = [
    "0 22 * * 1-5",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 * * 5-7",
    "0 0 * * 7/2",
    "0 0 * * sun",
    "0 0 * * SUN",
    "0 0 * * Mon-Fri",
    "0 6 * * sun-sat/2",
    "0 0 1 jan,jul *",
    "0 0 1 JAN-dec/3 *",
    "0 0 1 12/5 *",
    "*/60 * * * *",
    "*/1000 */100 */40 */13 */8",
    "1-5/10 * * * *",
    "00 01 01 01 *",
    "0,15,30,45 0-23 1-31 1-12 0-6",
    "0 0 29 2 *",
    "0 0 30 2 mon",
    "0 0 31 */2 *",
    "0\t22   * * *",
    "  0 22 * * *  ",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@DAILY",
    " @Weekly ",
]


@pytest.mark.parametrize("expression", CRON_ACCEPTED)
def test_what_check_cron_accepts_croniter_computes(expression: str) -> None:
    assert check_cron(expression) is None
    _computes(expression)


# 2024-03-31 03:00 in Paris, as the clocks have just gone forward; 2025-07-01 00:00 UTC.
MOMENTS = (1711846800.0, 1751328000.0)


def _computes(expression: str, moments: tuple[float, ...] = MOMENTS) -> None:
    window = rollouts.Window(expression, 3600, "Europe/Paris")
    for moment in moments:
        _, when = rollouts.window_state([window], moment)
        assert moment < when < float("inf"), expression


def test_random_cron_expressions_check_cron_accepts_croniter_computes() -> None:
    rng = random.Random(7)
    pieces = {
        0: ["*", "0", "59", "5-10", "*/7", "3/4", "0-59/60", "60", "x", "", "1-"],
        1: ["*", "0", "23", "22-23", "*/5", "24", "2/3"],
        2: ["*", "1", "31", "29", "30", "15-20/2", "*/31", "0", "L"],
        3: ["*", "1", "12", "2", "feb", "FEB-apr", "jan,jul", "*/2", "13", "foo"],
        4: ["*", "0", "7", "sun", "mon-fri", "5-7", "7/2", "0-7/3", "8", "fri-sun", "1#2"],
    }
    accepted = 0
    for _ in range(300):
        fields = []
        for index in range(5):
            items = [rng.choice(pieces[index]) for _ in range(rng.choice([1, 1, 1, 2]))]
            fields.append(",".join(items))
        expression = " ".join(fields)
        if check_cron(expression) is None:
            accepted += 1
            _computes(expression, MOMENTS[1:])
    assert accepted > 40


def test_approval_on_timeout_needs_a_timeout() -> None:
    problems = _problems(
        {**_base("r"), "batches": 1, "gates": [{"approval": {"on_timeout": "continue"}}]}
    )
    assert problems == [("gates[0].approval.on_timeout", "needs a timeout")]


# --- batch sizes -----------------------------------------------------------------


def test_batch_sizes_follow_ansible_serial() -> None:
    sizes = (1, Percent(10), Percent(50), Percent(100))
    assert batch_sizes(sizes, 200) == [1, 20, 100, 79]
    assert batch_sizes(Percent(10), 5) == [1, 1, 1, 1, 1]
    assert batch_sizes(sizes, 0) == []
    assert batch_sizes(3, 10) == [3, 3, 3, 1]
    assert batch_sizes([2, 5], 20) == [2, 5, 5, 5, 3]
    assert batch_sizes([50], 10) == [10]
    assert batch_sizes([1, 2, 3], 2) == [1, 1]
    assert batch_sizes(Percent(29), 100) == [29, 29, 29, 13]  # exact, unlike 0.29 * 100
    assert batch_sizes(Percent(2.5), 1000)[0] == 25
    assert sum(batch_sizes([1, Percent(1)], 100_000)) == 100_000


def test_batch_sizes_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        batch_sizes([], 10)
    with pytest.raises(ValueError):
        batch_sizes([0], 10)


# --- order -----------------------------------------------------------------------


def test_order_inventory_sorted_reverse() -> None:
    hosts = [Host(n, n) for n in ("web-2", "db-1", "web-10")]
    assert _names(order_hosts(_spec(), hosts)) == ["web-2", "db-1", "web-10"]
    assert _names(order_hosts(_spec(order="sorted"), hosts)) == ["db-1", "web-10", "web-2"]
    assert _names(order_hosts(_spec(order="reverse"), hosts)) == ["web-10", "db-1", "web-2"]


def test_shuffle_is_reproducible_with_a_seed() -> None:
    hosts = _hosts(50)
    first = _names(order_hosts(_spec(order="shuffle", seed=1), hosts))
    assert first == _names(order_hosts(_spec(order="shuffle", seed=1), hosts))
    assert first != _names(order_hosts(_spec(order="shuffle", seed=2), hosts))
    assert sorted(first) == _names(hosts)
    # Without a seed, the name gives one: the same rollout shuffles the same way.
    unseeded = _names(order_hosts(_spec(order="shuffle"), hosts))
    assert unseeded == _names(order_hosts(_spec(order="shuffle"), hosts))


def test_order_by_fact() -> None:
    hosts = _hosts(6, rack=[3, "b", 1, None, 2.5, "a"])
    ascending = _spec(order={"fact": "rack"})
    assert _names(order_hosts(ascending, hosts)) == ["h02", "h04", "h00", "h05", "h01", "h03"]
    descending = _spec(order={"fact": "rack", "descending": True})
    assert _names(order_hosts(descending, hosts)) == ["h01", "h05", "h00", "h04", "h02", "h03"]


def test_order_by_nested_fact_is_stable() -> None:
    hosts = [
        Host("a", "a", facts={"dc": {"row": 2}}),
        Host("b", "b", facts={"dc": {"row": 1}}),
        Host("c", "c", facts={"dc.row": 1}),
        Host("d", "d", facts={}),
    ]
    assert _names(order_hosts(_spec(order={"fact": "dc.row"}), hosts)) == ["b", "c", "a", "d"]


def test_group_by_keeps_order_inside_groups_and_puts_missing_last() -> None:
    hosts = _hosts(8, hagroup=["c", "a", None, "b", "a", "c", "b", "a"])
    grouped = _names(order_hosts(_spec(group_by="hagroup"), hosts))
    assert grouped == ["h01", "h04", "h07", "h03", "h06", "h00", "h05", "h02"]
    reverse = _names(order_hosts(_spec(group_by="hagroup", order="reverse"), hosts))
    assert reverse == ["h07", "h04", "h01", "h06", "h03", "h05", "h00", "h02"]


def test_group_by_numbers_before_text_and_list_values() -> None:
    hosts = _hosts(4, zone=[10, 9, "x", [1, 2]])
    assert _names(order_hosts(_spec(group_by="zone"), hosts)) == ["h01", "h00", "h03", "h02"]


def test_canary_first_in_the_given_order() -> None:
    hosts = _hosts(6, hagroup=["b", "a"])
    spec = _spec(group_by="hagroup", canary=["h04", "h01"])
    canary = [hosts[4], hosts[1], Host("elsewhere", "elsewhere")]
    ordered = _names(order_hosts(spec, hosts, canary))
    assert ordered == ["h04", "h01", "h03", "h05", "h00", "h02"]
    assert len(set(ordered)) == 6


# --- planning --------------------------------------------------------------------


def test_plan_layout_and_to_dict_shape() -> None:
    spec = _spec(batches=[1, "50%"])
    result = plan(spec, _hosts(5))
    assert isinstance(result, Plan)
    assert result.hosts == ("h00", "h01", "h02", "h03", "h04")
    assert result.batches == (("h00",), ("h01", "h02"), ("h03", "h04"))
    data = result.to_dict()
    assert data["hosts"] == ["h00", "h01", "h02", "h03", "h04"]
    assert data["batches"] == [["h00"], ["h01", "h02"], ["h03", "h04"]]
    assert data["budget"] == {
        "max_failures": None,
        "batches": [None, None, None],
        "count_as_failure": ["failed", "unreachable", "timeout"],
        "on_breach": "finish",
    }
    assert data["gates"] == [[], [], []]
    assert data["estimated_seconds"] == 3 * 60.0  # a batch at a time, all its hosts at once
    assert data["mode"] == "waves"
    assert yaml.safe_load(yaml.safe_dump(data)) == data  # plain data


def test_plan_of_no_host() -> None:
    result = plan(_spec(batches=[1, "10%"], gates=[{"pause": 5}]), [])
    assert result.batches == () and result.hosts == ()
    assert result.estimated_seconds == 0
    assert result.gates == ()


def test_max_per_group_alternates_pools() -> None:
    hosts = _hosts(9, lb_pool=[1, 2, 3])
    spec = _spec(batches=2, group_by="lb_pool", max_per_group={"fact": "lb_pool", "max": 1})
    result = plan(spec, hosts)
    # Ordered 1 1 1 2 2 2 3 3 3: each batch takes the first host of two pools;
    # the hosts of the last pool, left alone at the end, go one by one.
    assert result.batches == (
        ("h00", "h01"),
        ("h03", "h04"),
        ("h06", "h07"),
        ("h02",),
        ("h05",),
        ("h08",),
    )
    assert result.hosts == tuple(n for b in result.batches for n in b)  # the order they run
    for batch in result.batches:
        pools = Counter(hosts[int(n[1:])].facts["lb_pool"] for n in batch)
        assert max(pools.values()) == 1
    interleaved = plan(_spec(batches=2, max_per_group={"fact": "lb_pool", "max": 1}), hosts)
    assert [len(b) for b in interleaved.batches] == [2, 2, 2, 2, 1]


def test_max_per_group_needs_more_batches_and_repeats_the_last_size() -> None:
    hosts = _hosts(6, rack="r1")
    spec = _spec(batches=[1, 3], max_per_group={"fact": "rack", "max": 2})
    result = plan(spec, hosts)
    assert [len(b) for b in result.batches] == [1, 2, 2, 1]
    assert result.hosts == tuple(n for b in result.batches for n in b)


def test_max_per_group_leaves_hosts_without_the_fact_unlimited() -> None:
    hosts = _hosts(6, pool=["p", "p", "p", None, None, None])
    spec = _spec(batches=4, max_per_group={"fact": "pool", "max": 1})
    result = plan(spec, hosts)
    assert result.batches == (("h00", "h03", "h04", "h05"), ("h01",), ("h02",))


def _reference_limited(
    names: list[str], values: list[Any], sizes: list[int], cap: int
) -> list[list[str]]:
    """The plain quadratic rule: scan the queue, take what fits."""
    queue = list(zip(names, values, strict=True))
    batches = []
    index = 0
    while queue:
        size = sizes[min(index, len(sizes) - 1)]
        taken: list[str] = []
        rest: list[tuple[str, Any]] = []
        used: Counter[Any] = Counter()
        for name, value in queue:
            if len(taken) < size and (value is None or used[value] < cap):
                taken.append(name)
                if value is not None:
                    used[value] += 1
            else:
                rest.append((name, value))
        batches.append(taken)
        queue = rest
        index += 1
    return batches


@pytest.mark.parametrize("seed", range(30))
def test_max_per_group_matches_the_plain_rule(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randint(0, 120)
    values = [rng.choice([None, *range(rng.randint(1, 8))]) for _ in range(count)]
    hosts = [
        Host(f"h{i}", f"h{i}", facts={} if v is None else {"pool": v}) for i, v in enumerate(values)
    ]
    sizes = [rng.randint(1, 12) for _ in range(rng.randint(1, 4))]
    cap = rng.randint(1, 3)
    spec = _spec(batches=sizes, max_per_group={"fact": "pool", "max": cap})
    result = plan(spec, hosts)
    expected = _reference_limited(_names(hosts), values, sizes, cap)
    assert [list(b) for b in result.batches] == expected


def test_window_mode_is_one_batch_with_a_sliding_window() -> None:
    # Salt's batch mode: no waves; a new host starts as soon as one finishes.
    spec = _spec(mode="window", concurrency=4, max_per_group={"fact": "pool", "max": 1})
    result = plan(spec, _hosts(10, pool="same"), host_seconds=10)
    assert result.batches == (tuple(f"h{i:02d}" for i in range(10)),)
    assert result.concurrency == (4,)
    assert result.estimated_seconds == 3 * 10  # ceil(10 / 4) rounds
    assert result.budget.batches == (None,)
    assert result.gates == ((),)
    percent = plan(_spec(mode="window", concurrency="25%"), _hosts(10), host_seconds=1)
    assert percent.concurrency == (2,)  # 25% of all the hosts, rounded down
    assert percent.estimated_seconds == 5
    assert plan(_spec(mode="window", concurrency="1%"), _hosts(10)).concurrency == (1,)
    assert plan(_spec(mode="window", concurrency=50), _hosts(3)).concurrency == (3,)
    empty = plan(_spec(mode="window", concurrency=5), [])
    assert empty.batches == () and empty.concurrency == () and empty.estimated_seconds == 0


def test_window_mode_keeps_window_gates_before_every_host() -> None:
    window = {"window": {"cron": "0 22 * * 1-5", "duration": "6h", "timezone": "Europe/Paris"}}
    spec = _spec(mode="window", concurrency=2, gates=[window], max_failures=3)
    result = plan(spec, _hosts(5))
    assert [g.kind for g in result.before_first] == ["window"]
    assert result.gates == ((),) and result.notes == ()
    assert result.budget.max_failures == 3
    assert spec.windows == (rollouts.Window("0 22 * * 1-5", 6 * 3600, "Europe/Paris"),)


def test_window_mode_refuses_gates_between_batches_and_batch_budgets() -> None:
    data = {
        **_base("r"),
        "mode": "window",
        "concurrency": 5,
        "batch_budget": {"max_failures": 1},
        "gates": [
            {"pause": "10m"},
            {"after": 0, "approval": {"roles": ["ops"]}},
            {"window": {"cron": "0 22 * * *", "duration": "6h"}},
            {"hold": True},
            {"analysis": "nowhere"},  # one problem: the gate, not its name too
        ],
    }
    problems = dict(_problems(data))
    assert sorted(problems) == ["batch_budget", "gates[0]", "gates[1]", "gates[3]", "gates[4]"]
    assert problems["gates[0]"].startswith("a pause gate waits between batches, and window mode")
    assert problems["gates[1]"].startswith("an approval gate waits between batches")
    assert problems["gates[4]"].startswith("an analysis gate")
    assert "only window gates apply" in problems["gates[3]"]
    assert "use max_failures" in problems["batch_budget"]
    # The same gates are fine in waves mode.
    waves = {k: v for k, v in data.items() if k not in ("mode", "concurrency")}
    waves["gates"] = data["gates"][:4]
    assert len(parse_spec({**waves, "batches": [1]}).gates) == 4


def test_budgets_in_absolute_numbers() -> None:
    spec = _spec(
        batches=[1, "10%", "50%", "100%"],
        max_failures=5,
        max_failure_percent=2.5,
        batch_budget={"max_failures": 3, "max_failure_percent": 10},
    )
    result = plan(spec, _hosts(200))
    assert result.budget.max_failures == 5  # 2.5% of 200 is 5
    assert result.budget.batches == (0, 2, 3, 3)  # 10% of 1, 20, 100, 79; at most 3
    assert plan(spec, _hosts(100)).budget.max_failures == 2  # 2.5% of 100, rounded down
    only_percent = _spec(batches=10, max_failure_percent=0.7)
    assert plan(only_percent, _hosts(1000)).budget.max_failures == 7  # exact, not 6
    stop = _spec(batches=10, stop_on_first_failure=True, count_as_failure=["failed"])
    stopped = plan(stop, _hosts(20))
    assert stopped.budget.max_failures == 0
    assert stopped.budget.count_as_failure == ("failed",)


def test_gates_per_batch() -> None:
    spec = _spec(
        batches=[1, 2, 3],
        gates=[
            {"pause": "1m"},
            {"after": 0, "approval": {"roles": ["ops"]}},
            {"after": [1, 2, 9], "hold": True},
            {"window": {"cron": "0 22 * * *", "duration": "6h"}},
        ],
    )
    result = plan(spec, _hosts(6))
    kinds = [[(g.index, g.kind) for g in gates] for gates in result.gates]
    assert kinds == [
        [(0, "pause"), (1, "approval"), (3, "window")],
        [(0, "pause"), (2, "hold"), (3, "window")],
        [(2, "hold")],  # after the last batch only when named
    ]
    assert [g.kind for g in result.before_first] == ["window"]
    assert result.notes == (
        "gates[2]: after batch 9, but the plan has 3 batches (0-2); it never applies",
    )
    gates = result.to_dict()["gates"]
    assert gates[0][0] == {"gate": 0, "kind": "pause", "after": "each", "seconds": 60.0}
    assert gates[0][1]["roles"] == ["ops"] and gates[0][1]["after"] == [0]
    assert gates[0][2]["cron"] == "0 22 * * *" and gates[0][2]["timezone"] == "UTC"
    assert result.to_dict()["before_first"][0]["kind"] == "window"


def test_estimate() -> None:
    spec = _spec(
        batches=[1, 10],
        concurrency=4,
        gates=[{"pause": "10m"}, {"after": 0, "pause": 30}, {"hold": True}],
    )
    result = plan(spec, _hosts(21), host_seconds=60)
    # batches 1, 10, 10: 1 + 3 + 3 rounds of 60 s; pauses after batches 0 and 1.
    assert result.estimated_seconds == 7 * 60 + 600 + 30 + 600
    assert result.concurrency == (1, 4, 4)
    percent = plan(_spec(batches=10, concurrency="50%"), _hosts(20), host_seconds=1)
    assert percent.concurrency == (5, 5)
    assert percent.estimated_seconds == 4
    assert plan(_spec(batches=10, estimate={"host_seconds": 2}), _hosts(20)).estimated_seconds == 4
    with pytest.raises(ValueError):
        plan(_spec(), _hosts(2), host_seconds=0)


def test_plan_puts_canary_in_the_first_batches() -> None:
    hosts = _hosts(10, hagroup=["a", "b"])
    spec = _spec(batches=[2, "50%"], group_by="hagroup", canary=["h09", "h02"])
    result = plan(spec, hosts, canary=[hosts[9], hosts[2]])
    assert result.batches[0] == ("h09", "h02")
    assert result.batches[1] == ("h00", "h04", "h06", "h08", "h01")


def test_gate_dataclass_defaults() -> None:
    gate = Gate(0, "hold")
    assert gate.to_dict() == {"gate": 0, "kind": "hold", "after": "each"}


def test_many_small_batches_stay_fast() -> None:
    # One batch per host, half the hosts in one pool of max 1, half unlimited:
    # a quadratic layout would take minutes here.
    hosts = _hosts(20_000, pool=["p", None])
    spec = _spec(batches=1, max_per_group={"fact": "pool", "max": 1}, gates=[{"pause": 1}])
    started = time.perf_counter()
    result = plan(spec, hosts)
    assert time.perf_counter() - started < 5
    assert len(result.batches) == 20_000
    assert result.hosts == tuple(_names(hosts))
