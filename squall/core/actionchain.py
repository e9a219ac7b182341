"""StackStorm's ActionChain workflows (runner type ``action-chain``) as a conductor.

An action chain is a list of nodes run one at a time::

    chain:
      - name: get_host
        ref: core.local
        params: {cmd: "hostname"}
        publish: {host: "{{ get_host.stdout }}"}
        on-success: greet
        on-failure: report
      - name: greet
        ref: core.echo
        params: {message: "hello from {{ host }} to {{ who }}"}
      - name: report
        ref: core.echo
        params: {message: "{{ get_host.stderr }}"}
    default: get_host          # optional: the node to start with
    vars: {who: "{{ user }}"}  # rendered once, before the first node

The chain's action parameters are its context: templates in ``vars``,
``params`` and ``publish`` read the parameters, the vars and every value
published so far, each completed node's result under the node's name,
``__results`` (all node results by name), ``__context`` (the whole context),
``st2kv.system.KEY`` (and the older ``system.KEY``), ``action_context``
(``{"parent": <the chain execution's context>}``, so
``{{ action_context.parent.execution_id }}`` and ``...parent.user`` work; see
:func:`_parent_context`) and ``config_context`` (the pack's config).
Later names win: vars and published values hide node results, which hide
parameters, as in StackStorm.

Behaviour follows StackStorm's runner:

* Templates render to text (``"{{ n }}"`` with ``n = 1`` gives ``"1"``), and
  the engine then casts each parameter to the type its action declares, the
  way st2 renders a chain's parameters and then casts them. Values without a
  template keep their type. Published values are text too.
* After a node, the chain follows ``on-success`` when it succeeded and
  ``on-failure`` when it failed, timed out or was abandoned; a node that was
  canceled cancels the chain. The chain ends when there is no next node, and
  its status is then the last node's: ``succeeded``, ``failed`` or
  ``timeout``. So a failure handled by an ``on-failure`` node that succeeds
  leaves the chain succeeded.
* ``publish`` is rendered after every node that finished, failed ones too.
* A template that cannot be rendered (vars, a node's params, a publish
  value) fails the chain at once, ``on-failure`` or not, with the reason in
  the result's ``error``; so does an ``on-success``/``on-failure`` that names
  no node (possible only for names that are templates, which st2 accepts at
  load time and never renders).
* A node whose execution pauses or waits for an inquiry (``pending``) pauses
  the chain. A user's pause waits for the running node, then pauses;
  resuming runs the next node. A chain paused by its node stays paused when
  that node is resumed on its own, until the chain itself is resumed; an
  answered inquiry (``pending`` to ``running``) resumes it, as st2 does when
  it resumes the parent of an answered inquiry. Canceling waits for the
  running node (the driver cancels it), then the chain is ``canceled``.
* The result is ``{"tasks": [...], "published": {...}}`` plus ``error`` when
  something failed the chain; ``published`` is left out when the runner
  parameter ``display_published`` is false. Each task entry has st2's keys
  ``id``, ``name``, ``execution_id``, ``liveaction_id``, ``workflow``,
  ``created_at``, ``updated_at``, ``state`` and ``result``.

Records (all JSON, each of bounded size):

* ``workflow`` / ``"wf"``: ``status``, ``current`` (seq of the latest node
  run), ``processed`` (its completion was acted on), ``next`` (the node to
  run on resume), ``outcome`` (the chain's status if it ends there),
  ``pause``/``cancel`` (user requests not yet honoured), ``error``
  (``{"type", "message", "task_id"}`` or None, message capped),
  ``display_published`` and ``skip_notify`` (runner parameters).
* ``task`` / ``str(seq)``: one per node run: ``seq``, ``name``, ``action``,
  ``status``, ``result``.
* ``context`` / ``"input"``: ``parameters`` and the rendered ``vars`` (None
  when they could not be rendered); ``context`` / ``str(seq)``:
  ``{"published": {...}}``, what node run ``seq`` published.

The conductor is pure: no I/O, no clock. Datastore values come through
``Environment.kv``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from squall.core import templating
from squall.core.executions import Status
from squall.core.workflow import (
    UNSET,
    ActionRequest,
    Changes,
    DefinitionInvalid,
    Environment,
    Problem,
)
from squall.errors import Conflict, InvalidInput

__all__ = [
    "ActionChainConductor",
    "ChainInvalid",
    "ChainSpec",
    "Node",
    "inspect",
    "load",
]

_REQUESTED = Status.REQUESTED.value
_RUNNING = Status.RUNNING.value
_PENDING = Status.PENDING.value
_PAUSING = Status.PAUSING.value
_PAUSED = Status.PAUSED.value
_RESUMING = Status.RESUMING.value
_CANCELING = Status.CANCELING.value
_SUCCEEDED = Status.SUCCEEDED.value
_FAILED = Status.FAILED.value
_TIMEOUT = Status.TIMEOUT.value
_CANCELED = Status.CANCELED.value

_FINAL = frozenset(
    status.value
    for status in (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.TIMEOUT,
        Status.CANCELED,
        Status.ABANDONED,
    )
)
_KNOWN = frozenset(status.value for status in Status)
# Node executions in these states are part of the chain's result, as in st2,
# which lists a node once it finished or paused.
_SHOWN = _FINAL | {_PAUSED, _PENDING}

_CHAIN_KEYS = ("chain", "default", "vars")
_NODE_KEYS = (
    "name",
    "ref",
    "params",
    "parameters",
    "on-success",
    "on-failure",
    "publish",
    "notify",
)
_NOTIFY_KEYS = ("on-complete", "on-failure", "on-success")
_WORKFLOW_KEY = "wf"
_INPUT_KEY = "input"
_MAX_ERROR = 4000  # characters of an error message kept in the workflow record


# --------------------------------------------------------------------------- definition


class ChainInvalid(DefinitionInvalid):
    """An action chain that cannot run; the message lists every problem."""

    language = "action chain"


@dataclass(frozen=True, eq=False)
class Node:
    """One node of a chain. ``name`` and ``ref`` are "" when the file lacks them."""

    index: int
    name: str
    ref: str
    params: Mapping[str, Any]  # "parameters", or the older "params"
    on_success: str | None
    on_failure: str | None
    publish: Mapping[str, Any]
    notify: Mapping[str, Any] | None


@dataclass(frozen=True, eq=False)
class ChainSpec:
    """A loaded chain; :func:`inspect` says whether it can run."""

    source: str
    nodes: tuple[Node, ...]
    default: str | None  # as written
    vars: Mapping[str, Any]
    problems: tuple[Problem, ...]  # found while reading the file

    def node(self, name: str) -> Node | None:
        """The first node with this name (st2 looks nodes up the same way)."""
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    @property
    def start(self) -> str | None:
        """The node a run starts with.

        ``default`` when given; else, as st2 guesses, the first node that no
        ``on-success``/``on-failure`` names; else the first node.
        """
        if self.default:
            return self.default
        if not self.nodes:
            return None
        referenced = {n.on_success for n in self.nodes} | {n.on_failure for n in self.nodes}
        for node in self.nodes:
            if node.name not in referenced:
                return node.name
        return self.nodes[0].name


def load(document: str | bytes | Mapping[str, Any], source: str = "action chain") -> ChainSpec:
    """Read a chain from YAML text or already parsed data.

    Raises :class:`ChainInvalid` only when the document is not YAML or not a
    mapping; every other problem is kept in the spec for :func:`inspect`.
    """
    if isinstance(document, (str, bytes)):
        try:
            data: Any = yaml.safe_load(document)
        except yaml.YAMLError as exc:
            raise ChainInvalid([Problem("", f"not valid YAML: {exc}")], source) from None
    else:
        data = document
    if not isinstance(data, Mapping):
        problem = Problem("", "an action chain is a mapping with a 'chain' list of nodes")
        raise ChainInvalid([problem], source)

    problems: list[Problem] = []
    for key in data:
        if key not in _CHAIN_KEYS:
            problems.append(
                Problem(str(key), "unknown key; an action chain has 'chain', 'default' and 'vars'")
            )

    nodes: list[Node] = []
    raw_chain = data.get("chain")
    if raw_chain is None:
        problems.append(Problem("chain", "is required: the list of nodes to run"))
    elif not isinstance(raw_chain, list):
        problems.append(Problem("chain", "must be a list of nodes"))
    elif not raw_chain:
        problems.append(Problem("chain", "has no nodes; a chain needs at least one"))
    else:
        nodes = [_read_node(raw, index, problems) for index, raw in enumerate(raw_chain)]

    default = data.get("default")
    if default is not None and not isinstance(default, str):
        problems.append(Problem("default", "must be the name of a node"))
        default = None

    chain_vars = data.get("vars")
    if chain_vars is None:
        chain_vars = {}
    elif not isinstance(chain_vars, Mapping):
        problems.append(Problem("vars", "must be a mapping of names to values"))
        chain_vars = {}

    return ChainSpec(source, tuple(nodes), default or None, dict(chain_vars), tuple(problems))


def _read_node(raw: Any, index: int, problems: list[Problem]) -> Node:
    path = f"chain[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(path, "must be a mapping with at least 'name' and 'ref'"))
        return Node(index, "", "", {}, None, None, {}, None)

    # st2 checks its node schema (known keys only) on the first node alone;
    # later nodes may carry extra keys, which it ignores, and so do we.
    if index == 0:
        for key in raw:
            if key not in _NODE_KEYS:
                problems.append(Problem(f"{path}.{key}", "unknown key for a node"))

    def text(key: str, required: bool) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                problems.append(Problem(f"{path}.{key}", "is required"))
            return None
        if not isinstance(value, str):
            problems.append(Problem(f"{path}.{key}", "must be a string"))
            return None
        return value

    def mapping(key: str) -> Mapping[str, Any]:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            problems.append(Problem(f"{path}.{key}", "must be a mapping"))
            return {}
        return value

    name = text("name", True) or ""
    ref = text("ref", True) or ""
    params = mapping("params")
    parameters = mapping("parameters")
    if params and parameters:
        problems.append(
            Problem(path, "has both 'parameters' and the older 'params'; keep only one")
        )
    publish = mapping("publish")
    notify = raw.get("notify")
    if notify is not None:
        if not isinstance(notify, Mapping):
            problems.append(Problem(f"{path}.notify", "must be a mapping"))
            notify = None
        elif index == 0:
            for key in notify:
                if key not in _NOTIFY_KEYS:
                    problems.append(
                        Problem(
                            f"{path}.notify.{key}",
                            "unknown key; notify has 'on-complete', 'on-success' and 'on-failure'",
                        )
                    )
    return Node(
        index=index,
        name=name,
        ref=ref,
        params=dict(parameters or params),
        on_success=text("on-success", False) or None,
        on_failure=text("on-failure", False) or None,
        publish=dict(publish),
        notify=dict(notify) if notify is not None else None,
    )


def inspect(spec: ChainSpec) -> list[Problem]:
    """Every problem of the chain: what :func:`load` found, duplicate names,
    and ``on-success``/``on-failure``/``default`` naming no node.

    Names that are templates are not checked, as in st2 (they are never
    rendered, so such a branch fails when it is taken).
    """
    problems = list(spec.problems)
    first: dict[str, int] = {}
    for node in spec.nodes:
        if not node.name:
            continue
        if node.name in first:
            problems.append(
                Problem(
                    f"chain[{node.index}].name",
                    f"'{node.name}' is already the name of chain[{first[node.name]}]",
                )
            )
        else:
            first[node.name] = node.index
    for node in spec.nodes:
        for key, target in (("on-success", node.on_success), ("on-failure", node.on_failure)):
            if target and not templating.is_template(target) and target not in first:
                problems.append(
                    Problem(f"chain[{node.index}].{key}", f"'{target}' is not a node of this chain")
                )
    if spec.default and not templating.is_template(spec.default) and spec.default not in first:
        problems.append(Problem("default", f"'{spec.default}' is not a node of this chain"))
    return problems


def _check(spec: ChainSpec) -> None:
    problems = inspect(spec)
    if problems:
        raise ChainInvalid(problems, spec.source)


# --------------------------------------------------------------------------- rendering


class _RenderFailed(Exception):
    def __init__(self, key: str, value: Any, error: templating.TemplateError) -> None:
        super().__init__(key)
        self.key = key
        self.value = value
        self.error = error

    def describe(self) -> str:
        if self.error.template is not None:
            shown = self.error.template
        elif isinstance(self.value, str):
            shown = self.value
        else:
            shown = json.dumps(self.value, default=str)
        return f"{self.error.problem} (template: {shown})"


def _render_mapping(
    mapping: Mapping[str, Any], context: Mapping[str, Any], shell: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Render each value on its own, so an error can name its key; values
    inserted into the keys named in ``shell`` (shell commands) are quoted."""
    rendered: dict[str, Any] = {}
    for key, value in mapping.items():
        try:
            # Text, not native values: st2 renders a chain's templates to
            # strings and leaves the typing to the cast per the action schema.
            rendered[key] = templating.render_value(
                value, context, name=key, keep_types=False, shell=key in shell
            )
        except templating.TemplateError as exc:
            raise _RenderFailed(str(key), value, exc) from None
    return rendered


