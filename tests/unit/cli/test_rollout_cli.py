"""How the CLI shows rollouts: plans, budgets, durations, gates and failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from squall.cli.rollouts import (
    batch_line,
    budget_text,
    change_line,
    duration_text,
    failure_groups,
    gate_text,
    gate_wait_text,
    names_text,
    new_hosts_text,
    plan_budget_lines,
    plan_columns,
    plan_rows,
    render_status,
    span_text,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "less than a second"),
        (45, "about 45s"),
        (89, "about 1m"),
        (600, "about 10m"),
        (4800, "about 1h 20m"),
        (4850, "about 1h 21m"),
        (7200, "about 2h"),
        (86400 + 3 * 3600, "about 1d 3h"),
        (None, "unknown"),
    ],
)
def test_duration_is_rounded_for_people(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_span_keeps_two_units() -> None:
    assert span_text(90) == "1m 30s"
    assert span_text(600) == "10m"
    assert span_text(5400) == "1h 30m"
    assert span_text(86399.9) == "1d"
    assert span_text(2 * 86400) == "2d"


def test_names_are_cut_after_eight() -> None:
    names = [f"web-{i:02d}" for i in range(1, 12)]
    assert names_text(names) == (
        "web-01, web-02, web-03, web-04, web-05, web-06, web-07, web-08 and 3 more"
    )
    assert names_text(names[:2]) == "web-01, web-02"


def _plan(**extra: Any) -> dict[str, Any]:
    hosts = [f"h{i}" for i in range(12)]
    found: dict[str, Any] = {
        "name": "patch",
        "target": "role=web",
        "count": 12,
        "hosts": hosts,
        "batches": [hosts[:1], hosts[1:3], hosts[3:]],
        "budget": {
            "max_failures": 2,
            "batches": [None, None, None],
            "count_as_failure": ["failed", "unreachable", "timeout"],
            "on_breach": "finish",
        },
        "gates": [
            [
                {"gate": 1, "kind": "approval", "users": ["alice"], "roles": ["ops"]},
                {"gate": 0, "kind": "pause", "seconds": 600},
            ],
            [{"gate": 0, "kind": "pause", "seconds": 600}],
            [],
        ],
        "estimated_seconds": 4800.0,
        "notes": [],
    }
    found.update(extra)
    return found


def test_plan_rows_give_each_batch_its_size_hosts_and_gates() -> None:
    found = _plan()
    assert plan_columns(found) == ["batch", "size", "hosts", "then"]
    assert plan_rows(found) == [
        ["0", "1", "h0", "approval by alice or role ops, pause 10m"],
        ["1", "2", "h1, h2", "pause 10m"],
        ["2", "9", "h3, h4, h5, h6, h7, h8, h9, h10 and 1 more", ""],
    ]


def test_plan_rows_show_batch_budgets_when_set() -> None:
    found = _plan()
    found["budget"]["batches"] = [0, 1, None]
    assert plan_columns(found) == ["batch", "size", "hosts", "tolerated", "then"]
    assert [row[3] for row in plan_rows(found)] == ["0", "1", "no limit"]


def test_gate_texts() -> None:
    assert gate_text({"kind": "hold"}) == "hold until resumed"
    assert gate_text({"kind": "analysis", "analysis": "error-rate"}) == "analysis error-rate"
    approval = {"kind": "approval", "users": [], "roles": [], "timeout": 14400.0}
    assert gate_text(approval) == "approval by anyone (4h, then abort)"
    window = {"kind": "window", "cron": "0 22 * * 1-5", "duration": 21600, "timezone": "UTC"}
    assert gate_text(window) == "window 0 22 * * 1-5 for 6h (UTC)"


def test_plan_budget_in_numbers_of_hosts() -> None:
    lines = plan_budget_lines(_plan()["budget"])
    assert lines[0] == "failure budget: 2 failures tolerated, stops at the 3rd (whole rollout)"
    assert lines[1] == (
        "  counted as failures: failed, unreachable, timeout; on a breach, hosts in flight finish"
    )
    assert plan_budget_lines({"max_failures": 0})[0].startswith(
        "failure budget: stops at the first failure"
    )
    assert plan_budget_lines({"max_failures": None}) == ["failure budget: no limit (whole rollout)"]


def test_budget_used() -> None:
    assert budget_text({"max_failures": 5, "failures": 2}) == "2 of 5 failures"
    assert budget_text({"max_failures": 1, "failures": 2}) == "2 of 1 failure (breached)"
    assert budget_text({"max_failures": None, "failures": 1, "batch_max_failures": 1}) == (
        "1 failure (no limit); at most 1 per batch"
    )


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_gate_waits_say_what_to_do() -> None:
    view: dict[str, Any] = {"id": "R1", "status": "paused", "gate": None}
    assert gate_wait_text(view) == "paused: resume with squall rollout resume R1"
    view = {
        "id": "R1",
        "status": "running",
        "gate": {"kind": "approval", "after_batch": 0, "until": None, "inquiry": "INQ"},
    }
    assert gate_wait_text(view) == "waiting for approval after batch 0: squall inquiry respond INQ"
    view["gate"] = {"kind": "hold", "after_batch": 2, "until": None, "inquiry": None}
    assert gate_wait_text(view) == "held after batch 2: continue with squall rollout resume R1"
    view["gate"] = {"kind": "pause", "after_batch": 1, "until": "2024-05-01T12:04:00Z"}
    text = gate_wait_text(view, NOW)
    assert text is not None
    assert text.startswith("soaking after batch 1 until ")
    assert text.endswith("(4m left)")
    assert gate_wait_text({"id": "R1", "status": "running", "gate": None}) is None
    assert gate_wait_text({"id": "R1", "status": "aborted", "gate": view["gate"]}) is None


def _host(name: str, status: str, error: str | None = None) -> dict[str, Any]:
    return {"name": name, "status": status, "error": error, "execution": None}


def _view() -> dict[str, Any]:
    return {
        "id": "R1",
        "name": "patch",
        "status": "running",
        "batch": 1,
        "counts": {"succeeded": 3, "failed": 2, "unreachable": 1, "running": 2, "total": 8},
        "budget": {"max_failures": 5, "failures": 3, "batch_max_failures": None},
        "gate": None,
        "batches": [
            {
                "index": 0,
                "status": "done",
                "counts": {"succeeded": 1, "failed": 1, "total": 2},
                "hosts": [_host("a", "succeeded"), _host("b", "failed", "exit code 1\nmore")],
            },
            {
                "index": 1,
                "status": "running",
                "counts": {"succeeded": 2, "failed": 1, "unreachable": 1, "running": 2, "total": 6},
                "hosts": [
                    _host("c", "succeeded"),
                    _host("d", "unreachable", "connection refused"),
                    _host("e", "failed", "exit code 1"),
                    _host("f", "succeeded"),
                    _host("g", "running"),
                    _host("h", "running"),
                ],
            },
        ],
        "new_hosts": ["x1", "x2", "x3"],
        "error": None,
    }


def test_failures_are_grouped_by_error() -> None:
    assert failure_groups(_view()) == [
        ("exit code 1", ["b", "e"]),
        ("connection refused", ["d"]),
    ]
    view = _view()
    view["batches"][1]["hosts"][1]["error"] = None
    assert ("unreachable", ["d"]) in failure_groups(view)


def test_batch_line_has_a_bar_and_counts() -> None:
    line = batch_line(_view()["batches"][1], width=6).plain
    assert line == "batch 1  running  [████░░] 4/6 2 succeeded, 1 failed, 1 unreachable, 2 running"


def test_new_hosts_are_reported() -> None:
    assert new_hosts_text(["x1", "x2", "x3"]) == (
        "3 hosts match the target now that were not in the plan: x1, x2, x3"
    )
    assert new_hosts_text(["x1"]) == "1 host matches the target now that was not in the plan: x1"
    assert new_hosts_text([]) is None


def test_change_line_and_render() -> None:
    assert change_line(_view()) == (
        "running; batch 1; 8 hosts: 3 succeeded, 2 failed, 1 unreachable, 2 running; "
        "3 of 5 failures"
    )
    from rich.console import Console

    console = Console(width=200, highlight=False)
    with console.capture() as captured:
        console.print(render_status(_view()))
    out = captured.get()
    assert "3 of 5 failures" in out
    assert "2 hosts: exit code 1" in out
    assert "3 hosts match the target now" in out
