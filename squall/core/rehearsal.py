"""Workflow rehearsals: run an Orquesta workflow against mocked action results.

A test spec (Orquesta's rehearsal format) names a workflow, its inputs, the
results its actions should give, and what should come of it: the sequence of
task instances, the routes, the terminal tasks, the status and the output.
:func:`rehearse` conducts the workflow in memory the way Orquesta's
rehearsal does (a round hands every task that can run its mocked result,
then asks what runs next; a with-items task completes one item per round)
and compares.

Mocks are used in the order listed, per task, each for ``num_iter`` runs
(retries and loop iterations included). A mock with ``seq_id`` applies only
to that task instance (its position in the task sequence); one with
``item_id`` completes that item. A task with no mock left succeeds with a
null result.

Nothing here reads files: the caller loads the spec and the workflow.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from squall.core.executions import Status
from squall.core.orquesta import spec as orquesta_spec
from squall.core.orquesta.conductor import OrquestaConductor
from squall.core.workflow import ActionRequest, Environment
from squall.errors import InvalidInput, SquallError

__all__ = [
    "Driver",
    "Mock",
    "Outcome",
    "RehearsalResult",
    "TestSpec",
    "parse_test_spec",
    "rehearse",
]

MAX_ROUNDS = 10_000  # a workflow still running after this many rounds loops forever

# A mock may give any execution status, and Orquesta's "expired".
_STATUSES = frozenset(s.value for s in Status) | {"expired"}
_FIELDS = {
    "workflow",
    "inputs",
    "mock_action_executions",
    "expected_task_sequence",
    "expected_routes",
    "expected_term_tasks",
    "expected_workflow_status",
    "expected_output",
    "expected_errors",
}
_MOCK_FIELDS = {
    "task_id",
    "route",
    "seq_id",
    "item_id",
    "iter_id",
    "num_iter",
    "status",
    "result",
    "result_path",
}


@dataclass
class Mock:
    """A mocked action execution."""

    task_id: str
    result: Any = None
    status: str = "succeeded"
    item_id: int | None = None
    seq_id: int | None = None
    num_iter: int = 1
    result_path: str | None = None  # a file holding the result; the caller reads it
    used: int = 0

    @property
    def available(self) -> bool:
        return self.used < self.num_iter


@dataclass
class TestSpec:
    """A parsed rehearsal spec."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    workflow: str
    expected_task_sequence: list[str]
    inputs: dict[str, Any] = field(default_factory=dict)
    mocks: list[Mock] = field(default_factory=list)
    expected_routes: list[list[str]] = field(default_factory=lambda: [[]])
    expected_term_tasks: list[str] | None = None
    expected_workflow_status: str = "succeeded"
    expected_output: dict[str, Any] | None = None
    expected_errors: list[Any] | None = None


@dataclass
class Outcome:
    """What a rehearsal produced."""

    task_sequence: list[str]
    routes: list[list[str]]
    term_tasks: list[str]
    status: str
    output: dict[str, Any] | None
    errors: list[dict[str, Any]]


@dataclass
class RehearsalResult:
    name: str
    passed: bool
    expected: dict[str, Any]
    actual: dict[str, Any]
    problems: list[str] = field(default_factory=list)  # why it could not run at all

    def diff(self) -> str:
        """Expected against actual, as a unified diff of their YAML."""
        if self.problems:
            return "\n".join(self.problems)
        lines = difflib.unified_diff(
            _dump(self.expected).splitlines(),
            _dump(self.actual).splitlines(),
            fromfile="expected",
            tofile="actual",
            lineterm="",
        )
        return "\n".join(lines)


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)


# --------------------------------------------------------------------------- the spec