def _copy(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _cap(message: str) -> str:
    return message if len(message) <= _MAX_ERROR else message[: _MAX_ERROR - 3] + "..."


# --------------------------------------------------------------------------- conductor


class ActionChainConductor:
    """Runs one action chain execution; see the module docstring.

    Build it with :meth:`new` (a fresh execution) or :meth:`restore` (from
    the records of an execution), never directly.
    """

    def __init__(self, spec: ChainSpec, env: Environment, config: Mapping[str, Any] | None) -> None:
        self._spec = spec
        self._env = env
        self._config = dict(config or {})
        self._status = UNSET
        self._display_published = True
        self._skip_notify: tuple[str, ...] = ()
        self._parameters: dict[str, Any] = {}
        self._vars: dict[str, Any] | None = None  # rendered vars plus published values
        self._published: dict[str, Any] = {}
        self._results: dict[str, Any] = {}  # node name -> result of its latest finished run
        self._tasks: dict[int, dict[str, Any]] = {}  # seq -> task record
        self._current: int | None = None
        self._processed = True
        self._next: str | None = None
        self._outcome: str | None = None
        self._pause = False
        self._cancel = False
        self._error: dict[str, Any] | None = None
        self._changes = Changes()
        self._saved_workflow: dict[str, Any] | None = None

    # ---- construction

    @classmethod
    def new(
        cls,
        spec: ChainSpec,
        env: Environment,
        *,
        runner_parameters: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ActionChainConductor:
        """A conductor for a new execution of ``spec``; :meth:`start` runs it.

        ``runner_parameters`` are the chain's runner parameters
        (``display_published``, ``skip_notify``); they are kept in the
        records. ``config`` is the pack's config for ``config_context``; it is
        not recorded, so pass it to :meth:`restore` as well. Raises
        :class:`ChainInvalid` when :func:`inspect` finds problems.
        """
        _check(spec)
        conductor = cls(spec, env, config)
        given = runner_parameters or {}
        display = given.get("display_published")
        conductor._display_published = True if display is None else bool(display)
        conductor._skip_notify = tuple(str(name) for name in given.get("skip_notify") or ())
        conductor._save_workflow()
        return conductor

    @classmethod
    def restore(
        cls,
        spec: ChainSpec,
        records: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
        env: Environment,
        *,
        config: Mapping[str, Any] | None = None,
    ) -> ActionChainConductor:
        """The conductor again, from every record it emitted (latest content
        of each; None for a deleted record), by kind then key."""
        _check(spec)
        conductor = cls(spec, env, config)
        workflow = (records.get("workflow") or {}).get(_WORKFLOW_KEY)
        if workflow is None:
            return conductor
        conductor._status = str(workflow["status"])
        conductor._current = workflow.get("current")
        conductor._processed = bool(workflow.get("processed", True))
        conductor._next = workflow.get("next")
        conductor._outcome = workflow.get("outcome")
        conductor._pause = bool(workflow.get("pause"))
        conductor._cancel = bool(workflow.get("cancel"))
        error = workflow.get("error")
        conductor._error = dict(error) if error else None
        conductor._display_published = bool(workflow.get("display_published", True))
        conductor._skip_notify = tuple(workflow.get("skip_notify") or ())
        conductor._saved_workflow = conductor._workflow_record()

        tasks = records.get("task") or {}
        for key in sorted((k for k, v in tasks.items() if v is not None), key=int):
            record = dict(tasks[key] or {})
            conductor._tasks[int(key)] = record
            if record["status"] in _FINAL:
                conductor._results[record["name"]] = record.get("result")

        context = records.get("context") or {}
        given = context.get(_INPUT_KEY)
        if given is not None:
            conductor._parameters = dict(given.get("parameters") or {})
            rendered = given.get("vars")
            conductor._vars = dict(rendered) if rendered is not None else None
        published_keys = (k for k, v in context.items() if k != _INPUT_KEY and v is not None)
        for key in sorted(published_keys, key=int):
            published = dict((context[key] or {}).get("published") or {})
            if conductor._vars is not None:
                conductor._vars.update(published)
            conductor._published.update(published)
        return conductor

    # ---- what the driver reads

    @property
    def spec(self) -> ChainSpec:
        return self._spec

    @property
    def status(self) -> str:
        return self._status

    @property
    def output(self) -> dict[str, Any] | None:
        """The chain's result so far (None before it started); the driver
        fills the task entries' execution ids and times, see :meth:`result`."""
        if self._status == UNSET:
            return None
        return self.result()

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [dict(self._error)] if self._error else []

    def result(self, details: Callable[[int], Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The chain's result in st2's shape.

        The conductor does not know the executions it asked for; ``details``
        maps a task instance's seq to its ``execution_id``, ``created_at``
        and ``updated_at`` (and optionally ``liveaction_id``, which otherwise
        repeats ``execution_id``) so the driver can fill them in.
        """
        tasks: list[dict[str, Any]] = []
        for seq in sorted(self._tasks):
            task = self._tasks[seq]
            if task["status"] not in _SHOWN:
                continue
            extra = details(seq) if details is not None else {}
            tasks.append(
                {
                    "id": task["name"],
                    "name": task["name"],
                    "execution_id": extra.get("execution_id"),
                    "liveaction_id": extra.get("liveaction_id", extra.get("execution_id")),
                    "workflow": None,
                    "created_at": extra.get("created_at"),
                    "updated_at": extra.get("updated_at"),
                    "state": task["status"],
                    "result": task.get("result"),
                }
            )
        result: dict[str, Any] = {"tasks": tasks}
        if self._display_published:
            result["published"] = dict(self._published)
        if self._error:
            result["error"] = self._error["message"]
        return result

    def notify(
        self, task_id: str, chain_notify: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The notify settings for a node's execution, as st2 picks them: none
        for nodes in ``skip_notify``, else the node's own, else the chain's."""
        if task_id in self._skip_notify:
            return None
        node = self._spec.node(task_id)
        if node is not None and node.notify:
            return dict(node.notify)
        return dict(chain_notify) if chain_notify else None

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes

    # ---- events

    def start(self, inputs: Mapping[str, Any]) -> list[ActionRequest]:
        """Render ``vars`` with the chain's parameters and run the start node."""
        if self._status != UNSET:
            raise Conflict(f"this action chain has already started (it is {self._status})")
        self._parameters = dict(inputs)
        self._status = _RUNNING
        return self._step(self._begin(self._spec.start))

    def action_status(
        self, seq: int, item: int | None, status: str, result: Any = None
    ) -> list[ActionRequest]:
        status = str(status)
        if status not in _KNOWN:
            raise InvalidInput(f"'{status}' is not an execution status")
        task = self._tasks.get(seq)
        # Reports for an earlier node run, or repeated ones, change nothing.
        if task is None or seq != self._current or task["status"] in _FINAL:
            return []
        if self._status == UNSET or self._status in _FINAL:
            return []
        previous = task["status"]
        if status not in _FINAL:
            if status == previous:
                return []
            task["status"] = status
            self._save_task(seq)
            if status in (_PAUSED, _PENDING):
                if self._status in (_RUNNING, _PAUSING):
                    self._status = _PAUSED
            elif self._answered(previous) and status == _RUNNING:
                self._status = _RUNNING
            return self._step([])

        task["status"] = status
        task["result"] = result
        self._save_task(seq)
        self._results[task["name"]] = result
        self._processed = False
        if self._status == _PAUSED and not self._answered(previous):
            # Paused (by the user, or because the node paused and was then
            # resumed on its own): st2 goes on only when the chain is resumed.
            return self._step([])
        if self._status == _PAUSED:
            self._status = _RUNNING
        return self._step(self._complete())

    def request_status(self, status: str) -> list[ActionRequest]:
        """Pause (``pausing``/``paused``), resume (``resuming``/``running``) or
        cancel (``canceling``/``canceled``) the chain."""
        if status in (_PAUSING, _PAUSED):
            return self._step(self._request_pause())
        if status in (_RESUMING, _RUNNING):
            return self._step(self._request_resume())
        if status in (_CANCELING, _CANCELED):
            return self._step(self._request_cancel())
        raise InvalidInput(f"an action chain cannot be asked to become '{status}'")

    def rerun(self, tasks: list[tuple[str, int, bool]]) -> list[ActionRequest]:
        """Run a completed chain again from one node, keeping the values
        published and the node results of the earlier run.

        With no task given, the chain starts again where it stopped: the node
        that failed, timed out or was canceled (or whose templates failed),
        the node it was about to run when it was canceled, or the start node
        when ``vars`` could not be rendered. (st2 re-runs only Orquesta workflows
        from a task; this is a Squall extension.)
        """
        if self._status not in _FINAL:
            raise Conflict(f"only a completed chain can be re-run; this one is {self._status}")
        if len(tasks) > 1:
            raise InvalidInput("an action chain runs one node at a time: re-run from one node")
        if tasks:
            name: str | None = tasks[0][0]
            if not name or self._spec.node(name) is None:
                raise InvalidInput(f"'{name}' is not a node of this chain")
        else:
            name = self._stopped_at()
            if name is None:
                raise InvalidInput("the chain did not stop at a node; name the node to re-run")
        self._status = _RUNNING
        self._error = None
        self._pause = self._cancel = False
        self._next = self._outcome = None
        self._processed = True
        return self._step(self._begin(name))

    # ---- the machine

    def _begin(self, name: str | None) -> list[ActionRequest]:
        """Render vars if they are not yet, then run node ``name``."""
        if self._vars is None:
            context = self._context()
            try:
                self._vars = _render_mapping(self._spec.vars, context)
            except _RenderFailed as exc:
                self._save_input()
                self._fail(f"the chain's vars could not be rendered: '{exc.key}': {exc.describe()}")
                return []
            self._save_input()
        node = self._spec.node(name) if name else None
        if node is None:
            # Only a template as ``default`` gets here: st2 finds no node
            # by that name and ends the chain at once, successfully.
            self._status = _SUCCEEDED
            return []
        return self._run(node)

    def _run(self, node: Node) -> list[ActionRequest]:
        try:
            lookup = self._env.shell_inputs
            shell = lookup(node.ref) if lookup is not None else frozenset()
            params = _render_mapping(node.params, self._context(), shell)
        except _RenderFailed as exc:
            self._fail(
                f"node '{node.name}' was not run: parameter '{exc.key}' could not be "
                f"rendered: {exc.describe()}",
                node.name,
            )
            return []
        seq = max(self._tasks, default=0) + 1
        self._tasks[seq] = {
            "seq": seq,
            "name": node.name,
            "action": node.ref,
            "status": _REQUESTED,
            "result": None,
        }
        self._save_task(seq)
        self._current = seq
        self._processed = True  # nothing to act on until the node finishes
        self._next = self._outcome = None
        return [ActionRequest(task_id=node.name, route=0, seq=seq, action=node.ref, input=params)]

    def _complete(self) -> list[ActionRequest]:
        """Act on the current node's finish: publish, pick the next node, go on."""
        assert self._current is not None
        task = self._tasks[self._current]
        node = self._spec.node(task["name"])
        assert node is not None
        self._processed = True

        if node.publish:
            try:
                published = _render_mapping(node.publish, self._context())
            except _RenderFailed as exc:
                self._fail(
                    f"node '{node.name}': publish value '{exc.key}' could not be rendered: "
                    f"{exc.describe()}",
                    node.name,
                )
                return []
            if published:
                if self._vars is not None:
                    self._vars.update(published)
                self._published.update(published)
                self._changes.put("context", str(self._current), {"published": published})

        status = task["status"]
        key: str | None = None
        if status == _SUCCEEDED:
            outcome, key, target = _SUCCEEDED, "on-success", node.on_success
        elif status == _CANCELED:
            outcome, target = _CANCELED, None
        elif status == _TIMEOUT:
            outcome, key, target = _TIMEOUT, "on-failure", node.on_failure
        else:
            outcome, key, target = _FAILED, "on-failure", node.on_failure
        if target and self._spec.node(target) is None:
            self._fail(
                f"node '{node.name}': {key} names '{target}', which is not a node of this chain",
                node.name,
            )
            return []
        self._outcome = outcome
        self._next = target
        if self._cancel or outcome == _CANCELED:
            self._status = _CANCELED
            return []
        if self._pause:
            self._status = _PAUSED
            return []
        return self._advance()

    def _advance(self) -> list[ActionRequest]:
        node = self._spec.node(self._next) if self._next else None
        if node is None:
            self._status = self._outcome or _SUCCEEDED
            return []
        self._status = _RUNNING
        return self._run(node)

    def _request_pause(self) -> list[ActionRequest]:
        if self._status not in (_RUNNING, _PAUSING, _PAUSED):
            return []
        self._pause = True
        if self._status == _RUNNING:
            current = self._current_status()
            active = current is not None and current not in _FINAL
            held = current in (_PAUSED, _PENDING)
            self._status = _PAUSING if active and not held else _PAUSED
        return []

    def _request_resume(self) -> list[ActionRequest]:
        if self._status == _PAUSING:
            self._pause = False
            self._status = _RUNNING
            return []
        if self._status != _PAUSED:
            return []
        self._pause = False
        self._status = _RUNNING
        current = self._current_status()
        if current is not None and current not in _FINAL:
            return []  # the driver resumes the node's execution; its finish moves us on
        if not self._processed:
            return self._complete()
        return self._advance()

    def _request_cancel(self) -> list[ActionRequest]:
        if self._status in _FINAL:
            return []
        self._cancel = True
        current = self._current_status()
        if self._status != UNSET and current is not None and current not in _FINAL:
            self._status = _CANCELING  # the driver cancels the node's execution
        else:
            self._status = _CANCELED
        return []

    # ---- helpers

    def _current_status(self) -> str | None:
        if self._current is None:
            return None
        status: str = self._tasks[self._current]["status"]
        return status

    def _answered(self, previous: str) -> bool:
        """True when the chain was paused only by its node waiting for an
        inquiry: answering it resumes the chain, as st2's inquiry response
        resumes the parent."""
        return previous == _PENDING and self._status == _PAUSED and not self._pause

    def _stopped_at(self) -> str | None:
        if self._vars is None:
            return self._spec.start
        if self._error and self._error.get("task_id"):
            return str(self._error["task_id"])
        status = self._current_status()
        if status is not None and status != _SUCCEEDED and self._current is not None:
            return str(self._tasks[self._current]["name"])
        return self._next  # canceled between two nodes: the one it would have run

    def _fail(self, message: str, task_id: str | None = None) -> None:
        self._status = _FAILED
        self._error = {"type": "error", "message": _cap(message), "task_id": task_id}

    def _context(self) -> dict[str, Any]:
        """The names templates see, later ones winning as in st2."""
        kv = self._env.kv
        parent = _parent_context(self._env.parent_context)
        visible: dict[str, Any] = {}
        visible.update(self._parameters)
        visible.update(self._results)
        visible.update(self._vars or {})
        visible["__results"] = dict(self._results)
        names = templating.build_context(
            kv=kv, config=self._config, action_context={"parent": parent}
        )
        if templating.DATASTORE in names:
            visible["system"] = names[templating.DATASTORE]["system"]
        visible.update(names)
        context = {"__context": dict(visible), **visible}
        if kv is not None:
            context = templating.build_context(decrypt=kv.decrypt, extra=context)
        return context

    def _workflow_record(self) -> dict[str, Any]:
        return {
            "status": self._status,
            "current": self._current,
            "processed": self._processed,
            "next": self._next,
            "outcome": self._outcome,
            "pause": self._pause,
            "cancel": self._cancel,
            "error": dict(self._error) if self._error else None,
            "display_published": self._display_published,
            "skip_notify": list(self._skip_notify),
        }

    def _save_workflow(self) -> None:
        record = self._workflow_record()
        if record != self._saved_workflow:
            self._changes.put("workflow", _WORKFLOW_KEY, record)
            self._saved_workflow = record

    def _save_task(self, seq: int) -> None:
        self._changes.put("task", str(seq), dict(self._tasks[seq]))

    def _save_input(self) -> None:
        self._changes.put(
            "context",
            _INPUT_KEY,
            {"parameters": dict(self._parameters), "vars": _copy(self._vars)},
        )

    def _step(self, requests: list[ActionRequest]) -> list[ActionRequest]:
        """End of every event: record the workflow's state if it changed."""
        self._save_workflow()
        return requests


def _parent_context(given: Mapping[str, Any]) -> dict[str, Any]:
    """``action_context.parent`` as st2 gives it to a chain's nodes: the chain
    execution's own context (``user``, ``pack``, its ``parent``...) plus its
    ``execution_id``.

    Drivers describe the workflow execution under ``st2`` (the names Orquesta's
    ``ctx().st2`` shows); the rest of ``given`` is the execution's context.
    """
    parent = {key: value for key, value in given.items() if key != "st2"}
    st2 = given.get("st2")
    if isinstance(st2, Mapping):
        if st2.get("action_execution_id") is not None:
            parent.setdefault("execution_id", st2["action_execution_id"])
        for key in ("user", "pack"):
            if st2.get(key) is not None:
                parent.setdefault(key, st2[key])
    if "execution_id" not in parent and "action_execution_id" in parent:
        parent["execution_id"] = parent["action_execution_id"]
    return parent
