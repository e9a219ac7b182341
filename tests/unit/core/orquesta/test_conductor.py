"""The Orquesta conductor: tricky semantics, records and restore, speed."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from squall.core.orquesta import spec as orquesta_spec
from squall.core.orquesta.conductor import OrquestaConductor
from squall.core.workflow import ActionRequest, Environment
from squall.errors import Conflict, InvalidInput

Records = dict[str, dict[str, dict[str, Any] | None]]


def _spec(text: str) -> orquesta_spec.WorkflowSpec:
    spec = orquesta_spec.load(textwrap.dedent(text))
    assert orquesta_spec.inspect(spec) == []
    return spec


class Run:
    """A conductor plus the item results a driver would keep, and its records."""

    def __init__(self, text: str, *, restore_each_step: bool = False) -> None:
        self.spec = _spec(text)
        self.results: dict[int, dict[int, Any]] = {}
        self.env = Environment(item_results=self._item_results)
        self.conductor = OrquestaConductor.new(self.spec, self.env)
        self.records: Records = {}
        self.restore_each_step = restore_each_step

    def _item_results(self, seq: int) -> list[Any]:
        found = self.results.get(seq, {})
        return [found[i] for i in sorted(found)]

    def _after(self, requests: list[ActionRequest]) -> list[ActionRequest]:
        for kind, rows in self.conductor.take_changes().records.items():
            self.records.setdefault(kind, {}).update(rows)
        if self.restore_each_step:
            self.conductor = OrquestaConductor.restore(self.spec, self.records, self.env)
        return requests

    def start(self, **inputs: Any) -> list[ActionRequest]:
        return self._after(self.conductor.start(inputs))

    def report(
        self, req: ActionRequest, status: str = "succeeded", result: Any = None
    ) -> list[ActionRequest]:
        if req.item is not None and status in ("succeeded", "failed"):
            self.results.setdefault(req.seq, {})[req.item] = result
        return self._after(self.conductor.action_status(req.seq, req.item, status, result))

    def request(self, status: str) -> list[ActionRequest]:
        return self._after(self.conductor.request_status(status))

    def rerun(self, *tasks: tuple[str, int, bool]) -> list[ActionRequest]:
        return self._after(self.conductor.rerun(list(tasks)))

    def sequence(self) -> list[str]:
        return [
            t["id"] if t["route"] == 0 else f"{t['id']}__r{t['route']}"
            for t in self.conductor.task_instances()
        ]

    def drive(
        self,
        requests: list[ActionRequest],
        outcome: Callable[[ActionRequest], tuple[str, Any]] = lambda r: ("succeeded", None),
    ) -> None:
        """Complete requests one at a time, first in first out, until none are left."""
        pending = list(requests)
        while pending:
            req = pending.pop(0)
            status, result = outcome(req)
            pending += self.report(req, status, result)


def ids(requests: list[ActionRequest]) -> list[tuple[str, int | None]]:
    return [(r.task_id, r.item) for r in requests]


SEQUENTIAL = """
    version: 1.0
    input:
      - name
    vars:
      - greeting: null
    tasks:
      t1:
        action: core.echo message=<% ctx().name %>
        next:
          - when: <% succeeded() %>
            publish: greeting=<% result() %>
            do: t2
      t2:
        action: core.echo
        input:
          message: "<% ctx(greeting) %>!"
        next:
          - when: <% succeeded() %>
            do: t3
      t3:
        next:
          - do: noop
    output:
      - greeting: <% ctx().greeting %>
"""


def test_sequential_run_renders_inputs_publishes_and_output() -> None:
    run = Run(SEQUENTIAL)
    (t1,) = run.start(name="Stanley")
    assert (t1.task_id, t1.route, t1.seq, t1.action, t1.input) == (
        "t1",
        0,
        0,
        "core.echo",
        {"message": "Stanley"},
    )
    (t2,) = run.report(t1, "succeeded", "Hi Stanley")
    assert t2.input == {"message": "Hi Stanley!"} and t2.seq == 1
    # t3 has no action and ``noop`` is an engine command: both complete inside.
    assert run.report(t2) == []
    assert run.sequence() == ["t1", "t2", "t3", "noop"]
    assert run.conductor.status == "succeeded"
    assert run.conductor.output == {"greeting": "Hi Stanley"}
    # The task that ended the workflow and its engine command are both terminal.
    assert [t["id"] for t in run.conductor.task_instances() if t.get("term")] == ["t3", "noop"]


def test_bad_input_expression_fails_the_workflow_at_start() -> None:
    run = Run(
        """
        version: 1.0
        input:
          - x: <% 1 + 'a' %>
        tasks:
          t1:
            action: core.noop
        """
    )
    assert run.start() == []
    assert run.conductor.status == "failed"
    assert "Unable to evaluate" in run.conductor.errors[0]["message"]


JOIN_COUNT = """
    version: 1.0
    tasks:
      t0:
        action: core.noop
        next:
          - do: a, b, c
      a:
        action: core.noop
        next:
          - when: <% succeeded() %>
            publish: v="a"
            do: j
      b:
        action: core.noop
        next:
          - when: <% succeeded() %>
            publish: v="b"
            do: j
      c:
        action: core.noop
        next:
          - when: <% succeeded() %>
            publish: v="c"
            do: j
      j:
        join: 2
        action: core.echo message=<% ctx().get(v) %>