def parse_test_spec(data: Any, name: str) -> TestSpec:
    """Check a loaded spec; :class:`InvalidInput` says what is wrong with it."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{name}: a workflow test spec must be a mapping")
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        raise InvalidInput(f"{name}: unknown fields {', '.join(unknown)}")
    workflow = data.get("workflow")
    if not isinstance(workflow, str) or not workflow:
        raise InvalidInput(f"{name}: 'workflow' (the path of the workflow) is required")
    sequence: list[str] = data.get("expected_task_sequence") or []
    if not _strings(sequence):
        raise InvalidInput(f"{name}: 'expected_task_sequence' must be a list of task names")
    inputs = data.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise InvalidInput(f"{name}: 'inputs' must be a mapping")
    routes = data.get("expected_routes", [[]])
    if not isinstance(routes, list) or not all(_strings(r, empty=True) for r in routes):
        raise InvalidInput(f"{name}: 'expected_routes' must be a list of lists of transitions")
    terms = data.get("expected_term_tasks")
    if terms is not None and not _strings(terms, empty=True):
        raise InvalidInput(f"{name}: 'expected_term_tasks' must be a list of task names")
    status = data.get("expected_workflow_status") or "succeeded"
    if status not in _STATUSES:
        raise InvalidInput(f"{name}: 'expected_workflow_status' {status!r} is not a status")
    output = data.get("expected_output")
    if output is not None and not isinstance(output, Mapping):
        raise InvalidInput(f"{name}: 'expected_output' must be a mapping")
    errors = data.get("expected_errors")
    if errors is not None and not isinstance(errors, list):
        raise InvalidInput(f"{name}: 'expected_errors' must be a list")
    mocks_data = data.get("mock_action_executions") or []
    if not isinstance(mocks_data, list):
        raise InvalidInput(f"{name}: 'mock_action_executions' must be a list")
    mocks = [_mock(m, f"{name}: mock_action_executions[{i}]") for i, m in enumerate(mocks_data)]
    return TestSpec(
        name=name,
        workflow=workflow,
        expected_task_sequence=list(sequence),
        inputs=dict(inputs),
        mocks=mocks,
        expected_routes=[list(r) for r in routes],
        expected_term_tasks=list(terms) if terms is not None else None,
        expected_workflow_status="timeout" if status == "expired" else status,
        expected_output=dict(output) if output is not None else None,
        expected_errors=list(errors) if errors is not None else None,
    )


def _strings(value: Any, empty: bool = False) -> bool:
    return (
        isinstance(value, list)
        and (empty or bool(value))
        and all(isinstance(v, str) and v for v in value)
    )


def _mock(data: Any, where: str) -> Mock:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: must be a mapping")
    unknown = sorted(str(k) for k in data if k not in _MOCK_FIELDS)
    if unknown:
        raise InvalidInput(f"{where}: unknown fields {', '.join(unknown)}")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidInput(f"{where}: 'task_id' is required")
    for key in ("seq_id", "item_id", "num_iter"):
        value = data.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise InvalidInput(f"{where}: '{key}' must be a whole number, 0 or more")
    status = data.get("status") or "succeeded"
    if status not in _STATUSES:
        raise InvalidInput(f"{where}: 'status' {status!r} is not a status")
    num_iter = data.get("num_iter")
    result_path = data.get("result_path")
    if result_path is not None and (not isinstance(result_path, str) or not result_path):
        raise InvalidInput(f"{where}: 'result_path' must be a file path")
    return Mock(
        task_id=task_id,
        result=data.get("result"),
        status="timeout" if status == "expired" else status,
        item_id=data.get("item_id"),
        seq_id=data.get("seq_id"),
        num_iter=1 if num_iter is None else num_iter,
        result_path=result_path,
    )


# --------------------------------------------------------------------------- running


def _label(task_id: str, route: int) -> str:
    return f"{task_id}__r{route}" if route > 0 else task_id


def _normal(label: str) -> str:
    """``task`` and ``task__r0`` name the same instance."""
    return label[: -len("__r0")] if label.endswith("__r0") else label


def _mock_for(mocks: list[Mock], task_id: str, seq: int) -> Mock | None:
    """Orquesta's choice: a mock for this very instance, else the task's next
    mock unless that one is meant for another instance."""
    left = [m for m in mocks if m.task_id == task_id and m.available]
    for mock in left:
        if mock.seq_id == seq:
            return mock
    if left and left[0].seq_id is None:
        return left[0]
    return None


@dataclass
class _Unit:
    """A task instance in the current round; a with-items one keeps the items
    handed out and not reported yet."""

    task_id: str
    route: int
    seq: int
    items: set[int] | None


class Driver:
    """Conducts a workflow against mocks, round by round (see the module)."""

    def __init__(self, workflow: orquesta_spec.WorkflowSpec, mocks: list[Mock]) -> None:
        self.mocks = [Mock(**{**m.__dict__, "used": 0}) for m in mocks]
        # As in Orquesta's rehearsal, item results accumulate per task name.
        self.accumulated: dict[str, list[Any]] = {}
        self.owners: dict[int, str] = {}
        env = Environment(item_results=lambda seq: list(self.accumulated.get(self.owners[seq], [])))
        self.conductor = OrquestaConductor.new(workflow, env)

    def run(self, requests: list[ActionRequest]) -> None:
        """Complete ``requests`` and whatever follows, until nothing runs."""
        units: dict[int, _Unit] = {}
        for _ in range(MAX_ROUNDS):
            self._add(units, requests)
            if not units:
                return
            reports: list[tuple[int, int | None, str, Any]] = []
            for unit in sorted(units.values(), key=lambda u: (u.task_id, u.route, u.seq)):
                reports.append(self._complete(unit))
            for seq in [s for s, u in units.items() if u.items is None]:
                del units[seq]
            requests = self.conductor.action_statuses(reports)
            for seq in [s for s, u in units.items() if u.items is not None]:
                if not units[seq].items or not self.conductor.issuing_items(seq):
                    del units[seq]
        raise InvalidInput(f"the workflow still runs after {MAX_ROUNDS} rounds; does it loop?")

    def outcome(self) -> Outcome:
        return _outcome(self.conductor)

    def _add(self, units: dict[int, _Unit], requests: list[ActionRequest]) -> None:
        for req in requests:
            unit = units.get(req.seq)
            if unit is None:
                unit = _Unit(req.task_id, req.route, req.seq, None if req.item is None else set())
                units[req.seq] = unit
            if req.item is not None and unit.items is not None:
                unit.items.add(req.item)
                self.owners[req.seq] = req.task_id

    def _complete(self, unit: _Unit) -> tuple[int, int | None, str, Any]:
        mock = _mock_for(self.mocks, unit.task_id, unit.seq)
        if mock is not None:
            mock.used += 1
        status = mock.status if mock else "succeeded"
        result = mock.result if mock else None
        if unit.items is None:
            return unit.seq, None, status, result
        results = self.accumulated.setdefault(unit.task_id, [])
        item = mock.item_id if mock is not None and mock.item_id is not None else len(results)
        if item >= len(results):
            results.extend([None] * (item - len(results) + 1))
        results[item] = result
        unit.items.discard(item)
        return unit.seq, item, status, result


def rehearse(
    test: TestSpec, workflow: str | Mapping[str, Any], source: str | None = None
) -> RehearsalResult:
    """Run ``test`` on the workflow definition ``workflow`` (YAML text or mapping)."""
    expected = _expected(test)
    try:
        spec = orquesta_spec.load(workflow, source=source or test.workflow)
        problems = orquesta_spec.inspect(spec)
        if problems:
            raise orquesta_spec.WorkflowInvalid(problems, source or test.workflow)
        for mock in test.mocks:
            if not spec.has_task(mock.task_id):
                raise InvalidInput(f"a mock names the task {mock.task_id}, which is not defined")
            if spec.task(mock.task_id).items is not None and mock.item_id is None:
                raise InvalidInput(
                    f'the mock for the with-items task "{mock.task_id}" needs an item_id'
                )
        driver = Driver(spec, test.mocks)
        driver.run(driver.conductor.start(test.inputs))
    except SquallError as exc:
        return RehearsalResult(test.name, False, expected, {}, [exc.message])
    actual = _actual(test, _outcome(driver.conductor))
    return RehearsalResult(test.name, _matches(test, actual), expected, actual)


def _outcome(conductor: OrquestaConductor) -> Outcome:
    instances = conductor.task_instances()
    return Outcome(
        task_sequence=[_label(t["id"], t["route"]) for t in instances],
        routes=conductor.routes(),
        term_tasks=[_label(t["id"], t["route"]) for t in instances if t.get("term")],
        status=conductor.status,
        output=conductor.output,
        errors=conductor.errors,
    )


def _expected(test: TestSpec) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "task_sequence": [_normal(t) for t in test.expected_task_sequence],
        "routes": test.expected_routes,
    }
    if test.expected_term_tasks is not None:
        expected["term_tasks"] = sorted(_normal(t) for t in test.expected_term_tasks)
    expected["status"] = test.expected_workflow_status
    if test.expected_output is not None:
        expected["output"] = test.expected_output
    if test.expected_errors is not None:
        expected["errors"] = test.expected_errors
    return expected


def _actual(test: TestSpec, outcome: Outcome) -> dict[str, Any]:
    """The outcome, with the fields the spec checks."""
    actual: dict[str, Any] = {"task_sequence": outcome.task_sequence, "routes": outcome.routes}
    if test.expected_term_tasks is not None:
        actual["term_tasks"] = sorted(outcome.term_tasks)
    actual["status"] = outcome.status
    if test.expected_output is not None:
        actual["output"] = outcome.output
    if test.expected_errors is not None:
        actual["errors"] = outcome.errors
    return actual


def _matches(test: TestSpec, actual: dict[str, Any]) -> bool:
    return _expected(test) == actual
