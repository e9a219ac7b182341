"""Orquesta workflow definitions: the typed model, its checks, and its task graph.

:func:`load` turns YAML text (or an already parsed mapping) into a
:class:`WorkflowSpec`. It is lenient on purpose: a definition with mistakes
still loads, and :func:`inspect` then lists every problem with the path of
the offending field (``tasks.deploy.next[0].when``), so an author sees them
all at once instead of one per attempt. Only text that is not YAML, or not a
mapping, makes :func:`load` raise.

The checks are Orquesta's: the shape of every field, expression syntax,
semantics (undefined tasks in ``next.do``, reserved task names, a workflow
without a first task, joins that cannot tell which split they close,
with-items tasks without an action) and context inspection (a ``ctx``
variable read before any input, var or publish on the way there assigns it).
One more is Squall's: a join that waits on a task which can only run after
the join itself (a cycle into the join) could never start.

:class:`Graph` is the task graph Orquesta's composer builds: the tasks
reachable from the first ones, each transition keyed by its source, target
and the number of earlier transitions between the same two tasks (the
``task2__t0`` names that routes and join bookkeeping use), join barriers,
retry settings, split tasks and tasks in cycles.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from squall.core.orquesta.expressions import check, referenced_vars
from squall.core.workflow import DefinitionInvalid, Problem

__all__ = [
    "ENGINE_COMMANDS",
    "Edge",
    "Graph",
    "ItemsSpec",
    "Problem",
    "RetrySpec",
    "TaskSpec",
    "TransitionSpec",
    "WorkflowInvalid",
    "WorkflowSpec",
    "inspect",
    "load",
    "parse_inline_params",
]

# Names in ``do`` that are commands to the engine rather than tasks.
ENGINE_COMMANDS: tuple[str, ...] = ("continue", "fail", "noop", "retry")

# Variables the engine puts in every workflow's context (st2's ``ctx().st2``
# and, for a subworkflow, ``ctx().parent``).
APP_CONTEXT: tuple[str, ...] = ("st2", "parent")

_NAME_RE = re.compile(r"^\w+$")
_EXPR = r"<%.*?%>|{{.*?}}"
# "x in <% ... %>", "x, y in <% ... %>" or just "<% ... %>".
_ITEMS_RE = re.compile(rf"^\s*(?:(?P<names>(?:\w+\s*,\s*)*\w+)\s+in\s+)?(?P<expr>{_EXPR})\s*$")
# Orquesta's inline parameters: name=value where value is a quoted string,
# a bracketed list, a number, a boolean, null or an expression.
_INLINE_VALUE = "|".join(
    [
        r"\[.*\]\s*",
        r"\"[^\"]*\"\s*",
        r"'[^']*'\s*",
        r"[-]?\d*\.\d+",
        r"[-]?\d+",
        r"(?i:true)",
        r"(?i:false)",
        r"null",
        r"<%.*?%>",
        r"{{.*?}}",
    ]
)
_INLINE_RE = re.compile(rf"(\w+)=({_INLINE_VALUE})")
_QUOTED_RE = re.compile(r"\"[^\"]*\"\s*|'[^']*'\s*")


# --------------------------------------------------------------------------- problems


class WorkflowInvalid(DefinitionInvalid):
    """An Orquesta workflow that cannot run; the message lists every problem."""


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class TransitionSpec:
    """One entry of a task's ``next``."""

    index: int
    when: str | None
    publish: tuple[tuple[str, Any], ...]  # in order; later ones may read earlier ones
    do: tuple[str, ...]  # never empty: no ``do`` means ``continue``


@dataclass(frozen=True)
class ItemsSpec:
    """A task's ``with``: the list(s) to iterate and how many items run at once."""

    expression: str  # the <% %> or {{ }} expression giving the list
    names: tuple[str, ...] | None  # "x, y in ..." binds each item to these names
    concurrency: int | str | None


@dataclass(frozen=True)
class RetrySpec:
    when: str | None
    count: int | str | None
    delay: int | str | None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    action: str | None = None
    input: Any = None  # a mapping of parameters, or an expression giving one
    next: tuple[TransitionSpec, ...] = ()
    join: int | str | None = None  # "all" or how many inbound branches
    items: ItemsSpec | None = None
    retry: RetrySpec | None = None
    delay: int | str | None = None

    @property
    def is_join(self) -> bool:
        return self.join is not None