"""


def test_join_with_a_count_starts_once_enough_branches_arrive() -> None:
    run = Run(JOIN_COUNT)
    (t0,) = run.start()
    a, b, c = run.report(t0)
    assert ids([a, b, c]) == [("a", None), ("b", None), ("c", None)]
    assert run.report(b) == []
    (j,) = run.report(c)
    # The join's context: the first branch whole, then the next one over it.
    assert j.task_id == "j" and j.input == {"message": "c"}
    assert run.report(a) == []  # a late branch does not start the join again
    run.report(j)
    assert run.sequence() == ["t0", "a", "b", "c", "j"]
    assert run.conductor.status == "succeeded"


def test_join_all_that_cannot_be_satisfied_fails_the_workflow() -> None:
    run = Run(
        """
        version: 1.0
        tasks:
          t0:
            action: core.noop
            next:
              - do: a, b
          a:
            action: core.noop
            next:
              - when: <% succeeded() %>
                do: j
          b:
            action: core.noop
            next:
              - when: <% failed() %>
                do: j
          j:
            join: all
            action: core.noop
        """
    )
    run.drive(run.start())
    assert run.conductor.status == "failed"
    assert run.conductor.errors == [
        {
            "type": "error",
            "message": 'UnreachableJoinError: The join task|route "j|0" is partially '
            "satisfied but unreachable.",
            "task_id": "j",
            "route": 0,
        }
    ]


def test_join_merges_branch_contexts_in_orquesta_order() -> None:
    run = Run(
        """
        version: 1.0
        vars:
          - d: {k1: 1}
          - x: 0
        tasks:
          t0:
            action: core.noop
            next:
              - publish: x=10
                do: a, b
          a:
            action: core.noop
            next:
              - publish:
                  - d: {k2: 2}
                  - x: 1
                do: a2
          a2:
            action: core.noop
            next:
              - publish: y=5
                do: j
          b:
            action: core.noop
            next:
              - publish:
                  - d: {k3: 3}
                  - x: 2
                do: j
          j:
            join: all
            action: core.noop
        output:
          - d: <% ctx(d) %>
          - x: <% ctx(x) %>
          - y: <% ctx(y) %>
        """
    )
    run.drive(run.start())
    # b reaches the join first; a's branch (two tasks) is then replayed over
    # it, including t0's publish from before the fork, so a's x wins.
    assert run.conductor.output == {"d": {"k1": 1, "k3": 3, "k2": 2}, "x": 1, "y": 5}


ITEMS = """
    version: 1.0
    input:
      - xs: [a, b, c, d, e]
    tasks:
      t1:
        with:
          items: x in <% ctx(xs) %>
          concurrency: 2
        action: core.echo message=<% item(x) %>
        next:
          - when: <% succeeded() %>
            publish: out=<% result() %>
            do: t2
      t2:
        action: core.noop
    output:
      - out: <% ctx().get(out) %>
