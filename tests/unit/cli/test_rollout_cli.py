"""How the CLI shows rollouts: plans, budgets, durations, gates, failures, analyses,
rollbacks, outputs and the log; and the steering commands against a stand-in API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from squall.cli import rollouts as rollouts_cli
from squall.cli.main import cli
from squall.cli.rollouts import (
    analysis_lines,
    batch_line,
    budget_text,
    change_line,
    duration_text,
    failure_groups,
    gate_text,
    gate_wait_text,
    log_lines,
    names_text,
    new_hosts_text,
    next_steps,
    output_lines,
    plan_budget_lines,
    plan_columns,
    plan_rows,
    render_status,
    rollback_batch_lines,
    rollback_text,
    rolling_back,
    span_text,
    sparkline,
    value_text,
    window_mode_lines,
    window_opens_text,
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


def test_a_window_mode_plan_says_how_wide_its_window_is() -> None:
    found = _plan(mode="window", concurrency=[3], batches=[[f"h{i}" for i in range(12)]])
    assert window_mode_lines(found) == [
        "sliding window: 3 hosts in flight, a new one starting as soon as one finishes"
    ]
    assert window_mode_lines(_plan(mode="waves")) == []


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


# -- windows, analyses, rollbacks, outputs, the log and what to do next -------------------


def test_a_closed_window_says_when_it_opens() -> None:
    now = datetime(2024, 5, 1, 16, 48, tzinfo=UTC)
    gate = {"kind": "window", "until": "2024-05-01T20:00:00Z", "timezone": "Europe/Paris"}
    view: dict[str, Any] = {"id": "R1", "status": "running", "gate": gate}
    assert gate_wait_text(view, now) == (
        "waiting for the window: opens 22:00 Europe/Paris (in 3h 12m)"
    )
    # Another day: its date; no time zone: the local one.
    assert window_opens_text("2024-05-03T20:00:00Z", "UTC", now) == (
        "opens Fri 03 May 20:00 UTC (in 2d 3h)"
    )
    local = window_opens_text("2024-05-01T20:00:00Z", None, now)
    assert local is not None and local.startswith("opens ") and local.endswith("(in 3h 12m)")
    assert window_opens_text("2024-05-01T20:00:00Z", "Nowhere/Else", now) == local
    view["gate"] = {"kind": "window", "until": None}
    assert gate_wait_text(view, now) == "waiting for the window to open"


def test_analysis_gates_say_what_runs_and_what_to_do_when_inconclusive() -> None:
    gate = {"kind": "analysis", "after_batch": 0, "name": "error-rate", "run": 0}
    view: dict[str, Any] = {"id": "R1", "status": "running", "gate": gate}
    assert gate_wait_text(view) == "analysis error-rate running after batch 0"
    view = {"id": "R1", "status": "paused", "gate": {**gate, "inconclusive": True}}
    assert gate_wait_text(view) == (
        "analysis error-rate after batch 0 is inconclusive: go on with squall rollout "
        "resume R1, or stop with squall rollout abort R1"
    )


def test_values_and_sparklines() -> None:
    assert value_text([0.0123456]) == "0.01235"
    assert value_text(3) == "3"
    assert value_text(None) == "—"
    assert value_text("NaN") == "NaN"
    assert value_text([0.1, 0.2]) == "[0.1, 0.2]"
    assert value_text("a long line of text\nand more") == "a long line…"
    assert value_text(True) == "true"
    assert sparkline([[0.0], [0.5], [1.0]]) == "▁▅█"
    assert sparkline([1, None, "+Inf", 1]) == "▄  ▄"
    assert sparkline(["text"]) == ""


def _measurement(value: Any, outcome: str, message: str | None = None) -> dict[str, Any]:
    return {"at": "2024-05-01T11:50:00Z", "value": value, "outcome": outcome, "message": message}


def test_analysis_lines_show_the_verdict_and_every_measurement() -> None:
    view = {
        "analysis": [
            {
                "gate": 1,
                "name": "error-rate",
                "after_batch": 0,
                "status": "failed",
                "summary": "2 of 3 measurements failed (limit 1)",
                "measurements": [
                    _measurement([0.002], "successful"),
                    _measurement([0.07], "failed", "the failure condition holds"),
                    _measurement([0.09], "failed", "the failure condition holds"),
                ],
            },
            {"name": "latency", "after_batch": 1, "status": "running", "measurements": []},
            {
                "name": "probe",
                "after_batch": 1,
                "status": "inconclusive",
                "measurements": [
                    _measurement(None, "error", "refused"),
                    _measurement("x", "inconclusive"),
                ],
            },
        ]
    }
    lines = [line.plain for line in analysis_lines(view)]
    assert lines == [
        "analysis error-rate after batch 0: failed — 2 of 3 measurements failed (limit 1)",
        "  ▁▆█  0.002 ✓  0.07 ✗  0.09 ✗",
        "analysis latency after batch 1: running",
        "analysis probe after batch 1: inconclusive",
        "  — !  x ?",
    ]


def _rolling_back_view() -> dict[str, Any]:
    view = _view()
    view["rollback"] = {
        "reason": "stopped at the first failure (failure budget)",
        "automatic": True,
        "started_at": "2024-05-01T11:58:00Z",
        "batch": 1,
    }
    view["batches"][1]["hosts"] = [
        _host("c", "rolled_back"),
        _host("d", "unreachable", "connection refused"),  # never changed: not undone
        _host("e", "failed", "exit code 1"),
        _host("f", "rolled_back"),
        {**_host("g", "running"), "phase": "rollback"},
        _host("h", "succeeded"),
    ]
    view["batches"][1]["counts"] = {
        "rolled_back": 2,
        "unreachable": 1,
        "failed": 1,
        "running": 1,
        "succeeded": 1,
        "total": 6,
    }
    return view


def test_rolling_back_shows_the_reason_and_progress_per_batch() -> None:
    view = _rolling_back_view()
    assert rolling_back(view)
    assert rollback_text(view) == (
        "rolling back automatically (stopped at the first failure (failure budget)): "
        "2 of 7 hosts rolled back"
    )
    lines = [line.plain for line in rollback_batch_lines(view, width=5)]
    assert lines == [
        "batch 1  undoing  [██░░░] 2/5 rolled back, 1 undoing",
        "batch 0           [░░░░░] 0/2 rolled back",
    ]
    # Without the host lists, from the counts.
    for batch in view["batches"]:
        del batch["hosts"]
    assert rollback_batch_lines(view, width=5)[0].plain == (
        "batch 1  undoing  [██░░░] 2/5 rolled back"
    )
    assert "rolling back automatically" in change_line(view)


def test_a_rollback_requested_then_ended() -> None:
    view = _rolling_back_view()
    view["rollback"] = {"state": "requested", "reason": "requested by alice"}
    assert not rolling_back(view)
    assert rollback_text(view) == "rollback requested (requested by alice)"
    assert rollback_batch_lines(view) == []
    view["rollback"] = {"reason": "requested by alice", "automatic": False, "batch": 0, "hosts": 7}
    view["status"] = "rolled_back"
    assert rollback_text(view) == "rolled back (requested by alice): 2 of 7 hosts rolled back"
    view["status"] = "failed"
    assert rollback_text(view) == ("rollback failed (requested by alice): 2 of 7 hosts rolled back")
    assert rollback_text(_view()) is None


def test_outputs_are_folded() -> None:
    view = {
        "outputs": [
            {
                "output": "active (running)\n",
                "count": 812,
                "hosts": [f"web-{i}" for i in range(10)],
            },
            {"output": "one\ntwo\nthree\nfour", "count": 2, "hosts": ["db-1", "db-2"]},
            {"output": "", "count": 1, "hosts": ["x"]},
        ]
    }
    lines = [line.plain for line in output_lines(view, shown=2, lines_shown=2)]
    assert lines == [
        "812 hosts: active (running)",
        "    web-0, web-1, web-2, web-3, web-4, web-5, web-6, web-7 and 804 more",
        "2 hosts:",
        "    one",
        "    two",
        "    … 2 more lines",
        "    db-1, db-2",
        "and 1 other output",
    ]
    assert [line.plain for line in output_lines({"outputs": view["outputs"][2:]})] == [
        "1 host: (no output)",
        "    x",
    ]


def test_the_last_log_lines() -> None:
    log = [
        {"at": f"2024-05-01T11:4{i}:00Z", "kind": "batch", "message": f"batch {i} started"}
        for i in range(7)
    ]
    log.append(
        {"at": "2024-05-01T11:50:00Z", "kind": "control", "message": "paused", "user": "bob"}
    )
    log.append(
        {
            "at": "2024-05-01T11:51:00Z",
            "kind": "control",
            "message": "resumed by bob",
            "user": "bob",
        }
    )
    lines = [line.plain for line in log_lines({"log": log})]
    assert len(lines) == 5
    assert lines[0].endswith("  batch 4 started")
    assert lines[-2].endswith("  paused (bob)")
    assert lines[-1].endswith("  resumed by bob")
    assert log_lines({"log": []}) == [] and log_lines({}) == []


def test_next_steps_after_a_stop() -> None:
    view: dict[str, Any] = {
        "id": "R1",
        "status": "failed",
        "counts": {"succeeded": 5, "failed": 1, "timeout": 1, "skipped": 3, "total": 10},
        "rollback": None,
    }
    assert next_steps(view) == [
        "retry the failed hosts: squall rollout retry R1 (--skipped: also the 3 skipped hosts)"
    ]
    view["has_rollback"] = True
    assert next_steps(view)[-1] == "roll back: squall rollout rollback R1"
    view["counts"] = {"succeeded": 2, "skipped": 8, "total": 10}
    view["status"] = "aborted"
    assert next_steps(view)[0] == "run the 8 skipped hosts: squall rollout retry R1 --skipped"
    assert next_steps({**view, "status": "succeeded"}) == []
    assert next_steps({**view, "status": "running"}) == []
    assert next_steps({**view, "rollback": {"reason": "x"}}) == []  # rolled back already


def test_render_shows_rollback_analysis_outputs_log_and_hints() -> None:
    from rich.console import Console

    view = _rolling_back_view()
    view["analysis"] = [
        {
            "name": "error-rate",
            "after_batch": 0,
            "status": "successful",
            "summary": "3 of 3 measurements successful",
            "measurements": [_measurement([0.001], "successful")] * 3,
        }
    ]
    view["outputs"] = [{"output": "active (running)", "count": 3, "hosts": ["a", "c", "f"]}]
    view["log"] = [
        {
            "at": "2024-05-01T11:58:00Z",
            "kind": "rollback",
            "message": "automatic rollback of 7 hosts",
        }
    ]
    console = Console(width=200, highlight=False)
    with console.capture() as captured:
        console.print(render_status(view))
    out = captured.get()
    assert "rolling back automatically (stopped at the first failure" in out
    assert "batch 1  undoing" in out
    assert "analysis error-rate after batch 0: successful — 3 of 3 measurements successful" in out
    assert "3 hosts: active (running)" in out
    assert "automatic rollback of 7 hosts" in out
    stopped = {**_view(), "status": "failed", "has_rollback": True, "rollback": None}
    with console.capture() as captured:
        console.print(render_status(stopped))
    out = captured.get()
    assert "retry the failed hosts: squall rollout retry R1" in out
    assert "roll back: squall rollout rollback R1" in out


# -- the commands, against a stand-in for the API --------------------------------------------


class _FakeClient:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        return self.answer


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> _FakeClient:
    fake = _FakeClient({**_view(), "status": "running"})
    monkeypatch.setattr(rollouts_cli, "client_of", lambda _ctx: fake)
    return fake


@pytest.mark.parametrize(
    ("args", "path", "body"),
    [
        (["rollback", "R1"], "/api/v1/rollouts/R1/rollback", {}),
        (["retry", "R1"], "/api/v1/rollouts/R1/retry", {"skipped": False}),
        (["retry", "R1", "--skipped"], "/api/v1/rollouts/R1/retry", {"skipped": True}),
        (
            ["skip", "R1", "web-01", "web-02"],
            "/api/v1/rollouts/R1/skip",
            {"hosts": ["web-01", "web-02"]},
        ),
    ],
)
def test_steering_commands_post_and_print_the_view_as_json(
    api: _FakeClient, args: list[str], path: str, body: dict[str, Any]
) -> None:
    result = CliRunner().invoke(cli, ["rollout", *args, "--json"])
    assert result.exit_code == 0, result.output
    assert api.calls == [("POST", path, body)]
    assert json.loads(result.stdout) == api.answer


def test_steering_commands_for_people(api: _FakeClient) -> None:
    api.answer = _rolling_back_view()
    result = CliRunner().invoke(cli, ["rollout", "rollback", "R1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("rollout R1: rolling back automatically (")
    assert "squall rollout status R1 --watch" in result.stderr
    api.answer = {"id": "R1", "status": "running", "counts": {"pending": 3, "total": 8}}
    result = CliRunner().invoke(cli, ["rollout", "retry", "R1"])
    assert result.stdout == "rollout R1 running (3 hosts to run again)\n"
    result = CliRunner().invoke(cli, ["rollout", "skip", "R1", "web-01"])
    assert result.stdout == "rollout R1: skipped web-01\n"
    result = CliRunner().invoke(cli, ["rollout", "skip", "R1"])
    assert result.exit_code == 2 and "HOST" in result.stderr
