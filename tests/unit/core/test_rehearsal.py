"""Workflow rehearsals: specs, mocks, and the comparison with what was expected."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from squall.core import rehearsal
from squall.core.orquesta import spec as orquesta_spec
from squall.errors import InvalidInput

WORKFLOW = textwrap.dedent(
    """
    version: 1.0
    input:
      - name
    tasks:
      greet:
        action: core.echo message=<% ctx().name %>
        retry:
          count: 1
        next:
          - when: <% succeeded() %>
            publish: greeting=<% result() %>
            do: shout
          - when: <% failed() %>
            do: apologise
      shout:
        with: <% [1, 2, 3] %>
        action: core.echo message=<% item() %>
        next:
          - publish: shouts=<% result() %>
      apologise:
        action: core.echo message=sorry
    output:
      - greeting: <% ctx().get(greeting) %>
      - shouts: <% ctx().get(shouts) %>
    """
)


def _spec(**fields: Any) -> rehearsal.TestSpec:
    data = {"workflow": "wf.yaml", "inputs": {"name": "Ann"}, **fields}
    return rehearsal.parse_test_spec(data, "spec.yaml")


def test_a_matching_spec_passes() -> None:
    test = _spec(
        expected_task_sequence=["greet", "shout", "continue"],
        mock_action_executions=[
            {"task_id": "greet", "result": "hi Ann"},
            {"task_id": "shout", "item_id": 2, "result": "C"},
            {"task_id": "shout", "item_id": 0, "result": "A"},
            {"task_id": "shout", "item_id": 1, "result": "B"},
        ],
        expected_term_tasks=["continue", "shout"],
        expected_output={"greeting": "hi Ann", "shouts": ["A", "B", "C"]},
    )
    result = rehearsal.rehearse(test, WORKFLOW)
    assert result.passed, result.diff()
    assert result.diff() == ""


def test_retries_consume_num_iter_and_a_mismatch_gives_a_diff() -> None:
    test = _spec(
        expected_task_sequence=["greet", "shout", "continue"],
        mock_action_executions=[{"task_id": "greet", "status": "failed", "num_iter": 2}],
        expected_workflow_status="succeeded",
    )
    result = rehearsal.rehearse(test, WORKFLOW)
    assert not result.passed
    assert result.actual["task_sequence"] == ["greet", "apologise"]
    diff = result.diff()
    assert diff.startswith("--- expected\n+++ actual")
    assert "-- shout" in diff and "+- apologise" in diff and "-- continue" in diff


def test_seq_id_pins_a_mock_to_one_task_instance() -> None:
    test = _spec(
        expected_task_sequence=["greet", "shout", "continue"],
        mock_action_executions=[
            {"task_id": "greet", "seq_id": 5, "status": "failed"},  # never that instance
        ],
    )
    assert rehearsal.rehearse(test, WORKFLOW).passed


def test_routes_are_compared_and_route_zero_may_be_spelled_out() -> None:
    test = _spec(expected_task_sequence=["greet__r0", "shout", "continue"], expected_routes=[[]])
    assert rehearsal.rehearse(test, WORKFLOW).passed
    test = _spec(expected_task_sequence=["greet", "shout"], expected_routes=[[], ["x__t0"]])
    result = rehearsal.rehearse(test, WORKFLOW)
    assert not result.passed and "x__t0" in result.diff()


def test_an_invalid_workflow_fails_with_its_problems() -> None:
    test = _spec(expected_task_sequence=["greet"])
    result = rehearsal.rehearse(
        test, "version: 1.0\ntasks:\n  t:\n    action: x\n    next: [{do: y}]\n"
    )
    assert not result.passed
    assert 'the task "y" is not defined' in result.diff()


def test_mocks_for_items_need_an_item_id_and_a_known_task() -> None:
    test = _spec(expected_task_sequence=["greet"], mock_action_executions=[{"task_id": "shout"}])
    assert "needs an item_id" in rehearsal.rehearse(test, WORKFLOW).diff()
    test = _spec(expected_task_sequence=["greet"], mock_action_executions=[{"task_id": "nope"}])
    assert "nope" in rehearsal.rehearse(test, WORKFLOW).diff()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expected_task_sequence": "greet"}, "expected_task_sequence"),
        ({"expected_task_sequence": ["greet"], "colour": 1}, "unknown fields colour"),
        ({"expected_task_sequence": ["greet"], "expected_workflow_status": "done"}, "status"),
        (
            {"expected_task_sequence": ["greet"], "mock_action_executions": [{"result": 1}]},
            "task_id",
        ),
        (
            {
                "expected_task_sequence": ["greet"],
                "mock_action_executions": [{"task_id": "greet", "num_iter": -1}],
            },
            "num_iter",
        ),
    ],
)
def test_malformed_specs_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _spec(**fields)
    with pytest.raises(InvalidInput, match="mapping"):
        rehearsal.parse_test_spec(["not", "a", "mapping"], "spec.yaml")


def test_the_driver_can_continue_after_a_rerun() -> None:
    spec = orquesta_spec.load(WORKFLOW)
    driver = rehearsal.Driver(spec, [rehearsal.Mock("greet", status="failed", num_iter=2)])
    driver.run(driver.conductor.start({"name": "Ann"}))
    driver.mocks = []
    assert driver.outcome().task_sequence == ["greet", "apologise"]
    driver.run(driver.conductor.rerun([("greet", 0, False)]))
    outcome = driver.outcome()
    assert outcome.task_sequence == ["greet", "apologise", "greet", "shout", "continue"]
    assert outcome.status == "succeeded"