"""


def test_with_items_respects_concurrency() -> None:
    run = Run(ITEMS)
    first = run.start()
    assert ids(first) == [("t1", 0), ("t1", 1)]
    assert [r.input for r in first] == [{"message": "a"}, {"message": "b"}]
    assert run.report(first[0], "running") == []
    (third,) = run.report(first[0], "succeeded", "A")
    assert (third.item, third.seq) == (2, first[0].seq)
    (fourth,) = run.report(first[1], "succeeded", "B")
    (fifth,) = run.report(third, "succeeded", "C")
    assert [fourth.item, fifth.item] == [3, 4]
    assert run.report(fifth, "succeeded", "E") == []
    (t2,) = run.report(fourth, "succeeded", "D")
    assert t2.task_id == "t2"
    run.report(t2)
    assert run.conductor.output == {"out": ["A", "B", "C", "D", "E"]}
    assert run.sequence() == ["t1", "t2"]


def test_with_items_failure_waits_for_running_items() -> None:
    run = Run(ITEMS)
    first, second = run.start()
    run.report(first, "running")
    run.report(second, "running")
    # The failed item frees a slot: like Orquesta, the next item starts.
    (third,) = run.report(first, "failed", "boom")
    assert third.item == 2
    assert run.conductor.task_instances()[0]["status"] == "running"
    assert run.report(second, "succeeded", "B") == []
    assert run.conductor.task_instances()[0]["status"] == "failed"
    assert run.conductor.status == "failed"


def test_with_items_over_an_empty_list_completes_at_once() -> None:
    run = Run(ITEMS)
    requests = run.start(xs=[])
    assert ids(requests) == [("t2", None)]
    run.report(requests[0])
    assert run.conductor.output == {"out": []}


RETRY = """
    version: 1.0
    input:
      - count: 2
    tasks:
      t1:
        action: core.echo message=hi
        retry:
          count: <% ctx(count) %>
          delay: 3
        next:
          - when: <% succeeded() %>
            do: t2
      t2:
        action: core.noop
"""


def test_retry_count_and_delay() -> None:
    run = Run(RETRY)
    (t1,) = run.start()
    assert t1.delay == 0
    (again,) = run.report(t1, "failed")
    assert (again.task_id, again.seq, again.delay) == ("t1", t1.seq, 3.0)
    (again,) = run.report(again, "failed")
    assert run.report(again, "failed") == []
    record = run.conductor.task_instances()[0]
    assert record["status"] == "failed" and record["retry"]["tally"] == 2
    assert run.conductor.status == "failed"


def test_retry_then_success_moves_on() -> None:
    run = Run(RETRY)
    (t1,) = run.start()
    (again,) = run.report(t1, "failed")
    (t2,) = run.report(again, "succeeded")
    assert t2.task_id == "t2"
    assert run.sequence() == ["t1", "t2"]


def test_retry_when_evaluates_the_result() -> None:
    run = Run(
        """
        version: 1.0
        tasks:
          t1:
            action: core.echo message=hi
            retry:
              when: <% result() = "again" %>
              count: 5
            next:
              - publish: last=<% result() %>
        output:
          - last: <% ctx(last) %>
        """
    )
    (t1,) = run.start()
    (t1,) = run.report(t1, "succeeded", "again")
    assert run.report(t1, "succeeded", "done") == []
    assert run.conductor.output == {"last": "done"}


PARALLEL = """
    version: 1.0
    tasks:
      t0:
        action: core.noop
        next:
          - do: a, b
      a:
        action: core.noop
        next:
          - do: a2
      a2:
        action: core.noop
      b:
        action: core.noop