@dataclass
class WorkflowSpec:
    """A loaded definition. ``problems`` holds what :func:`load` found malformed."""

    source: str
    raw: dict[str, Any]
    version: Any = None
    description: str | None = None
    input: tuple[tuple[str, Any], ...] = ()  # (name, default); a bare name defaults to None
    vars: tuple[tuple[str, Any], ...] = ()
    output: tuple[tuple[str, Any], ...] = ()
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def task(self, name: str) -> TaskSpec:
        """The task ``name``; an engine command is a task without action."""
        found = self.tasks.get(name)
        return found if found is not None else TaskSpec(name)

    def has_task(self, name: str) -> bool:
        return name in self.tasks or name in ENGINE_COMMANDS

    @functools.cached_property
    def graph(self) -> Graph:
        return Graph.of(self)

    # -- the relations Orquesta's checks and composer work on

    @functools.cached_property
    def _next(self) -> dict[str, list[tuple[str, str | None, int]]]:
        found: dict[str, list[tuple[str, str | None, int]]] = {}
        for name, task in self.tasks.items():
            pairs = [(target, t.when, t.index) for t in task.next for target in t.do]
            found[name] = sorted(pairs, key=lambda p: p[0])
        return found

    @functools.cached_property
    def _prev_count(self) -> dict[str, int]:
        # How many transitions lead to each task (two from the same task count twice).
        counts: dict[str, int] = {}
        for pairs in self._next.values():
            for target, _, _ in pairs:
                counts[target] = counts.get(target, 0) + 1
        return counts

    def next_tasks(self, name: str) -> list[tuple[str, str | None, int]]:
        """``(target, when, next index)`` of every transition of ``name``, by target."""
        return self._next.get(name, [])

    @functools.cached_property
    def start_tasks(self) -> list[str]:
        return sorted(name for name in self.tasks if not self._prev_count.get(name))

    def is_split(self, name: str) -> bool:
        """A task that more than one transition leads to, and not a join: each
        inbound branch runs its own copy of it (a new route)."""
        return not self.task(name).is_join and self._prev_count.get(name, 0) > 1

    @functools.cached_property
    def _cyclic(self) -> frozenset[str]:
        edges = {name: [t for t, _, _ in pairs] for name, pairs in self._next.items()}
        return frozenset(_cyclic_nodes(edges))

    def in_cycle(self, name: str) -> bool:
        return name in self._cyclic


def _cyclic_nodes(edges: Mapping[str, list[str]]) -> set[str]:
    """Nodes on a cycle: members of a strongly connected component with more
    than one node, or with an edge to themselves (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: set[str] = set()
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.update(component)
    return found


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    """A transition of the graph."""

    source: str
    target: str
    key: int  # how many transitions from source to target came before this one
    ref: int  # the index in the source's ``next``
    criteria: tuple[str, ...]  # the ``when``, if any

    @property
    def id(self) -> str:
        """How the source's task record names the transition (``target__tN``)."""
        return f"{self.target}__t{self.key}"

    @property
    def backref(self) -> str:
        """How the target's records name the transition (``source__tN``): also
        the split marker a route records."""
        return f"{self.source}__t{self.key}"


