"""The Orquesta conductor: decides, event by event, what a workflow runs next.

It follows Orquesta's semantics (transitions, joins, splits into routes,
with-items, retries, engine commands, pause, resume, cancel and re-run) but
keeps its state in small records (see :class:`~squall.core.workflow.Changes`)
so the engine can store each as a row and write only what a step changed:

``workflow`` (key ``wf``)
    ``status``, ``input``, ``output``, ``errors`` (at most
    :data:`MAX_ERRORS`) and ``rendered`` (the output has been rendered).
``route`` (key: the route number)
    ``{"splits": [...]}``: the transitions (``task2__t0``) that split the
    workflow into this branch. Route 0 has none.
``task`` (key: the task instance's ``seq``, counted from 0)
    One per run of a task on a route: ``id``, ``route``, ``status``,
    ``ctx`` (the id of its input context), ``prev`` (``{"task1__t0": seq}``,
    the transitions that led here), ``next`` (``{"task2__t0": true}``, how
    its transitions were decided), ``retry`` (``when``, ``count``,
    ``delay``, ``tally``), ``term`` (it ended the workflow) and, for a
    with-items task, ``items`` (how many).
``staged`` (key ``task_id:route``)
    A task that a transition reached and that has not started, or a
    with-items task still issuing items: ``ctx``, ``prev``, ``ready`` (a
    join whose branches have all arrived), ``completed``, ``run_on_fail``,
    ``delay`` (of a retry) and ``items`` — counters only: the ``seq`` owning
    the items, ``count``, ``next`` (first item not yet issued), ``busy``
    (issued and not done) and ``counts`` (items by status).
``item`` (key ``seq:index``)
    ``{"status": ...}`` of one item, plus its ``result`` when the driver
    does not serve item results itself (``Environment.item_results``).
``context`` (key: its id)
    ``{"parents": [[id, include_root], ...], "delta": {...}}``. Context 0
    holds the inputs and vars; a publish adds a context with one parent and
    what it published; a join adds one with the branches it merges.

A task's variables are its context materialized: its ancestors' deltas
merged in Orquesta's order (deep merge, later values win; a join takes its
first branch whole, then the other branches without the workflow's initial
context). Materialized contexts are memoized in memory and dropped once no
waiting or running task needs them, so each step costs the same however long
the workflow has run. Every lookup an event needs (the latest run of a task,
tasks by status, staged tasks that are ready) is an index, not a scan.

The driver sees task instances through :class:`ActionRequest`: ``seq`` names
the instance (for a with-items task, the instance that owns the items) and
the driver reports back with :meth:`OrquestaConductor.action_status`. Tasks
without an action, with-items tasks over an empty list and engine commands
(``continue``, ``fail``, ``noop``) complete inside the conductor. A task
becomes ``running`` when the conductor hands it out; its items become active
only when the driver reports them (``running``, then a final status), as in
Orquesta, where an item nobody reported on does not keep its task busy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from squall.core.executions import Status
from squall.core.orquesta import machines as m
from squall.core.orquesta.expressions import ExpressionError, Scope, evaluate
from squall.core.orquesta.spec import ENGINE_COMMANDS, Edge, WorkflowSpec
from squall.core.workflow import RETRYING, UNSET, ActionRequest, Changes, Environment
from squall.errors import Conflict, InvalidInput, SquallError

__all__ = ["MAX_ERRORS", "OrquestaConductor"]

MAX_ERRORS = 100  # errors kept in the workflow record
_MAX_INLINE = 100_000  # tasks completed inside one call: more means a loop without actions
_WF = "wf"
_ROOT = 0

_FAILED_MESSAGE = "Execution failed. See result for details."

# What a driver may report: the execution statuses.
_KNOWN_STATUSES = frozenset(s.value for s in Status)
# Statuses of a task's latest run that let it start again from its staging.
_STARTABLE = m.COMPLETED | {UNSET, RETRYING}
_ENGINE_EVENTS = {
    "continue": ("task_continue_requested", m.SUCCEEDED),
    "noop": ("task_noop_requested", m.SUCCEEDED),
    "fail": ("task_fail_requested", m.FAILED),
}


@dataclass
class _Event:
    name: str  # the task machine event, before items add their details
    status: str
    result: Any = None
    item: int | None = None


@dataclass
class _Items:
    """A staged with-items task's rendered items (memory only; rebuilt after a restore)."""

    actions: list[str]
    inputs: list[dict[str, Any]]
    concurrency: int | None
    delay: float


@dataclass
class _Plan:
    """What starting a staged task involves."""

    key: str
    task_id: str
    route: int
    action: str | None  # None: nothing to run, the task completes at once
    input: dict[str, Any]
    delay: float
    items: _Items | None


