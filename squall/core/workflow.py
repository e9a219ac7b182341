"""The contract between a workflow conductor and whoever drives it.

A *conductor* (Orquesta's in ``core/orquesta``, ActionChain's in
``core/actionchain.py``) is a pure state machine: it is told what happened
(the workflow started, an action finished, a user asked to pause) and answers
with what to run next. It never runs anything, reads no clock and touches no
database. Two drivers use it: the workflow engine (``services/workflows.py``),
which persists every change in the transaction that records the event, and
``squall workflow test`` (``core/rehearsal.py``), which feeds it mocked
results in memory.

State lives in :class:`Records`: small JSON-serialisable records, each of
bounded size, so the engine stores each as one row and writes only the ones
a step changed. Nothing in them grows with the size of the workflow: a task
instance references its context by id, context records hold only what a
``publish`` added, and with-items items are records of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from squall.errors import InvalidInput

# Workflow and task statuses are the execution statuses (core/executions.py)
# plus "unset" (not started) and "retrying" (a task between two attempts).
UNSET = "unset"
RETRYING = "retrying"


@dataclass
class ActionRequest:
    """One action execution the driver must start for a task (or one item of it)."""

    task_id: str  # the task's name in the workflow
    route: int  # the branch the task runs on (Orquesta splits); 0 otherwise
    seq: int  # the task instance record this execution belongs to
    action: str  # action ref, "pack.name"
    input: dict[str, Any]  # the action's parameters, rendered
    item: int | None = None  # the item index for with-items tasks
    delay: float = 0.0  # seconds to wait before running (task delay, retry delay)


class KeyValueLookup(Protocol):
    """The datastore for ``st2kv`` in expressions (the driver supplies it)."""

    def get(self, scope: str, name: str) -> Any: ...

    def decrypt(self, value: str) -> str: ...


@dataclass
class Environment:
    """What a conductor may ask of its driver while it decides.

    ``item_results(seq)`` returns the results of a with-items task instance,
    in item order; the engine reads them from the database only when the task
    completes, so they are never held in memory for the whole run.
    """

    kv: KeyValueLookup | None = None
    item_results: Callable[[int], list[Any]] | None = None
    # The parent's context (user, parent execution...) for st2's ``ctx().st2``.
    parent_context: Mapping[str, Any] = field(default_factory=dict)
    # Which input names of an action (by ref) are shell commands, whose
    # expressions are shell-quoted; None when no action has any.
    shell_inputs: Callable[[str], frozenset[str]] | None = None


@dataclass
class Changes:
    """Records a step created or changed, for the driver to persist.

    Keys are record kinds (``"workflow"``, ``"task"``, ``"staged"``,
    ``"context"``, ``"item"``, ``"route"``); values map a record's key to
    its new content, or to ``None`` when the record was deleted.
    """

    records: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)

    def put(self, kind: str, key: str, value: dict[str, Any] | None) -> None:
        self.records.setdefault(kind, {})[key] = value

    def __bool__(self) -> bool:
        return any(self.records.values())


class Conductor(Protocol):
    """What every conductor offers its driver."""

    @property
    def status(self) -> str: ...  # the workflow's status

    @property
    def output(self) -> dict[str, Any] | None: ...

    @property
    def errors(self) -> list[dict[str, Any]]: ...

    def start(self, inputs: Mapping[str, Any]) -> list[ActionRequest]:
        """Check and render the inputs and vars, and return the first actions."""
        ...

    def action_status(
        self, seq: int, item: int | None, status: str, result: Any = None
    ) -> list[ActionRequest]:
        """An action of task instance ``seq`` (item ``item``) changed status.

        Final statuses carry the action's result; ``pending``/``paused``
        propagate to the workflow. Returns the actions to start next (tasks
        without an action and engine commands are completed inline)."""
        ...

    def request_status(self, status: str) -> list[ActionRequest]:
        """A user asked to pause, resume or cancel the workflow."""
        ...

    def rerun(self, tasks: list[tuple[str, int, bool]]) -> list[ActionRequest]:
        """Re-run a completed workflow from ``(task_id, route, reset_items)``
        task instances (all failed terminal tasks when empty)."""
        ...

    def take_changes(self) -> Changes:
        """The records changed since the last call, and forget them."""
        ...


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a workflow definition, and where it is.

    ``path`` points into the definition the way its author reads it, e.g.
    ``chain[2].on-success`` or ``tasks.task1.next[0].when``; empty means the
    whole definition.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class DefinitionInvalid(InvalidInput):
    """A definition that cannot run; the message lists every problem, one per line."""

    language = "workflow"

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        where = f"{self.language} {source}" if source else f"the {self.language}"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{where} has {count} {noun}:\n{lines}")

    def to_dict(self) -> dict[str, object]:
        return {
            "faultstring": self.message,
            "problems": [{"path": p.path, "message": p.message} for p in self.problems],
        }