@dataclass
class Graph:
    """The tasks reachable from the first ones and the transitions between them."""

    roots: list[str]
    nodes: set[str]
    outbound: dict[str, list[Edge]]  # by target name, then key
    inbound: dict[str, list[Edge]]
    barriers: dict[str, str | int]  # join tasks: "*" (all) or a count
    retries: dict[str, dict[str, Any]]  # tasks that retry: when, count, delay
    cyclic: frozenset[str]
    splits: frozenset[str]

    @classmethod
    def of(cls, spec: WorkflowSpec) -> Graph:
        roots = list(spec.start_tasks)
        nodes: set[str] = set()
        outbound: dict[str, list[Edge]] = {}
        inbound: dict[str, list[Edge]] = {}
        barriers: dict[str, str | int] = {}
        retries: dict[str, dict[str, Any]] = {}
        queue = deque(roots)
        nodes.update(roots)
        while queue:
            name = queue.popleft()
            task = spec.task(name)
            if task.join is not None:
                barriers[name] = "*" if task.join == "all" else task.join
            if task.retry is not None:
                retries[name] = {
                    "when": task.retry.when,
                    "count": task.retry.count,
                    "delay": task.retry.delay,
                }
            edges: list[Edge] = []
            seen: set[tuple[str, int]] = set()
            per_target: dict[str, int] = {}
            for target, when, ref in spec.next_tasks(name):
                if target == "retry":
                    # ``do: retry`` is shorthand for a retry of up to 3 attempts.
                    retries[name] = {"when": when or "<% completed() %>", "count": 3, "delay": None}
                    continue
                if (target, ref) in seen:
                    continue  # the same name twice in one ``do``
                seen.add((target, ref))
                key = per_target.get(target, 0)
                per_target[target] = key + 1
                edges.append(Edge(name, target, key, ref, (when,) if when else ()))
                if target not in nodes:
                    nodes.add(target)
                    queue.append(target)
            edges.sort(key=lambda e: (e.target, e.key))
            outbound[name] = edges
            for edge in edges:
                inbound.setdefault(edge.target, []).append(edge)
        edge_map = {n: [e.target for e in es] for n, es in outbound.items()}
        cyclic = frozenset(_cyclic_nodes(edge_map))
        splits = frozenset(n for n in nodes if spec.is_split(n))
        return cls(roots, nodes, outbound, inbound, barriers, retries, cyclic, splits)

    def next_transitions(self, name: str) -> list[Edge]:
        return self.outbound.get(name, [])

    def prev_transitions(self, name: str) -> list[Edge]:
        return self.inbound.get(name, [])

    def in_cycle(self, name: str) -> bool:
        return name in self.cyclic

    def has_barrier(self, name: str) -> bool:
        return name in self.barriers


# --------------------------------------------------------------------------- loading


def load(definition: str | bytes | Mapping[str, Any], source: str = "<workflow>") -> WorkflowSpec:
    """Read a definition. Raises :class:`WorkflowInvalid` only when it is not
    YAML or not a mapping; every other mistake is left for :func:`inspect`."""
    if isinstance(definition, (str, bytes)):
        try:
            data = yaml.safe_load(definition)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise WorkflowInvalid(
                [Problem("", f"not valid YAML{where}: {problem}")], source
            ) from exc
    else:
        data = definition
    if not isinstance(data, Mapping):
        found = "empty" if data is None else f"a {type(data).__name__}"
        raise WorkflowInvalid(
            [Problem("", f"the definition must be a mapping, not {found}")], source
        )
    return _Reader(source).workflow(_plain(data))