def _copy(value: Any) -> Any:
    """A copy of JSON-like data, so records never share objects with callers."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def _merged(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """Orquesta's deep merge (right wins), without changing either side.

    Unchanged branches are shared with ``left``: contexts are never modified
    once built, so sharing is safe and keeps a publish cheap."""
    out = dict(left)
    for key, value in right.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merged(old, value)
        else:
            out[key] = value
    return out


def _staged_key(task_id: str, route: int) -> str:
    return f"{task_id}:{route}"


def _describe_error(exc: BaseException) -> str:
    """An error as Orquesta words it: ``Kind: message``."""
    if isinstance(exc, ExpressionError):
        # st2 names the language whose expression failed.
        kind = "YaqlEvaluationException"
        if exc.expression and "<%" not in exc.expression:
            kind = "JinjaEvaluationException"
        return f"{kind}: {exc.message}"
    if isinstance(exc, SquallError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class OrquestaConductor:
    """Orquesta's workflow conductor over Squall's records (see the module)."""

    def __init__(self, spec: WorkflowSpec, env: Environment) -> None:
        self._spec = spec
        self._graph = spec.graph
        self._env = env
        # Records, by kind.
        self._wf: dict[str, Any] = {
            "status": UNSET,
            "input": {},
            "output": None,
            "errors": [],
            "rendered": False,
        }
        self._routes: list[list[str]] = []
        self._tasks: dict[int, dict[str, Any]] = {}
        self._staged: dict[str, dict[str, Any]] = {}
        self._items: dict[str, dict[str, Any]] = {}
        self._contexts: dict[int, dict[str, Any]] = {}
        # Indexes over the records.
        self._latest: dict[tuple[str, int], int] = {}
        self._by_status: Counter[str] = Counter()  # latest instances only
        self._active: set[int] = set()  # latest instances in an active status
        self._open: set[int] = set()  # latest instances not completed
        self._ready: set[str] = set()  # staged, ready and not completed
        self._term: set[int] = set()
        self._next_seq = 0
        self._next_ctx = 0
        # Memory only.
        self._memo: dict[int, dict[str, Any]] = {}
        self._item_plans: dict[str, _Items] = {}
        self._dirty: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def new(cls, spec: WorkflowSpec, env: Environment) -> OrquestaConductor:
        """A conductor for a workflow that has not started (call :meth:`start`).

        ``spec`` must have passed :func:`~squall.core.orquesta.spec.inspect`."""
        return cls(spec, env)

    @classmethod
    def restore(
        cls,
        spec: WorkflowSpec,
        records: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
        env: Environment,
    ) -> OrquestaConductor:
        """The conductor whose :meth:`take_changes` produced ``records`` (all of
        them, merged; a ``None`` value is a deleted record)."""
        self = cls(spec, env)

        def rows(kind: str) -> Iterable[tuple[str, dict[str, Any]]]:
            for key, value in (records.get(kind) or {}).items():
                if value is not None:
                    yield key, _copy(value)

        for _, wf in rows("workflow"):
            self._wf.update(wf)
        routes = sorted((int(k), v) for k, v in rows("route"))
        self._routes = [list(v.get("splits", [])) for _, v in routes]
        self._contexts = {int(k): v for k, v in rows("context")}
        self._next_ctx = max(self._contexts, default=-1) + 1
        self._tasks = {int(k): v for k, v in rows("task")}
        self._next_seq = max(self._tasks, default=-1) + 1
        self._staged = dict(rows("staged"))
        self._items = dict(rows("item"))
        for seq in sorted(self._tasks):
            rec = self._tasks[seq]
            self._latest[(rec["id"], rec["route"])] = seq
            if rec.get("term"):
                self._term.add(seq)
        for seq in self._latest.values():
            self._index_status(seq, None, self._tasks[seq]["status"])
        for key, staged in self._staged.items():
            self._index_staged(key, staged)
        return self

    # ------------------------------------------------------------------ the Conductor protocol

    @property
    def status(self) -> str:
        return str(self._wf["status"])

    @property
    def output(self) -> dict[str, Any] | None:
        out = self._wf.get("output")
        return _copy(out) if out else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        return _copy(self._wf["errors"])  # type: ignore[no-any-return]

    def start(self, inputs: Mapping[str, Any]) -> list[ActionRequest]:
        if self.status != UNSET:
            raise Conflict(f"the workflow has already started (it is {self.status})")
        self._wf["input"] = _copy(dict(inputs))
        self._dirty_wf()
        context, problems = self._initial_context(inputs)
        if problems:
            for exc in problems:
                self._log_error(exc)
            self._workflow_event(m.FAILED)
            return self._end_step([])
        self._add_route([])
        self._add_context([], context)
        for root in self._graph.roots:
            self._stage(root, 0, ctx=_ROOT, prev={}, ready=True)
        self._workflow_event(m.RUNNING_)
        return self._end_step(self._issue())

    def action_status(
        self, seq: int, item: int | None, status: str, result: Any = None
    ) -> list[ActionRequest]:
        self._report(seq, item, status, result)
        return self._end_step(self._issue())

    def action_statuses(
        self, reports: Iterable[tuple[int, int | None, str, Any]]
    ) -> list[ActionRequest]:
        """Several :meth:`action_status` reports, then one decision on what runs
        next (as Orquesta's rehearsal does after a round of completions)."""
        for seq, item, status, result in reports:
            self._report(seq, item, status, result)
        return self._end_step(self._issue())

    def request_status(self, status: str) -> list[ActionRequest]:
        current = self.status
        if status not in _KNOWN_STATUSES:
            raise InvalidInput(f"'{status}' is not a workflow status")
        if not self._workflow_event_possible(current, status):
            raise Conflict(f"a workflow that is {current} cannot become {status}")
        # Tell the active tasks first: a with-items task may pause or cancel at once.
        for seq in sorted(self._active):
            rec = self._tasks[seq]
            staged = self._staged.get(_staged_key(rec["id"], rec["route"]))
            counts = staged["items"]["counts"] if staged and "items" in staged else None
            event = m.task_workflow_event(status, counts)
            self._set_task_status(seq, m.next_status(m.TASK_MACHINE, rec["status"], event))
        self._workflow_event(status)
        updated = self.status
        unchanged_ok = (status == m.PAUSED and current == updated == m.PAUSING) or (
            status == m.CANCELED and current == updated == m.CANCELING
        )
        if status != current and updated == current and not unchanged_ok:
            raise Conflict(f"a workflow that is {current} cannot become {status}")
        return self._end_step(self._issue())

    def rerun(self, tasks: list[tuple[str, int, bool]]) -> list[ActionRequest]:
        if self.status not in m.COMPLETED:
            raise Conflict(f"only a completed workflow can be re-run; this one is {self.status}")
        wanted: dict[tuple[str, int], bool] = {}
        for task_id, route, reset in tasks:
            wanted[(task_id, route)] = reset
        unknown = [f"{t}|{r}" for t, r in wanted if (t, r) not in self._latest]
        if unknown:
            raise InvalidInput(
                "cannot re-run task|route " + ", ".join(unknown) + ": it never ran in this workflow"
            )
        if not wanted:
            chosen = [
                (rec["id"], rec["route"])
                for seq in sorted(self._term)
                if (rec := self._tasks[seq])["status"] in m.ABENDED
            ]
        else:
            chosen = self._collapse_reruns(list(wanted))
        for task_id, route in sorted(set(chosen)):
            try:
                self._rerun_task(task_id, route, wanted.get((task_id, route), False))
            except _Abort:
                return self._end_step([])
        # Terminal tasks with transitions taken can carry on (a join may now complete).
        for seq in sorted(self._term):
            if any(self._tasks[seq]["next"].values()):
                self._set_term(seq, False)
        self._wf["output"] = None
        self._wf["rendered"] = False
        self._wf["status"] = m.RESUMING
        self._dirty_wf()
        return self._end_step(self._issue())

    def take_changes(self) -> Changes:
        changes = Changes()
        for kind, keys in self._dirty.items():
            for key in sorted(keys):
                value = self._record(kind, key)
                changes.put(kind, key, _copy(value) if value is not None else None)
        self._dirty = {}
        return changes

    def _record(self, kind: str, key: str) -> dict[str, Any] | None:
        if kind == "workflow":
            return self._wf
        if kind == "route":
            return {"splits": self._routes[int(key)]}
        if kind == "task":
            return self._tasks.get(int(key))
        if kind == "context":
            return self._contexts.get(int(key))
        if kind == "staged":
            return self._staged.get(key)
        return self._items.get(key)

    # ------------------------------------------------------------------ views (rehearsal, tests)

    def task_instances(self) -> list[dict[str, Any]]:
        """Every task instance record, in the order they were created."""
        return [_copy(self._tasks[seq]) for seq in sorted(self._tasks)]

    def routes(self) -> list[list[str]]:
        return _copy(self._routes)  # type: ignore[no-any-return]

    def issuing_items(self, seq: int) -> bool:
        """Whether the with-items task owning items at ``seq`` may still hand
        out items (it is staged, not completed, and the workflow runs)."""
        rec = self._tasks.get(seq)
        if rec is None:
            return False
        staged = self._staged.get(_staged_key(rec["id"], rec["route"]))
        if not staged or "items" not in staged or staged["items"]["seq"] != seq:
            return False
        if staged.get("completed") or not staged.get("ready"):
            return False
        return self.status in m.RUNNING or (
            self.status == m.FAILED and bool(staged.get("run_on_fail"))
        )

    # ------------------------------------------------------------------ records and indexes

    def _mark(self, kind: str, key: str) -> None:
        self._dirty.setdefault(kind, set()).add(key)

    def _dirty_wf(self) -> None:
        self._mark("workflow", _WF)

    def _index_status(self, seq: int, old: str | None, new: str) -> None:
        if old is not None:
            self._by_status[old] -= 1
        self._by_status[new] += 1
        if new in m.ACTIVE:
            self._active.add(seq)
        else:
            self._active.discard(seq)
        if new in m.COMPLETED:
            self._open.discard(seq)
        else:
            self._open.add(seq)

    def _unindex(self, seq: int) -> None:
        """``seq`` is no longer the latest instance of its task and route."""
        self._by_status[self._tasks[seq]["status"]] -= 1
        self._active.discard(seq)
        self._open.discard(seq)

    def _index_staged(self, key: str, staged: dict[str, Any]) -> None:
        if staged.get("ready") and not staged.get("completed"):
            self._ready.add(key)
        else:
            self._ready.discard(key)

    def _set_task_status(self, seq: int, status: str) -> None:
        rec = self._tasks[seq]
        old = rec["status"]
        if old == status:
            return
        rec["status"] = status
        if self._latest.get((rec["id"], rec["route"])) == seq:
            self._index_status(seq, old, status)
        self._mark("task", str(seq))

    def _set_term(self, seq: int, term: bool) -> None:
        rec = self._tasks[seq]
        if term and not rec.get("term"):
            rec["term"] = True
            self._term.add(seq)
            self._mark("task", str(seq))
        elif not term and "term" in rec:
            del rec["term"]
            self._term.discard(seq)
            self._mark("task", str(seq))

    def _add_route(self, splits: list[str]) -> int:
        self._routes.append(splits)
        self._mark("route", str(len(self._routes) - 1))
        return len(self._routes) - 1

    def _add_context(self, parents: list[list[Any]], delta: dict[str, Any]) -> int:
        ctx_id = self._next_ctx
        self._next_ctx += 1
        self._contexts[ctx_id] = {"parents": parents, "delta": _copy(delta)}
        self._mark("context", str(ctx_id))
        return ctx_id

    def _add_task(self, task_id: str, route: int, ctx: int, prev: dict[str, int]) -> int:
        seq = self._next_seq
        self._next_seq += 1
        rec: dict[str, Any] = {
            "seq": seq,
            "id": task_id,
            "route": route,
            "status": UNSET,
            "ctx": ctx,
            "prev": dict(prev),
            "next": {},
        }
        self._tasks[seq] = rec
        old = self._latest.get((task_id, route))
        if old is not None:
            self._unindex(old)
        self._latest[(task_id, route)] = seq
        self._index_status(seq, None, UNSET)
        self._mark("task", str(seq))
        retry = self._graph.retries.get(task_id)
        if retry is not None and retry.get("count") is not None:
            try:
                rec["retry"] = self._evaluate_retry(task_id, route, retry, ctx)
            except Exception as exc:
                # As in Orquesta, retry settings that do not evaluate fail the workflow.
                rec["retry"] = {**retry, "count": 0, "tally": 0}
                self._log_error(exc, task_id, route)
                self._workflow_event(m.FAILED)
                raise _Abort() from exc
        return seq

    def _evaluate_retry(
        self, task_id: str, route: int, retry: dict[str, Any], ctx: int
    ) -> dict[str, Any]:
        settings = {**retry, "tally": 0}
        scope = self._scope(ctx, route)
        for name in ("delay", "count"):
            value = settings.get(name)
            if isinstance(value, str):
                value = evaluate(value, scope)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise TypeError(f'The retry {name} for task "{task_id}" is not an integer.')
                settings[name] = value
        return settings

    def _stage(
        self,
        task_id: str,
        route: int,
        *,
        ctx: int,
        prev: dict[str, int],
        ready: bool,
        delay: float | None = None,
    ) -> dict[str, Any]:
        key = _staged_key(task_id, route)
        staged: dict[str, Any] = {
            "id": task_id,
            "route": route,
            "ctx": ctx,
            "prev": dict(prev),
            "ready": ready,
        }
        if delay is not None:
            staged["delay"] = delay
        self._staged[key] = staged
        self._item_plans.pop(key, None)
        self._index_staged(key, staged)
        self._mark("staged", key)
        return staged

    def _staged_changed(self, key: str) -> None:
        self._index_staged(key, self._staged[key])
        self._mark("staged", key)

    def _unstage(self, task_id: str, route: int) -> None:
        """Drop a staged task, unless some of its items are still running."""
        key = _staged_key(task_id, route)
        staged = self._staged.get(key)
        if staged is None:
            return
        items = staged.get("items")
        if items and any(n for s, n in items["counts"].items() if s in m.ACTIVE):
            return
        del self._staged[key]
        self._item_plans.pop(key, None)
        self._ready.discard(key)
        self._mark("staged", key)

    def _clear_items(self, staged: dict[str, Any]) -> None:
        """Forget the items of a staged task so they all run again."""
        items = staged.pop("items", None)
        if not items:
            return
        seq = items["seq"]
        for index in range(items["count"]):
            key = f"{seq}:{index}"
            if self._items.pop(key, None) is not None:
                self._mark("item", key)

    def _log(self, entry: dict[str, Any]) -> None:
        errors: list[dict[str, Any]] = self._wf["errors"]
        if entry in errors or len(errors) >= MAX_ERRORS:
            return
        errors.append(entry)
        self._dirty_wf()

    def _log_error(
        self,
        exc: BaseException | str,
        task_id: str | None = None,
        route: int | None = None,
        transition: str | None = None,
        result: Any = None,
    ) -> None:
        message = exc if isinstance(exc, str) else _describe_error(exc)
        entry: dict[str, Any] = {"type": "error", "message": message}
        for name, value in (
            ("task_id", task_id),
            ("route", route),
            ("task_transition_id", transition),
            ("result", result),
        ):
            if value is not None:
                entry[name] = _copy(value)
        self._log(entry)

    # ------------------------------------------------------------------ contexts

    def _initial_context(
        self, inputs: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[BaseException]]:
        problems: list[BaseException] = []
        context = _copy(self._env.parent_context)
        rolling = dict(context)
        for name, default in self._spec.input:
            if name in inputs:
                # A given input is data (it may come from an event): unlike
                # Orquesta, expressions in it are not evaluated.
                rolling[name] = _copy(inputs[name])
                continue
            try:
                rolling[name] = evaluate(default, self._plain_scope(rolling))
            except Exception as exc:
                problems.append(exc)
        context = _merged(context, rolling)
        rolling = dict(context)
        variables: dict[str, Any] = {}
        for name, value in self._spec.vars:
            try:
                rolling[name] = variables[name] = evaluate(value, self._plain_scope(rolling))
            except Exception as exc:
                problems.append(exc)
        return _copy(_merged(context, variables)), problems

    def _materialize(self, ctx_id: int) -> dict[str, Any]:
        """A context's variables (memoized; computed without recursion)."""
        stack = [ctx_id]
        while stack:
            node = stack[-1]
            if node in self._memo:
                stack.pop()
                continue
            rec = self._contexts[node]
            parents = rec["parents"]
            if not parents:
                self._memo[node] = dict(rec["delta"])
                stack.pop()
                continue
            first = parents[0][0]
            if first not in self._memo:
                stack.append(first)
                continue
            value = self._memo[first]
            for parent, include_root in parents[1:]:
                for part in self._lineage(parent, include_root):
                    value = _merged(value, self._contexts[part]["delta"])
            if rec["delta"]:
                value = _merged(value, rec["delta"])
            self._memo[node] = value
            stack.pop()
        return self._memo[ctx_id]

    def _lineage(self, ctx_id: int, include_root: bool) -> list[int]:
        """The contexts whose deltas make up ``ctx_id``, in merge order (what
        Orquesta keeps as a task's list of context indexes)."""
        out: list[int] = []
        # Entries: (node, include_root) to expand, or (node, None) to emit.
        work: list[tuple[int, bool | None]] = [(ctx_id, include_root)]
        while work:
            node, flag = work.pop()
            if flag is None:
                out.append(node)
                continue
            rec = self._contexts[node]
            parents = rec["parents"]
            if not parents:
                if flag:
                    out.append(node)
                continue
            if rec["delta"]:
                work.append((node, None))
            for i in range(len(parents) - 1, -1, -1):
                parent, parent_root = parents[i]
                work.append((parent, bool(flag and parent_root and i == 0)))
        return out

    def _terminal_context(self) -> dict[str, Any]:
        """The context the output is rendered in: the first terminal task's,
        then each other terminal task's without the initial context."""
        terms = sorted(self._term)
        if not terms:
            return {}
        value = self._materialize(self._tasks[terms[0]]["ctx"])
        for seq in terms[1:]:
            part: dict[str, Any] = {}
            for ctx_id in self._lineage(self._tasks[seq]["ctx"], False):
                part = _merged(part, self._contexts[ctx_id]["delta"])
            value = _merged(value, part)
        return value

    def _forget_contexts(self) -> None:
        """Drop memoized contexts no waiting or running task needs."""
        live = {s["ctx"] for s in self._staged.values()}
        live.update(self._tasks[seq]["ctx"] for seq in self._open)
        if len(self._memo) > 2 * len(live) + 64:
            self._memo = {k: v for k, v in self._memo.items() if k in live}

    # ------------------------------------------------------------------ expressions

    def _task_status(self, task_id: str, route: int) -> str:
        """Status of the latest run of ``task_id`` on ``route`` or, if it did not
        run there, on the nearest earlier route this one branched from."""
        while True:
            seq = self._latest.get((task_id, route))
            if seq is not None:
                return str(self._tasks[seq]["status"])
            if route <= 0 or route >= len(self._routes):
                return UNSET
            current = set(self._routes[route])
            for earlier in range(route - 1, -1, -1):
                if set(self._routes[earlier]) <= current:
                    route = earlier
                    break
            else:
                return UNSET

    def _plain_scope(self, ctx: Mapping[str, Any]) -> Scope:
        return Scope(ctx=ctx, task_status=lambda name: self._task_status(name, 0), kv=self._env.kv)

    def _scope(
        self,
        ctx: int | Mapping[str, Any],
        route: int,
        current: Mapping[str, Any] | None = None,
    ) -> Scope:
        variables = self._materialize(ctx) if isinstance(ctx, int) else ctx
        return Scope(
            ctx=variables,
            current=current,
            task_status=lambda name: self._task_status(name, route),
            kv=self._env.kv,
        )

    # ------------------------------------------------------------------ handing out tasks

    def _next_ready(self) -> list[str]:
        """Staged tasks to start now, by task and route (Orquesta's
        ``get_next_tasks``): all ready ones while the workflow runs; after it
        failed, only remediation tasks staged next to a ``fail``."""
        ready = sorted(self._ready, key=lambda k: (self._staged[k]["id"], self._staged[k]["route"]))
        if self.status == m.FAILED:
            fixes = [k for k in ready if self._staged[k].get("run_on_fail")]
            if fixes:
                return fixes
        return ready if self.status in m.RUNNING else []

    def _plan(self, key: str) -> _Plan | None:
        """Render a staged task; None when it has nothing to hand out."""
        staged = self._staged[key]
        task_id, route = staged["id"], staged["route"]
        task = self._spec.task(task_id)
        current = {"id": task_id, "route": route, "status": self._task_status(task_id, route)}
        scope = self._scope(staged["ctx"], route, current)
        delay = 0.0
        if task.delay:
            value = evaluate(task.delay, scope) if isinstance(task.delay, str) else task.delay
            if not isinstance(value, int):
                raise TypeError("The value of task delay is not type of integer.")
            delay = float(value)
        if "delay" in staged:  # a retry's delay replaces the task's
            delay = float(staged["delay"] or 0)
        if task.items is None:
            seq = self._latest.get((task_id, route))
            if seq is not None and self._tasks[seq]["status"] not in _STARTABLE:
                # Still running: a branch that arrived late does not start it
                # twice; its completion drops this staging (as in Orquesta).
                return None
            action = None
            params: Any = {}
            if task.action is not None:
                action = evaluate(task.action, scope)
                params = self._evaluate_input(task.input, scope, action)
                if not isinstance(action, str) or not action:
                    raise TypeError(f'The action of task "{task_id}" is not a name: {action!r}')
                if not isinstance(params, Mapping):
                    raise TypeError(f'The input of task "{task_id}" is not a mapping: {params!r}')
            return _Plan(key, task_id, route, action, _copy(params or {}), delay, None)
        items = self._item_plans.get(key)
        if items is None:
            items = self._render_items(task_id, scope, delay)
            self._item_plans[key] = items
        else:
            items.delay = delay
        state = staged.get("items")
        count = len(items.actions)
        if count and state is not None:
            limit = items.concurrency
            if state["next"] >= count or (limit is not None and state["busy"] >= limit):
                return None
        return _Plan(key, task_id, route, task.action, {}, delay, items)

    def _evaluate_input(self, spec: Any, scope: Scope, action: Any) -> Any:
        """A task's input; inputs that are shell commands of its action are quoted."""
        if spec is None:
            return {}
        lookup = self._env.shell_inputs
        shell = lookup(action) if lookup is not None and isinstance(action, str) else frozenset()
        return evaluate(spec, scope, shell=shell)

    def _render_items(self, task_id: str, scope: Scope, delay: float) -> _Items:
        task = self._spec.task(task_id)
        spec = task.items
        assert spec is not None
        values = evaluate(spec.expression, scope)
        if not isinstance(values, list):
            raise TypeError(f'The value of "{spec.expression}" is not type of list.')
        actions: list[str] = []
        inputs: list[dict[str, Any]] = []
        for value in values:
            item = value
            if spec.names and isinstance(value, (list, tuple)):
                item = dict(zip(spec.names, value, strict=False))
            elif spec.names and len(spec.names) == 1:
                item = {spec.names[0]: value}
            item_scope = Scope(
                ctx=scope.ctx,
                current=scope.current,
                item=item,
                task_status=scope.task_status,
                kv=scope.kv,
            )
            action = evaluate(task.action, item_scope)
            params = self._evaluate_input(task.input, item_scope, action)
            if not isinstance(action, str) or not action:
                raise TypeError(f'The action of task "{task_id}" is not a name: {action!r}')
            if not isinstance(params, Mapping):
                raise TypeError(f'The input of task "{task_id}" is not a mapping: {params!r}')
            actions.append(action)
            inputs.append(_copy(params))
        concurrency = None
        if spec.concurrency is not None:
            limit = evaluate(spec.concurrency, scope)
            if limit is not None:
                if not isinstance(limit, int) or isinstance(limit, bool):
                    raise TypeError(f'The concurrency of task "{task_id}" is not an integer.')
                concurrency = max(limit, 1)  # below 1 would never start an item
        return _Items(actions, inputs, concurrency, delay)

    def _issue(self) -> list[ActionRequest]:
        """Start every task that can start; complete those with nothing to run."""
        requests: list[ActionRequest] = []
        inline = 0
        while True:
            plans: list[_Plan] = []
            broken = False
            for key in self._next_ready():
                staged = self._staged[key]
                try:
                    plan = self._plan(key)
                except Exception as exc:
                    broken = True
                    self._log_error(exc, staged["id"], staged["route"])
                    continue
                if plan is not None:
                    plans.append(plan)
            if broken:
                self._workflow_event(m.FAILED)
                return requests
            if not plans:
                return requests
            done_at_once: list[tuple[int, Any]] = []
            for plan in plans:
                try:
                    seq, immediate = self._start_task(plan, requests)
                except _Abort:
                    return requests
                if immediate is not None:
                    done_at_once.append((seq, immediate[0]))
            for seq, result in done_at_once:
                rec = self._tasks[seq]
                self._update(
                    rec["id"], rec["route"], _Event("action_succeeded", m.SUCCEEDED, result)
                )
            inline += len(done_at_once)
            if not done_at_once:
                return requests
            if inline > _MAX_INLINE:
                self._log_error(
                    f"more than {_MAX_INLINE} tasks without an action completed in one step; "
                    "the workflow loops without running anything"
                )
                self._workflow_event(m.FAILED)
                return requests

    def _start_task(
        self, plan: _Plan, requests: list[ActionRequest]
    ) -> tuple[int, tuple[Any] | None]:
        """Create (or reuse) the task instance, mark it running, hand out its
        action or items. Returns its seq and, for a task that has nothing to
        run, ``(result,)``."""
        staged = self._staged[plan.key]
        seq = self._latest.get((plan.task_id, plan.route))
        if seq is None or self._tasks[seq]["status"] in m.COMPLETED:
            seq = self._add_task(plan.task_id, plan.route, staged["ctx"], staged["prev"])
        rec = self._tasks[seq]
        if plan.items is None:
            self._unstage(plan.task_id, plan.route)
            self._running(seq)
            if plan.action is None:
                return seq, (None,)
            requests.append(
                ActionRequest(
                    plan.task_id, plan.route, seq, plan.action, plan.input, None, plan.delay
                )
            )
            return seq, None
        items = plan.items
        count = len(items.actions)
        if rec.get("items") != count:
            rec["items"] = count
            self._mark("task", str(seq))
        state = staged.get("items")
        if state is None:
            state = {"seq": seq, "count": count, "next": 0, "busy": 0, "counts": {UNSET: count}}
            staged["items"] = state
            self._staged_changed(plan.key)
        self._running(seq)
        if count == 0:
            return seq, ([],)
        owner = state["seq"]
        limit = items.concurrency
        while state["next"] < count and (limit is None or state["busy"] < limit):
            index = state["next"]
            state["next"] = index + 1
            key = f"{owner}:{index}"
            if key in self._items:
                continue  # reported before it was handed out
            self._items[key] = {"status": UNSET}
            self._mark("item", key)
            state["busy"] += 1
            requests.append(
                ActionRequest(
                    plan.task_id,
                    plan.route,
                    owner,
                    items.actions[index],
                    _copy(items.inputs[index]),
                    index,
                    items.delay,
                )
            )
        self._staged_changed(plan.key)
        return seq, None

    def _running(self, seq: int) -> None:
        rec = self._tasks[seq]
        self._update(rec["id"], rec["route"], _Event("action_running", m.RUNNING_))

    # ------------------------------------------------------------------ events

    def _report(self, seq: int, item: int | None, status: str, result: Any) -> None:
        if status == "expired":
            status = m.EXPIRED
        if status not in _KNOWN_STATUSES:
            raise InvalidInput(f"'{status}' is not an execution status")
        rec = self._tasks.get(seq)
        if rec is None:
            raise InvalidInput(f"the workflow has no task instance {seq}")
        task_id, route = rec["id"], rec["route"]
        if item is None:
            if self._latest.get((task_id, route)) != seq or rec["status"] in m.COMPLETED:
                return  # about an earlier run, or a repeat: nothing left to decide
            self._update(task_id, route, _Event(f"action_{status}", status, result))
            return
        staged = self._staged.get(_staged_key(task_id, route))
        state = staged.get("items") if staged else None
        if state is None or state["seq"] != seq:
            return  # the task has moved on (completed, or re-staged)
        if not 0 <= item < state["count"]:
            raise InvalidInput(f"task {task_id} has no item {item}")
        latest = self._tasks[self._latest[(task_id, route)]]
        if latest["status"] in m.COMPLETED:
            self._set_item(state, seq, item, status, result)
            self._staged_changed(_staged_key(task_id, route))
            return
        self._update(task_id, route, _Event(f"action_{status}", status, result, item))

    def _set_item(
        self, state: dict[str, Any], owner: int, index: int, status: str, result: Any
    ) -> None:
        key = f"{owner}:{index}"
        rec = self._items.get(key)
        counts: dict[str, int] = state["counts"]
        if rec is None:  # reported before it was handed out
            old = UNSET
            rec = {"status": UNSET}
            self._items[key] = rec
            busy_before = False
        else:
            old = rec["status"]
            busy_before = old == UNSET or old in m.ACTIVE
        busy_after = status == UNSET or status in m.ACTIVE
        state["busy"] += int(busy_after) - int(busy_before)
        counts[old] = counts.get(old, 0) - 1
        if not counts[old]:
            del counts[old]
        counts[status] = counts.get(status, 0) + 1
        rec["status"] = status
        if self._env.item_results is None and status in m.COMPLETED:
            rec["result"] = _copy(result)
        self._mark("item", key)

    def _item_results(self, owner: int, count: int) -> list[Any]:
        if self._env.item_results is not None:
            return list(self._env.item_results(owner))
        return [self._items.get(f"{owner}:{i}", {}).get("result") for i in range(count)]

    def _update(self, task_id: str, route: int, event: _Event) -> None:
        """Orquesta's ``update_task_state``: apply an event to the latest run of
        a task, then decide its transitions and the workflow's status."""
        key = _staged_key(task_id, route)
        staged = self._staged.get(key)
        seq = self._latest.get((task_id, route))
        task = self._spec.task(task_id)
        if seq is None or task_id in ENGINE_COMMANDS:
            if staged is None:
                return  # a command two transitions queued on one route runs once
            seq = self._add_task(task_id, route, staged["ctx"], staged["prev"])
        rec = self._tasks[seq]
        if staged is not None and "items" not in staged:
            self._unstage(task_id, route)
        state = staged.get("items") if staged is not None else None
        if event.item is not None and state is not None:
            self._set_item(state, state["seq"], event.item, event.status, event.result)
            self._staged_changed(key)
        if event.status == m.FAILED:
            self._log_error(_FAILED_MESSAGE, task_id, result=event.result)

        name = event.name
        if event.item is not None and state is not None:
            others = dict(state["counts"])
            others[event.status] -= 1
            name = m.item_event(event.status, others)
        old = rec["status"]
        self._set_task_status(seq, m.next_status(m.TASK_MACHINE, old, name))
        new = rec["status"]

        if new == RETRYING:
            rec["retry"]["tally"] += 1
            self._mark("task", str(seq))
            previous = self._staged.get(key)
            if previous is not None:
                self._clear_items(previous)
                self._unstage(task_id, route)
            self._stage(
                task_id,
                route,
                ctx=rec["ctx"],
                prev=rec["prev"],
                ready=True,
                delay=rec["retry"].get("delay") or 0,
            )

        scope: Scope | None = None
        if new in m.COMPLETED:
            current_staged = self._staged.get(key)
            if task.items is not None and new in m.ABENDED and current_staged is not None:
                current_staged["completed"] = True  # kept for a re-run of its failed items
                self._staged_changed(key)
            else:
                self._unstage(task_id, route)
            if task.items is None:
                result = event.result
            elif event.item is not None and state is not None:
                result = self._item_results(state["seq"], state["count"])
            else:
                result = event.result or []
            current = {"id": task_id, "route": route, "result": result, "status": new}
            scope = self._scope(rec["ctx"], route, current)
            if self.status in m.ACTIVE and self._should_retry(rec, scope):
                self._update(task_id, route, _Event("task_retry_requested", RETRYING))
                return

        commands: list[tuple[str, int]] = []
        if scope is not None and new != old:
            commands = self._follow_transitions(rec, scope)

        self._task_event(task_id, route, rec["status"])
        for command, command_route in commands:
            event_name, status = _ENGINE_EVENTS[command]
            self._update(command, command_route, _Event(event_name, status))
        if self.status in m.COMPLETED:
            self._set_term(seq, True)

    def _should_retry(self, rec: dict[str, Any], scope: Scope) -> bool:
        retry = rec.get("retry")
        if not retry or retry["tally"] >= retry["count"]:
            return False
        if rec["status"] in m.ABENDED and retry.get("when") is None:
            return True
        if retry.get("when") is None:
            return False
        try:
            return bool(evaluate(retry["when"], scope))
        except Exception as exc:
            self._log_error(exc, rec["id"], rec["route"])
            self._workflow_event(m.FAILED)
            return False

    def _follow_transitions(self, rec: dict[str, Any], scope: Scope) -> list[tuple[str, int]]:
        """Decide each transition of a completed task and stage what it leads to.
        Returns the engine commands to run afterwards."""
        task_id, route, seq = rec["id"], rec["route"], rec["seq"]
        edges = self._graph.next_transitions(task_id)
        if not edges:
            self._set_term(seq, True)
        commands: list[tuple[str, int]] = []
        ready_next: list[str] = []
        manual_fail = False
        for edge in edges:
            try:
                taken = all([bool(evaluate(c, scope)) for c in edge.criteria])
            except Exception as exc:
                self._log_error(exc, task_id, route, edge.id)
                self._workflow_event(m.FAILED)
                continue
            rec["next"][edge.id] = taken
            self._mark("task", str(seq))
            if not taken:
                continue
            delta, problems = self._publish(edge, scope)
            if problems:
                for problem in problems:
                    self._log_error(problem, task_id, route, edge.id)
                self._workflow_event(m.FAILED)
                continue
            out_ctx = rec["ctx"]
            if delta:
                out_ctx = self._add_context([[rec["ctx"], True]], delta)
            target_route = self._route_for(edge, route)
            target_key = _staged_key(edge.target, target_route)
            staged = self._staged.get(target_key)
            if staged is not None:
                # Another branch arrived: merge it in, without the initial context.
                staged["ctx"] = self._add_context([[staged["ctx"], True], [out_ctx, False]], {})
                staged["prev"][edge.backref] = seq
                self._clear_items(staged)
                staged.pop("completed", None)
                self._item_plans.pop(target_key, None)
            else:
                staged = self._stage(
                    edge.target, target_route, ctx=out_ctx, prev={edge.backref: seq}, ready=False
                )
            # The inbound transitions are those of the route the source ran on.
            staged["ready"] = self._inbound(edge.target, route) == "satisfied"
            self._staged_changed(target_key)
            if edge.target in ENGINE_COMMANDS:
                commands.append((edge.target, target_route))
                manual_fail = manual_fail or edge.target == "fail"
            elif staged["ready"]:
                ready_next.append(target_key)
        if manual_fail:
            # Remediation next to a ``fail`` still runs once the workflow failed.
            for key in ready_next:
                self._staged[key]["run_on_fail"] = True
                self._staged_changed(key)
        return commands

    def _publish(self, edge: Edge, scope: Scope) -> tuple[dict[str, Any], list[BaseException]]:
        transition = self._spec.task(edge.source).next[edge.ref]
        rolling = dict(scope.ctx)
        delta: dict[str, Any] = {}
        problems: list[BaseException] = []
        for name, value in transition.publish:
            step = Scope(
                ctx=rolling, current=scope.current, task_status=scope.task_status, kv=scope.kv
            )
            try:
                rolling[name] = delta[name] = evaluate(value, step)
            except Exception as exc:
                problems.append(exc)
        return delta, problems

    def _route_for(self, edge: Edge, route: int) -> int:
        """A split task (reached by several transitions) gets a route per
        transition that led to it; anything else stays on its source's route."""
        target = edge.target
        if target not in self._graph.splits or self._graph.in_cycle(target):
            return route
        splits = self._routes[route]
        if edge.backref in splits:
            return route
        return self._add_route([*splits, edge.backref])

    def _inbound(self, task_id: str, route: int) -> str:
        """Whether a task's inbound transitions let it start: "satisfied",
        "waiting" (branches may still arrive) or "unsatisfied"."""
        verdicts: dict[str, bool | None] = {}
        for edge in self._graph.prev_transitions(task_id):
            verdicts.setdefault(edge.source, None)
        barrier = self._graph.barriers.get(task_id)
        needed = len(verdicts) if barrier == "*" else (barrier or 1)
        for edge in self._graph.prev_transitions(task_id):
            seq = self._latest.get((edge.source, route))
            if seq is None:
                continue
            taken = bool(self._tasks[seq]["next"].get(edge.id))
            if not verdicts[edge.source]:
                verdicts[edge.source] = taken
        if sum(1 for v in verdicts.values() if v is True) >= int(needed):
            return "satisfied"
        if None in verdicts.values() and (self._active or self._ready):
            return "waiting"
        return "unsatisfied"

    def _has_next(self, task_id: str, route: int, joins_must_be_ready: bool) -> bool:
        seq = self._latest.get((task_id, route))
        if seq is None or self._tasks[seq]["status"] not in m.COMPLETED:
            return False
        taken = self._tasks[seq]["next"]
        for edge in self._graph.next_transitions(task_id):
            if edge.target == "continue" or not taken.get(edge.id):
                continue
            if self._graph.has_barrier(edge.target):
                if not joins_must_be_ready:
                    return True
                if self._inbound(edge.target, route) == "unsatisfied":
                    continue
            return True
        return False

    # ------------------------------------------------------------------ workflow status

    def _set_workflow_status(self, status: str) -> None:
        if self._wf["status"] != status:
            self._wf["status"] = status
            self._dirty_wf()

    def _task_event(self, task_id: str, route: int, status: str) -> None:
        """Feed the workflow machine the news that a task reached ``status``."""
        barrier_next = self._has_next(task_id, route, joins_must_be_ready=False)
        has_next = self._has_next(task_id, route, joins_must_be_ready=True)
        count = self._by_status
        event = m.task_event(
            status,
            remediated=has_next or barrier_next,
            others_active=bool(self._active),
            canceling=bool(count[m.CANCELING] or count[m.CANCELED]),
            pausing=bool(count[m.PAUSING] or count[m.PAUSED] or count[m.PENDING]),
            more_to_do=bool(self._ready) or has_next,
        )
        row = m.WORKFLOW_MACHINE.get(self.status, {})
        if event not in row:
            return  # the news changes nothing (a failed workflow stays failed)
        self._set_workflow_status(row[event])
        if self.status in m.COMPLETED:
            self._fail_unreachable_joins()

    def _fail_unreachable_joins(self) -> None:
        stuck = [
            staged
            for staged in self._staged.values()
            if self._graph.barriers.get(staged["id"])
            and not staged.get("ready")
            and self._inbound(staged["id"], staged["route"]) == "unsatisfied"
        ]
        if not stuck:
            return
        self._set_workflow_status(m.FAILED)
        for staged in stuck:
            self._log_error(
                f"UnreachableJoinError: The join task|route "
                f'"{staged["id"]}|{staged["route"]}" is partially satisfied but unreachable.',
                staged["id"],
                staged["route"],
            )

    def _workflow_event(self, status: str) -> None:
        count = self._by_status
        done = (
            self.status == m.PAUSED
            and not self._active
            and not self._ready
            and not (count[m.PAUSED] or count[m.PENDING])
        )
        event = m.workflow_event(status, active=bool(self._active), resumable_done=done)
        self._set_workflow_status(m.next_status(m.WORKFLOW_MACHINE, self.status, event))

    def _workflow_event_possible(self, current: str, status: str) -> bool:
        if status == current:
            return True
        base = f"workflow_{status}"
        variants = [base]
        if status in m.PAUSED_STATUSES | m.CANCELED_STATUSES:
            variants = [f"{base}_workflow_active", f"{base}_workflow_dormant"]
        elif status in (m.RUNNING_, m.RESUMING):
            variants.append(f"{base}_workflow_completed")
        row = m.WORKFLOW_MACHINE.get(current, {})
        return any(v in row for v in variants)

    def _render_output(self) -> None:
        if self.status not in m.COMPLETED or self._wf.get("rendered"):
            return
        self._wf["rendered"] = True
        self._dirty_wf()
        context = self._terminal_context()
        rolling = dict(context)
        output: dict[str, Any] = {}
        problems: list[BaseException] = []
        for name, value in self._spec.output:
            try:
                rolling[name] = output[name] = evaluate(value, self._plain_scope(rolling))
            except Exception as exc:
                problems.append(exc)
        if output:
            self._wf["output"] = _copy(output)
        if problems:
            for problem in problems:
                self._log_error(problem)
            if self.status not in (m.EXPIRED, m.ABANDONED, m.CANCELED):
                self._workflow_event(m.FAILED)

    def _end_step(self, requests: list[ActionRequest]) -> list[ActionRequest]:
        self._render_output()
        self._forget_contexts()
        return requests

    # ------------------------------------------------------------------ re-run

    def _successors(self, task_id: str, route: int) -> list[int]:
        """The latest run of a task and every instance a run of it led to
        directly (Orquesta's ``get_task_sequence``)."""
        found = [self._latest[(task_id, route)]]
        for seq in sorted(self._tasks):
            rec = self._tasks[seq]
            for prev in rec["prev"].values():
                source = self._tasks.get(prev)
                if source is not None and (source["id"], source["route"]) == (task_id, route):
                    found.append(seq)
                    break
        return found

    def _collapse_reruns(self, wanted: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Drop requests whose follow-ups every other request covers already,
        so a branch is not re-run twice."""
        if len(wanted) <= 1:
            return wanted
        follow = {w: set(self._successors(*w)) for w in wanted}
        return [w for w in wanted if any(follow[w] - other for other in follow.values())]

    def _rerun_task(self, task_id: str, route: int, reset_items: bool) -> None:
        seq = self._latest[(task_id, route)]
        rec = self._tasks[seq]
        self._set_term(seq, False)
        key = _staged_key(task_id, route)
        staged = self._staged.get(key)
        if staged is not None and staged.pop("completed", None) is not None:
            self._staged_changed(key)
        kept = [e for e in self._wf["errors"] if e.get("task_id") != task_id]
        if len(kept) != len(self._wf["errors"]):
            self._wf["errors"] = kept
            self._dirty_wf()
        task = self._spec.task(task_id)
        if task.items is not None and staged is not None and "items" in staged:
            state = staged["items"]
            owner = state["seq"]
            for index in range(state["count"]):
                item_key = f"{owner}:{index}"
                item = self._items.get(item_key)
                # Items handed out but never reported did not run: they go again too.
                again = reset_items or (item is not None and item["status"] in m.ABENDED | {UNSET})
                if item is None or not again:
                    continue
                self._set_item(state, owner, index, UNSET, None)
                del self._items[item_key]
                state["busy"] -= 1  # it was counted busy as unset; it is not handed out
                state["next"] = min(state["next"], index)
            self._staged_changed(key)
        else:
            self._add_task(task_id, route, rec["ctx"], rec["prev"])
            self._stage(task_id, route, ctx=rec["ctx"], prev=rec["prev"], ready=True)
        for follower in self._successors(task_id, route):
            self._set_term(follower, False)


class _Abort(Exception):
    """Stops handing out tasks after the workflow failed on the way."""