"""


def test_pause_waits_for_running_tasks_then_resume_continues() -> None:
    run = Run(PARALLEL)
    (t0,) = run.start()
    a, b = run.report(t0)
    assert run.request("pausing") == []
    assert run.conductor.status == "pausing"
    assert run.report(a) == []  # a2 waits for the resume
    assert run.conductor.status == "pausing"
    assert run.report(b) == []
    assert run.conductor.status == "paused"
    (a2,) = run.request("resuming")
    assert a2.task_id == "a2" and run.conductor.status == "running"
    run.report(a2)
    assert run.conductor.status == "succeeded"


def test_cancel_lets_running_tasks_finish_and_starts_nothing() -> None:
    run = Run(PARALLEL)
    (t0,) = run.start()
    a, b = run.report(t0)
    assert run.request("canceling") == []
    assert run.report(a) == []
    assert run.conductor.status == "canceling"
    assert run.report(b) == []
    assert run.conductor.status == "canceled"
    assert run.sequence() == ["t0", "a", "b"]


def test_a_pending_child_pauses_the_workflow_until_it_completes() -> None:
    run = Run(PARALLEL)
    (t0,) = run.start()
    a, b = run.report(t0)
    run.report(a, "pending")
    assert run.conductor.status == "pausing"
    run.report(b)
    assert run.conductor.status == "paused"
    # The child's answer does not resume the workflow by itself.
    assert run.report(a, "succeeded") == []
    assert run.conductor.status == "paused"
    (a2,) = run.request("resuming")
    assert a2.task_id == "a2"


def test_control_requests_that_make_no_sense_conflict() -> None:
    run = Run(PARALLEL)
    run.drive(run.start())
    with pytest.raises(Conflict):
        run.request("pausing")
    with pytest.raises(InvalidInput):
        run.request("sleeping")
    fresh = Run(PARALLEL)
    assert ids(fresh.start()) == [("t0", None)]
    with pytest.raises(Conflict):
        fresh.request("resuming")
    with pytest.raises(Conflict):
        fresh.rerun()
    with pytest.raises(InvalidInput):
        fresh.conductor.action_status(99, None, "succeeded")


def test_pausing_a_with_items_task_pauses_once_its_items_stop() -> None:
    run = Run(ITEMS)
    first, second = run.start()
    run.report(first, "running")
    run.report(second, "running")
    run.request("pausing")
    assert run.report(first, "succeeded", "A") == []  # no new item while pausing
    run.report(second, "succeeded", "B")
    assert run.conductor.status == "paused"
    resumed = run.request("resuming")
    assert ids(resumed) == [("t1", 2), ("t1", 3)]


def test_rerun_a_failed_task_before_a_join() -> None:
    run = Run(
        """
        version: 1.0
        tasks:
          t1:
            action: core.noop
            next: [{do: "t2, t3"}]
          t2:
            action: core.noop
            next: [{when: <% succeeded() %>, do: j}]
          t3:
            action: core.noop
            next: [{when: <% succeeded() %>, do: j}]
          j:
            join: all
            action: core.noop
        """
    )
    run.drive(run.start(), lambda r: ("failed" if r.task_id == "t3" else "succeeded", None))
    assert run.conductor.status == "failed"
    (t3,) = run.rerun(("t3", 0, False))
    assert run.conductor.status == "running"
    assert all(e.get("task_id") != "t3" for e in run.conductor.errors)
    run.drive([t3])
    assert run.sequence() == ["t1", "t2", "t3", "t3", "j"]
    assert run.conductor.status == "succeeded"


def _failing_items(text: str) -> Run:
    run = Run(text)
    outcomes = {0: "succeeded", 1: "failed", 2: "succeeded", 3: "succeeded", 4: "succeeded"}
    run.drive(
        run.start(),
        lambda r: (
            (outcomes[r.item or 0], f"{r.item}-1") if r.item is not None else ("succeeded", None)
        ),
    )
    assert run.conductor.status == "failed"
    return run


def test_rerun_with_items_reruns_only_failed_items() -> None:
    run = _failing_items(ITEMS)
    # Items 0 and 2 succeeded; 1 failed; 3 and 4 never started.
    requests = run.rerun(("t1", 0, False))
    assert ids(requests) == [("t1", 1), ("t1", 3)]
    assert requests[0].seq == 0  # the items stay with the instance that owns them
    run.drive(requests, lambda r: ("succeeded", f"{r.item}-2"))
    assert run.conductor.status == "succeeded"
    assert run.conductor.output == {"out": ["0-1", "1-2", "2-1", "3-2", "4-2"]}
    assert run.sequence() == ["t1", "t1", "t2"]


def test_rerun_with_items_and_reset_items_reruns_every_item() -> None:
    run = _failing_items(ITEMS)
    requests = run.rerun(("t1", 0, True))
    assert ids(requests) == [("t1", 0), ("t1", 1)]  # concurrency still holds
    run.drive(requests, lambda r: ("succeeded", f"{r.item}-2"))
    assert run.conductor.output == {"out": [f"{i}-2" for i in range(5)]}


# --------------------------------------------------------------------------- records


def _events_for(text: str) -> Callable[[ActionRequest], tuple[str, Any]]:
    counter = {"n": 0}

    def outcome(req: ActionRequest) -> tuple[str, Any]:
        counter["n"] += 1
        if req.task_id == "flaky" and counter["n"] % 3:
            return "failed", {"n": counter["n"]}
        return "succeeded", {"n": counter["n"], "item": req.item}

    return outcome


RESTORE_CASES = {
    "sequential": SEQUENTIAL,
    "join": JOIN_COUNT,
    "items": ITEMS,
    "split": """
        version: 1.0
        tasks:
          t1:
            action: core.noop
            next: [{when: <% succeeded() %>, do: "t2, t3"}]
          t2:
            action: core.noop
            next: [{when: <% succeeded() %>, publish: [{from: t2}], do: t4}]
          t3:
            action: core.noop
            next: [{when: <% succeeded() %>, publish: [{from: t3}], do: t4}]
          t4:
            action: core.noop
            next: [{when: <% succeeded() %>, do: "t5, t6"}]
          t5:
            action: core.echo message=<% ctx(from) %>
            next: [{when: <% succeeded() %>, do: t7}]
          t6:
            action: core.noop
            next: [{when: <% succeeded() %>, do: t7}]
          t7:
            join: all
            action: core.noop
    """,
    "retry_and_cycle": """
        version: 1.0
        input:
          - count: 0
        tasks:
          prep:
            action: core.noop
            next: [{do: flaky}]
          flaky:
            action: core.echo message=<% ctx(count) %>
            retry:
              count: 3
            next:
              - when: <% succeeded() and ctx(count) < 2 %>
                publish: count=<% ctx(count) + 1 %>
                do: flaky
              - when: <% succeeded() and ctx(count) >= 2 %>
                do: done
          done:
            action: core.noop
        output:
          - count: <% ctx(count) %>
    """,
}


@pytest.mark.parametrize("name", sorted(RESTORE_CASES))
def test_restoring_from_records_after_every_step_changes_nothing(name: str) -> None:
    text = RESTORE_CASES[name]
    outcome = _events_for(text)
    live = Run(text)
    restored = Run(text, restore_each_step=True)
    inputs = {"name": "S"} if name == "sequential" else {}
    pending_live = live.start(**inputs)
    pending_restored = restored.start(**inputs)
    assert pending_live == pending_restored
    steps = 0
    while pending_live:
        req = pending_live.pop(0)
        other = pending_restored.pop(0)
        assert req == other
        status, result = outcome(req)
        if req.item is not None:
            restored.results.setdefault(req.seq, {})[req.item] = result
        pending_live += live.report(req, status, result)
        pending_restored += restored.report(other, status, result)
        assert pending_live == pending_restored
        steps += 1
    assert steps >= 2
    assert live.records == restored.records
    assert live.conductor.status == restored.conductor.status
    assert live.conductor.output == restored.conductor.output
    assert live.sequence() == restored.sequence()


def test_records_are_small_and_deleted_ones_are_none() -> None:
    run = Run(ITEMS)
    run.drive(run.start(), lambda r: ("succeeded", "x" * 10))
    assert set(run.records) == {"workflow", "route", "task", "staged", "item", "context"}
    assert run.records["staged"]["t1:0"] is None  # the task completed
    assert set(run.records["item"]) == {f"0:{i}" for i in range(5)}
    assert run.records["item"]["0:3"] == {"status": "succeeded"}
    staged_t2 = run.records["staged"]["t2:0"]
    assert staged_t2 is None


def test_without_an_item_results_service_items_keep_their_results() -> None:
    spec = _spec(ITEMS)
    conductor = OrquestaConductor.new(spec, Environment())
    pending = conductor.start({})
    while pending:
        req = pending.pop(0)
        pending += conductor.action_status(req.seq, req.item, "succeeded", req.item)
    assert conductor.output == {"out": [0, 1, 2, 3, 4]}


# --------------------------------------------------------------------------- speed


def test_a_long_sequential_workflow_is_linear() -> None:
    count = 2000
    tasks: dict[str, Any] = {
        f"t{i}": {
            "action": "core.noop",
            "next": [{"when": "<% succeeded() %>", "do": f"t{i + 1}"}],
        }
        for i in range(count - 1)
    }
    tasks[f"t{count - 1}"] = {"action": "core.noop"}
    spec = orquesta_spec.load({"version": 1.0, "tasks": tasks})
    conductor = OrquestaConductor.new(spec, Environment())
    began = time.perf_counter()
    requests = conductor.start({})
    done = 0
    while requests:
        requests = conductor.action_status(requests[0].seq, None, "succeeded", done)
        conductor.take_changes()
        done += 1
    elapsed = time.perf_counter() - began
    assert done == count and conductor.status == "succeeded"
    assert elapsed < 2.0, f"{count} tasks took {elapsed:.2f}s"
    assert len(conductor._memo) < 100  # contexts of finished tasks are let go


def test_many_items_with_concurrency_are_linear() -> None:
    spec = orquesta_spec.load(
        {
            "version": 1.0,
            "input": [{"xs": list(range(10_000))}],
            "tasks": {
                "t": {
                    "with": {"items": "<% ctx(xs) %>", "concurrency": 100},
                    "action": "core.echo message=<% item() %>",
                    "next": [{"publish": "n=<% len(result()) %>"}],
                }
            },
            "output": [{"n": "<% ctx(n) %>"}],
        }
    )
    results: dict[int, Any] = {}
    env = Environment(item_results=lambda seq: [results[i] for i in sorted(results)])
    conductor = OrquestaConductor.new(spec, env)
    began = time.perf_counter()
    pending = conductor.start({})
    assert len(pending) == 100
    while pending:
        req = pending.pop()
        assert req.item is not None
        results[req.item] = req.item
        pending += conductor.action_status(req.seq, req.item, "succeeded", req.item)
        conductor.take_changes()
    elapsed = time.perf_counter() - began
    assert conductor.output == {"n": 10_000}
    assert elapsed < 5.0, f"10,000 items took {elapsed:.2f}s"