def _plain(value: Any) -> Any:
    """A private copy, so the caller's data is never changed."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_inline_params(text: Any) -> list[tuple[str, Any]]:
    """``name=value`` pairs in ``text`` as Orquesta reads them (``action: x a=1``,
    ``publish: b=<% result() %>``): quoted values stay text, other values are
    read as JSON when they can be, expressions are kept as they are."""
    if not isinstance(text, str) or not text:
        return []
    pairs: list[tuple[str, Any]] = []
    for name, raw in _INLINE_RE.findall(text):
        value: Any = raw.strip()
        quoted = bool(_QUOTED_RE.search(value))
        value = re.sub('^"', "", value)
        value = re.sub('"$', "", value)
        value = re.sub("^'", "", value)
        value = re.sub("'$", "", value)
        keep_text = False
        if value:
            braces = value[0] == "{" and value[-1] == "}"
            keep_text = quoted and not braces
        if not keep_text:
            if value.lower() in ("true", "false"):
                value = value.lower()
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        pairs.append((name, value))
    return pairs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


class _Reader:
    """Builds the model, noting each malformed field as a problem."""

    _TOP = ("version", "description", "name", "tags", "input", "vars", "output", "tasks")
    _TASK = ("delay", "join", "with", "action", "input", "retry", "next")

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def workflow(self, data: dict[str, Any]) -> WorkflowSpec:
        for key in data:
            if key not in self._TOP:
                self.bad(str(key), "unknown field")
        version = data.get("version")
        if "version" in data and version not in ("1.0", 1.0):
            self.bad("version", f"must be 1.0, not {version!r}")
        description = data.get("description")
        if "description" in data and not _nonempty_str(description):
            self.bad("description", f"must be a non-empty string, not {_describe(description)}")
            description = None
        if "name" in data and not _nonempty_str(data["name"]):
            self.bad("name", "must be a non-empty string")
        if "tags" in data:
            self.string_list("tags", data["tags"])
        spec = WorkflowSpec(
            source=self.source,
            raw=data,
            version=version,
            description=description,
            input=self.variables("input", data.get("input"), names_allowed=True),
            vars=self.variables("vars", data.get("vars"), names_allowed=False),
            output=self.variables("output", data.get("output"), names_allowed=False),
            tasks=self.tasks(data.get("tasks"), "tasks" in data),
        )
        spec.problems = self.problems
        return spec

    def string_list(self, path: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.bad(path, f"must be a non-empty list of names, not {_describe(value)}")
            return ()
        good: list[str] = []
        for i, item in enumerate(value):
            if not _nonempty_str(item):
                self.bad(f"{path}[{i}]", f"must be a non-empty string, not {_describe(item)}")
            elif item in good:
                self.bad(f"{path}[{i}]", f"'{item}' is listed twice")
            else:
                good.append(item)
        return tuple(good)

    def variables(self, path: str, value: Any, names_allowed: bool) -> tuple[tuple[str, Any], ...]:
        if value is None:
            return ()
        shape = "names or one-key mappings" if names_allowed else "one-key mappings (name: value)"
        if not isinstance(value, list) or not value:
            self.bad(path, f"must be a non-empty list of {shape}, not {_describe(value)}")
            return ()
        found: list[tuple[str, Any]] = []
        names: set[str] = set()
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if isinstance(item, str) and names_allowed:
                name, default = item, None
                if not item:
                    self.bad(where, "must not be empty")
                    continue
            elif isinstance(item, Mapping) and len(item) == 1:
                name, default = next(iter(item.items()))
                if not isinstance(name, str) or not _NAME_RE.match(name):
                    self.bad(where, f"{name!r} is not a valid name (letters, digits, _)")
                    continue
            else:
                self.bad(where, f"must be one of {shape}, not {_describe(item)}")
                continue
            if name in names:
                self.bad(where, f"'{name}' is defined twice")
                continue
            names.add(name)
            found.append((name, default))
        return tuple(found)

    def tasks(self, value: Any, present: bool) -> dict[str, TaskSpec]:
        if not present:
            self.bad("tasks", "is required")
            return {}
        if not isinstance(value, Mapping) or not value:
            self.bad("tasks", f"must be a mapping of task names to tasks, not {_describe(value)}")
            return {}
        tasks: dict[str, TaskSpec] = {}
        for name, body in value.items():
            path = f"tasks.{name}"
            if not isinstance(name, str) or not _NAME_RE.match(name):
                self.bad(path, "is not a valid task name (letters, digits and _ only)")
                continue
            if not isinstance(body, Mapping):
                self.bad(path, f"must be a mapping, not {_describe(body)}")
                tasks[name] = TaskSpec(name)
                continue
            tasks[name] = self.task(name, body, path)
        return tasks

    def task(self, name: str, body: Mapping[str, Any], path: str) -> TaskSpec:
        for key in body:
            if key not in self._TASK:
                self.bad(f"{path}.{key}", "unknown field")
        action = body.get("action")
        params: Any = body.get("input")
        if "action" in body and not _nonempty_str(action):
            self.bad(f"{path}.action", f"must be a non-empty string, not {_describe(action)}")
            action = None
        if isinstance(action, str):
            inline = parse_inline_params(action)
            if inline:
                # ``action: core.echo message=hi`` replaces any ``input``.
                action = action[: action.index(" ")] if " " in action else action
                params = dict(inline)
        if "input" in body:
            raw_input = body.get("input")
            if not (_nonempty_str(raw_input) or (isinstance(raw_input, Mapping) and raw_input)):
                self.bad(
                    f"{path}.input",
                    f"must be a non-empty mapping or an expression, not {_describe(raw_input)}",
                )
            elif isinstance(raw_input, Mapping):
                for key in raw_input:
                    if not isinstance(key, str) or not _NAME_RE.match(key):
                        self.bad(f"{path}.input", f"{key!r} is not a valid parameter name")
        return TaskSpec(
            name=name,
            action=action if isinstance(action, str) else None,
            input=params,
            next=self.transitions(f"{path}.next", body.get("next"), "next" in body),
            join=self.join(f"{path}.join", body.get("join"), "join" in body),
            items=self.items(f"{path}.with", body.get("with"), "with" in body),
            retry=self.retry(f"{path}.retry", body.get("retry"), "retry" in body),
            delay=self.int_or_expr(f"{path}.delay", body.get("delay"), "delay" in body),
        )

    def int_or_expr(self, path: str, value: Any, present: bool) -> int | str | None:
        if not present:
            return None
        if _nonempty_str(value) or (_is_int(value) and value >= 0):
            return value  # type: ignore[no-any-return]
        self.bad(path, f"must be a whole number (0 or more) or an expression, not {value!r}")
        return None

    def join(self, path: str, value: Any, present: bool) -> int | str | None:
        if not present:
            return None
        if value == "all" or (_is_int(value) and value >= 0):
            return value  # type: ignore[no-any-return]
        self.bad(path, f"must be 'all' or how many branches to wait for, not {value!r}")
        return None

    def items(self, path: str, value: Any, present: bool) -> ItemsSpec | None:
        if not present:
            return None
        if isinstance(value, str):
            value = {"items": value}  # ``with: x in <% ... %>`` shorthand
        if not isinstance(value, Mapping):
            self.bad(path, f"must be 'x in <% expression %>' or a mapping, not {_describe(value)}")
            return None
        for key in value:
            if key not in ("items", "concurrency"):
                self.bad(f"{path}.{key}", "unknown field")
        concurrency = self.int_or_expr(
            f"{path}.concurrency", value.get("concurrency"), "concurrency" in value
        )
        text = value.get("items")
        if "items" not in value:
            self.bad(f"{path}.items", "is required")
            return None
        match = _ITEMS_RE.match(text) if isinstance(text, str) else None
        if match is None:
            self.bad(
                f"{path}.items",
                "must be an expression giving a list, optionally after 'x in' or 'x, y in'"
                f", not {text!r}",
            )
            return None
        names = match.group("names")
        bound = tuple(n.strip() for n in names.split(",")) if names else None
        return ItemsSpec(match.group("expr"), bound, concurrency)

    def retry(self, path: str, value: Any, present: bool) -> RetrySpec | None:
        if not present:
            return None
        if not isinstance(value, Mapping):
            self.bad(path, f"must be a mapping with count, when and delay, not {_describe(value)}")
            return None
        for key in value:
            if key not in ("when", "count", "delay"):
                self.bad(f"{path}.{key}", "unknown field")
        when = value.get("when")
        if "when" in value and not _nonempty_str(when):
            self.bad(f"{path}.when", f"must be an expression, not {_describe(when)}")
            when = None
        if "count" not in value:
            self.bad(f"{path}.count", "is required")
        count = self.int_or_expr(f"{path}.count", value.get("count"), "count" in value)
        delay = self.int_or_expr(f"{path}.delay", value.get("delay"), "delay" in value)
        return RetrySpec(when, count, delay)

    def transitions(self, path: str, value: Any, present: bool) -> tuple[TransitionSpec, ...]:
        if not present or value is None:
            return ()
        if not isinstance(value, list):
            self.bad(path, f"must be a list of transitions, not {_describe(value)}")
            return ()
        found: list[TransitionSpec] = []
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                self.bad(where, f"must be a mapping (when, publish, do), not {_describe(item)}")
                continue
            for key in item:
                if key not in ("when", "publish", "do"):
                    self.bad(f"{where}.{key}", "unknown field")
            when = item.get("when")
            if "when" in item and not _nonempty_str(when):
                self.bad(f"{where}.when", f"must be an expression, not {_describe(when)}")
                when = None
            publish = self.publish(f"{where}.publish", item.get("publish"), "publish" in item)
            do = self.do(f"{where}.do", item.get("do"), "do" in item)
            found.append(TransitionSpec(i, when, publish, do))
        return tuple(found)

    def publish(self, path: str, value: Any, present: bool) -> tuple[tuple[str, Any], ...]:
        if not present:
            return ()
        if _nonempty_str(value):
            pairs = parse_inline_params(value)
            if not pairs:
                self.bad(path, "must be name=value pairs or a list of one-key mappings")
            return tuple(pairs)
        return self.variables(path, value, names_allowed=False)

    def do(self, path: str, value: Any, present: bool) -> tuple[str, ...]:
        if not present or value is None:
            return ("continue",)
        if _nonempty_str(value):
            return tuple(part.strip() for part in value.split(","))
        if isinstance(value, list) and value:
            return self.string_list(path, value)
        self.bad(
            path,
            "must be a task name, names separated by commas, or a list of names, "
            f"not {_describe(value)}",
        )
        return ()


# --------------------------------------------------------------------------- checks


def inspect(spec: WorkflowSpec, known: Iterable[str] = APP_CONTEXT) -> list[Problem]:
    """Every problem of ``spec``, sorted by path; empty when it can run.

    ``known`` names the variables the engine provides before the inputs.
    """
    problems = list(spec.problems)
    problems += _semantics(spec)
    problems += _expressions(spec)
    problems += _context(spec, set(known))
    return sorted(set(problems), key=lambda p: (p.path, p.message))


def _semantics(spec: WorkflowSpec) -> list[Problem]:
    problems: list[Problem] = []
    for name, task in spec.tasks.items():
        if name in ENGINE_COMMANDS:
            problems.append(
                Problem(
                    f"tasks.{name}", f'the task name "{name}" is reserved for an engine command'
                )
            )
        if task.items is not None and not task.action:
            problems.append(Problem(f"tasks.{name}", "a task with items needs an action"))
    if spec.tasks and not spec.start_tasks:
        problems.append(
            Problem(
                "tasks",
                "no task to start with: every task is the target of a transition. If the "
                "workflow loops, add a task that leads into the loop.",
            )
        )
    problems += _undefined_tasks(spec)
    problems += _ambiguous_joins(spec)
    problems += _joins_behind_cycles(spec)
    return problems


def _reachable(spec: WorkflowSpec) -> list[str]:
    """Defined tasks reachable from the first ones, in breadth-first order."""
    order: list[str] = []
    seen = set(spec.start_tasks)
    queue = deque(spec.start_tasks)
    while queue:
        name = queue.popleft()
        order.append(name)
        for target, _, _ in spec.next_tasks(name):
            if target in spec.tasks and target not in seen:
                seen.add(target)
                queue.append(target)
    return order


def _undefined_tasks(spec: WorkflowSpec) -> list[Problem]:
    problems = []
    for name in _reachable(spec):
        for transition in spec.tasks[name].next:
            for target in transition.do:
                if not spec.has_task(target):
                    problems.append(
                        Problem(
                            f"tasks.{name}.next[{transition.index}].do",
                            f'the task "{target}" is not defined',
                        )
                    )
    return problems


def _ambiguous_joins(spec: WorkflowSpec) -> list[Problem]:
    """Joins reached through different sets of splits (Orquesta's "unreachable
    join"): the engine cannot tell which level of the nested forks they close."""
    splits: dict[str, set[str]] = {}
    prev: dict[str, set[str]] = {}
    tracked: dict[tuple[str, str], set[str]] = {}
    queue: deque[tuple[str | None, str, tuple[str, ...]]] = deque(
        (None, name, ()) for name in spec.start_tasks
    )
    while queue:
        source, name, path_splits = queue.popleft()
        if name not in spec.tasks:
            continue
        if spec.is_split(name) and not spec.in_cycle(name):
            path_splits = (*path_splits, name)
        splits.setdefault(name, set()).update(path_splits)
        prev.setdefault(name, set())
        if source is not None:
            prev[name].add(source)
        for target, _, _ in spec.next_tasks(name):
            if target in splits and spec.in_cycle(target):
                continue  # a loop back into tasks already seen adds no new path
            key = (name, target)
            new = set(path_splits)
            if key in tracked and new <= tracked[key]:
                continue  # nothing this path adds
            tracked.setdefault(key, set()).update(new)
            queue.append((name, target, path_splits))
    problems = []
    for name, sources in prev.items():
        if not spec.tasks[name].is_join:
            continue
        if any(splits[name] != splits.get(source, set()) for source in sources):
            problems.append(
                Problem(
                    f"tasks.{name}",
                    f'the join task "{name}" is unreachable: it closes nested forks of tasks '
                    "that more than one transition leads to, and the engine cannot tell at "
                    "which level the join happens",
                )
            )
    return problems


def _joins_behind_cycles(spec: WorkflowSpec) -> list[Problem]:
    """Joins that wait on more branches than can arrive before they first run:
    an inbound task that only runs after the join (a cycle into the join), or
    a count larger than the transitions that lead to the join."""
    problems = []
    reachable = set(_reachable(spec))
    for name, task in spec.tasks.items():
        if task.join is None or name not in reachable:
            continue
        sources = sorted({s for s, pairs in spec._next.items() for t, _, _ in pairs if t == name})
        needed = len(sources) if task.join == "all" else int(task.join)
        # Tasks reachable from the start without passing through the join.
        seen = {s for s in spec.start_tasks if s != name}
        queue = deque(seen)
        while queue:
            current = queue.popleft()
            for target, _, _ in spec.next_tasks(current):
                if target != name and target in spec.tasks and target not in seen:
                    seen.add(target)
                    queue.append(target)
        before = [s for s in sources if s in seen]
        if len(before) >= needed:
            continue
        late = [s for s in sources if s not in seen]
        if late:
            why = f"{', '.join(late)} only run after it (a cycle into the join)"
        else:
            why = f"only {len(sources)} transitions lead to it"
        problems.append(
            Problem(
                f"tasks.{name}.join",
                f"the join waits for {needed} branches but only {len(before)} can arrive "
                f"before it first runs: {why}",
            )
        )
    return problems


def _expressions(spec: WorkflowSpec) -> list[Problem]:
    problems: list[Problem] = []

    def look(path: str, value: Any) -> None:
        for message in check(value):
            problems.append(Problem(path, message))

    for section in ("input", "vars", "output"):
        for i, (_, value) in enumerate(getattr(spec, section)):
            look(f"{section}[{i}]", value)
    for name, task in spec.tasks.items():
        path = f"tasks.{name}"
        look(f"{path}.action", task.action)
        look(f"{path}.input", task.input)
        look(f"{path}.delay", task.delay)
        if task.items is not None:
            look(f"{path}.with.items", task.items.expression)
            look(f"{path}.with.concurrency", task.items.concurrency)
        if task.retry is not None:
            look(f"{path}.retry.when", task.retry.when)
            look(f"{path}.retry.count", task.retry.count)
            look(f"{path}.retry.delay", task.retry.delay)
        for t in task.next:
            look(f"{path}.next[{t.index}].when", t.when)
            for j, (_, value) in enumerate(t.publish):
                look(f"{path}.next[{t.index}].publish[{j}]", value)
    return problems


def _context(spec: WorkflowSpec, known: set[str]) -> list[Problem]:
    """Orquesta's context inspection: walk the tasks from the first ones,
    carrying the names assigned on the way, and flag ``ctx`` reads of names
    not assigned yet."""
    problems: list[Problem] = []

    def reads(path: str, value: Any, assigned: set[str]) -> None:
        for name in sorted(referenced_vars(value)):
            if name.startswith("__"):
                problems.append(
                    Problem(path, f'the variable "{name}" is private (it starts with "__")')
                )
            elif name not in assigned:
                problems.append(
                    Problem(path, f'the variable "{name}" is referenced before assignment')
                )

    rolling = set(known)
    for section in ("input", "vars"):
        for i, (name, value) in enumerate(getattr(spec, section)):
            reads(f"{section}[{i}]", value, rolling)
            rolling.add(name)

    join_ctx: dict[str, set[str]] = {}
    queued_with: dict[str, frozenset[str]] = {}
    traversed: set[str] = set()
    queue: deque[tuple[str, set[str] | None]] = deque(
        (name, set(rolling)) for name in spec.start_tasks
    )
    everything = set(rolling)
    while queue:
        name, carried = queue.popleft()
        traversed.add(name)
        assigned = carried if carried else set(join_ctx.get(name, set()))
        task = spec.task(name)
        path = f"tasks.{name}"
        reads(f"{path}.delay", task.delay, assigned)
        if task.items is not None:
            reads(f"{path}.with.items", task.items.expression, assigned)
            reads(f"{path}.with.concurrency", task.items.concurrency, assigned)
        reads(f"{path}.action", task.action, assigned)
        reads(f"{path}.input", task.input, assigned)
        everything |= assigned
        for t in task.next:
            where = f"{path}.next[{t.index}]"
            branch = set(assigned)
            reads(f"{where}.when", t.when, branch)
            for j, (var, value) in enumerate(t.publish):
                reads(f"{where}.publish[{j}]", value, branch)
                branch.add(var)
            everything |= branch
            for target in t.do:
                if target in traversed or not spec.has_task(target):
                    continue
                if not spec.task(target).is_join:
                    if queued_with.get(target) != frozenset(branch):
                        queue.append((target, branch))
                        queued_with[target] = frozenset(branch)
                else:
                    join_ctx.setdefault(target, set()).update(branch)
                    queue.append((target, None))

    for i, (name, value) in enumerate(spec.output):
        reads(f"output[{i}]", value, everything)
        everything.add(name)
    return problems
