"""The workflow engine: drives Orquesta and ActionChain conductors.

Everything that concerns a workflow arrives as an event in the work queue
(topic ``workflow``, ref = the workflow's execution id): its start, a child
execution's status change (queued by the executions repository in the
transaction of that change), a user's pause, resume or cancel. A *step*
takes a workflow's due events, feeds them to its conductor, and in the same
transaction writes the records the conductor changed, creates the child
executions it asked for and updates the workflow's own execution. A crash
before the commit leaves the events in the queue; after it, nothing needs
redoing. So each task transition is one transaction with the work it makes.

Conductors are kept in memory between steps (rebuilding one from its
records on every event would make long workflows quadratic). Each step bumps
the workflow's version in the database; a cached conductor whose version
does not match (a rolled-back step, another process) is rebuilt from the
records. Steps for different workflows are separate jobs, so the SQLite
writer commits them together, and one workflow's failure does not roll back
another's step.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from squall import masks
from squall.core.actionchain import ActionChainConductor
from squall.core.executions import FINAL, Status, can_transition, is_final
from squall.core.orquesta.conductor import OrquestaConductor
from squall.core.timestamps import iso
from squall.core.workflow import ActionRequest, Conductor, Environment
from squall.crypto import KeyRing
from squall.errors import InvalidInput, NotFound, SquallError, StoreUnavailable
from squall.runners.registry import get_runner
from squall.services import definitions, events
from squall.services import executions as exe_service
from squall.services.bus import Bus, step_refs
from squall.store import content
from squall.store import executions as exe_store
from squall.store import workflows as wf_store
from squall.store.db import Database
from squall.store.workflows import WORKFLOW

log = logging.getLogger(__name__)

CACHE_SIZE = 512  # conductors kept in memory
BATCH = 64  # workflows stepped per round
_ACTIVE_CHILD = ",".join(s.value for s in Status if s not in FINAL and s != Status.CANCELING)


class _Lookup:
    """``st2kv`` for a cached conductor: reads through the current step's connection."""

    def __init__(self, user: str | None, keyring: KeyRing) -> None:
        self.user, self.keyring = user, keyring
        self.conn: Connection | None = None

    def get(self, scope: str, name: str) -> Any:
        assert self.conn is not None
        return exe_service.StoreKeyLookup(self.conn, self.user, self.keyring).get(scope, name)

    def decrypt(self, value: str) -> str:
        plain = self.keyring.decrypt(value)
        masks.remember(plain)  # wherever the workflow puts it, it is masked
        return plain


@dataclass
class _Loaded:
    version: int
    conductor: Conductor
    lookup: _Lookup
    kind: str


class WorkflowEngine:
    def __init__(self, db: Database, bus: Bus, keyring: KeyRing) -> None:
        self.db, self.bus, self.keyring = db, bus, keyring
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()

    async def run(self) -> None:
        await step_refs(
            self.db, self.bus, WORKFLOW, self._step, batch=BATCH, what="workflow engine"
        )

    async def _step(self, execution_id: str) -> None:
        try:
            await self.db.write(self.step, execution_id)
        except StoreUnavailable:
            # The database is away: the events are still queued (the step
            # rolled back), so the workflow is fine; try again shortly.
            log.warning("workflow %s: database unavailable; will retry", execution_id)
            await asyncio.sleep(1.0)
        except Exception:
            self._cache.pop(execution_id, None)
            log.exception("workflow %s: a step failed; failing the workflow", execution_id)
            try:
                await self.db.write(_fail_broken, execution_id)
            except Exception:
                log.exception("workflow %s could not be marked failed", execution_id)

    # -- one step (runs in a write transaction) ------------------------------------

    def step(self, conn: Connection, execution_id: str) -> None:
        try:
            self._step_in(conn, execution_id)
        except BaseException:
            # The conductor may be half-way through the step: never reuse it.
            self._cache.pop(execution_id, None)
            log.debug("workflow %s: step rolled back", execution_id, exc_info=True)
            raise

    def _step_in(self, conn: Connection, execution_id: str) -> None:
        evs = wf_store.take_events(conn, execution_id)
        if not evs:
            return
        # The workflow's execution and the children its events name, in one read.
        rows = exe_store.get_many(conn, [execution_id, *(e["child"] for e in evs if "child" in e)])
        row = rows.pop(execution_id, None)
        if row is None:
            return
        wf = wf_store.begin_step(conn, execution_id)
        requests: list[ActionRequest] = []
        if wf is None:
            if is_final(row["status"]) or not any(e.get("start") for e in evs):
                return  # canceled before it started, or deleted
            started = self._start(conn, row)
            if started is None:
                return
            loaded, requests, row = started
            version = 1
        else:
            if is_final(row["status"]):
                self._cache.pop(execution_id, None)
                return
            version = int(wf["version"])
            loaded = self._conductor(conn, wf, row, version - 1)
        loaded.lookup.conn = conn
        for event in evs:
            try:
                requests += self._apply(conn, loaded, row, event, rows)
            except SquallError as exc:
                # An event the workflow cannot use (a child it does not know):
                # say so and carry on; the workflow itself is fine.
                log.warning("workflow %s: ignored event %s: %s", execution_id, event, exc.message)
        self._launch(conn, loaded, row, requests)
        wf_store.write(conn, execution_id, loaded.conductor.take_changes())
        loaded.version = version
        self._sync_status(conn, loaded, row)
        loaded.lookup.conn = None
        self._remember(execution_id, loaded)

    def _start(
        self, conn: Connection, row: dict[str, Any]
    ) -> tuple[_Loaded, list[ActionRequest], dict[str, Any]] | None:
        kind = row["runner_type"]
        action = row["action"]
        if row["status"] == Status.SCHEDULED:
            row = exe_store.set_status(conn, row, Status.RUNNING)
        try:
            text = definitions.read(action)
            spec = definitions.parse(kind, text, definitions.source(action))
        except InvalidInput as exc:
            _finish(
                conn, row, Status.FAILED, {"errors": [{"type": "error", "message": exc.message}]}
            )
            return None
        digest = wf_store.save_spec(conn, kind, text)
        wf_store.create(conn, row["id"], kind, digest)
        lookup = _Lookup(row["user"], self.keyring)
        lookup.conn = conn
        env = self._environment(conn, row, lookup)
        rerun = row["context"].get("re-run") or {}
        previous = rerun.get("ref")
        if previous and rerun.get("tasks") is not None and wf_store.get(conn, previous):
            # Continue the earlier run's state: what succeeded is kept.
            wf_store.copy_records(conn, previous, row["id"])
            records = wf_store.load_records(conn, row["id"])
            conductor = _restore(kind, spec, records, env, self._config(conn, row, kind))
            reset = set(rerun.get("reset") or [])
            tasks = [(task, route, task in reset) for task, route in _task_refs(rerun["tasks"])]
            loaded = _Loaded(0, conductor, lookup, kind)
            try:
                return loaded, conductor.rerun(tasks), row
            except SquallError as exc:
                error = {"type": "error", "message": exc.message}
                _finish(conn, row, Status.FAILED, {"errors": [error]})
                return None
        conductor = _new(kind, spec, env, row, self._config(conn, row, kind))
        loaded = _Loaded(0, conductor, lookup, kind)
        return loaded, conductor.start(_inputs(row)), row

    def _environment(self, conn: Connection, row: dict[str, Any], lookup: _Lookup) -> Environment:
        execution_id = row["id"]

        def item_results(seq: int) -> list[Any]:
            assert lookup.conn is not None
            found = wf_store.records_of(lookup.conn, execution_id, f"result:{seq}")
            return [found[k]["result"] for k in sorted(found, key=int)]

        st2 = {
            "action_execution_id": execution_id,
            "workflow_execution_id": execution_id,
            "user": row["user"],
            "pack": row["action"].get("pack"),
            "action": row["action_ref"],
            "runner": row["runner_type"],
        }

        def shell_inputs(ref: str) -> frozenset[str]:
            assert lookup.conn is not None
            try:
                action = content.get_action(lookup.conn, ref)
                return get_runner(action["runner_type"]).meta.shell_parameters
            except NotFound:
                return frozenset()  # reported when the task's action is requested

        return Environment(
            kv=lookup,
            item_results=item_results,
            parent_context={"st2": st2, "parent": row["context"].get("parent") or {}},
            shell_inputs=shell_inputs,
        )

    def _conductor(
        self, conn: Connection, wf: dict[str, Any], row: dict[str, Any], previous: int
    ) -> _Loaded:
        """The workflow's conductor as its step at version ``previous`` left it."""
        execution_id = wf["execution_id"]
        cached = self._cache.get(execution_id)
        if cached is not None and cached.version == previous:
            return cached
        kind = wf["kind"]
        text = wf_store.spec_text(conn, wf["spec_hash"])
        spec = definitions.parse(kind, text, definitions.source(row["action"]))
        lookup = _Lookup(row["user"], self.keyring)
        lookup.conn = conn
        records = wf_store.load_records(conn, execution_id)
        records = {k: v for k, v in records.items() if not k.startswith("result:")}
        env = self._environment(conn, row, lookup)
        conductor = _restore(kind, spec, records, env, self._config(conn, row, kind))
        return _Loaded(previous, conductor, lookup, kind)

    def _config(self, conn: Connection, row: dict[str, Any], kind: str) -> Any:
        """The pack config, for ActionChain's ``config_context``."""
        if kind != "action-chain":
            return None
        return exe_service.pack_config(
            conn, row["action"].get("pack", ""), row["user"], self.keyring
        )

    def _remember(self, execution_id: str, loaded: _Loaded) -> None:
        if is_final(loaded.conductor.status):
            self._cache.pop(execution_id, None)
            return
        self._cache[execution_id] = loaded
        self._cache.move_to_end(execution_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _apply(
        self,
        conn: Connection,
        loaded: _Loaded,
        row: dict[str, Any],
        event: dict[str, Any],
        children: dict[str, dict[str, Any]],
    ) -> list[ActionRequest]:
        conductor = loaded.conductor
        if "child" in event:
            child = children.get(event["child"])
            if child is None:
                return []
            where = child["context"].get("workflow") or {}
            status = child["status"]
            result = child["result"] if is_final(status) else None
            item = where.get("item")
            if item is not None and is_final(status):
                # Item results live in their own records, read back only when
                # the whole with-items task completes.
                wf_store.write_result(conn, row["id"], int(where["seq"]), int(item), result)
            requests = conductor.action_status(int(where["seq"]), item, status, result)
            if (
                is_final(status)
                and child["runner_type"] == "inquirer"
                and conductor.status == Status.PAUSED
                and not row["context"].get("paused_by")
            ):
                # Answered (or expired): the workflow was waiting on it, not
                # paused by someone, so it carries on (as st2 resumes it).
                requests += conductor.request_status(Status.RESUMING.value)
            return requests
        if "control" in event:
            status = event["control"]
            requests = conductor.request_status(status)
            self._cascade(conn, row, status, event.get("user"))
            return requests
        return []

    def _cascade(
        self, conn: Connection, row: dict[str, Any], status: str, user: str | None
    ) -> None:
        """Pass a pause, resume or cancel on to the children that are running."""
        children, _ = exe_store.list_(conn, parent=row["id"], status=_ACTIVE_CHILD, limit=100_000)
        for child in children:
            flow = child["runner_type"] in wf_store.WORKFLOW_RUNNERS
            try:
                if status == Status.CANCELING:
                    exe_service.cancel(conn, child["id"], user)
                elif flow and status in (Status.PAUSING, Status.RESUMING):
                    control(conn, child["id"], status, user)
            except SquallError as exc:
                log.info("workflow %s: child %s: %s", row["id"], child["id"], exc.message)

    def _launch(
        self, conn: Connection, loaded: _Loaded, row: dict[str, Any], requests: list[ActionRequest]
    ) -> None:
        """Create the child executions the conductor asked for. A request
        that cannot even be recorded (unknown action, bad parameters) fails
        its task at once, and the conductor decides what follows."""
        batch: list[dict[str, Any]] = []
        pending = list(requests)
        # Once for the whole launch: every child inherits the same values.
        inherited = (
            sorted(set(exe_service.execution_secrets(row["parameters"], row["action"])))
            if requests
            else []
        )
        while pending:
            req = pending.pop(0)
            context = _child_context(row, loaded.kind, req)
            try:
                exe_service.request(
                    conn,
                    action_ref=req.action,
                    parameters=req.input,
                    user=row["user"],
                    keyring=self.keyring,
                    context=context,
                    parent_id=row["id"],
                    delay=req.delay,
                    defer=batch,
                    render=False,
                    inherited_secrets=inherited,
                )
            except SquallError as exc:
                error = {"error": f"task {req.task_id}: {exc.message}"}
                pending += loaded.conductor.action_status(req.seq, req.item, Status.FAILED, error)
                continue
            if req.item is not None:
                # An item counts as active (holding back a pause or a cancel)
                # from the moment its execution exists, not when a worker
                # picks it up: say so now rather than with one more event.
                pending += loaded.conductor.action_status(req.seq, req.item, Status.RUNNING)
        exe_store.create_many(conn, batch)

    def _sync_status(self, conn: Connection, loaded: _Loaded, row: dict[str, Any]) -> None:
        """Bring the workflow's execution (``row``, as this step read it; a
        step is the only writer of its status) in line with its conductor."""
        execution_id = row["id"]
        conductor = loaded.conductor
        status = Status(_execution_status(conductor.status))
        if is_final(status):
            _finish(conn, row, status, _result(conn, loaded, execution_id))
            return
        if status == Status.PAUSED:
            waiting, _ = exe_store.list_(conn, parent=execution_id, status="pending", limit=1)
            if waiting and not row["context"].get("paused_by"):
                status = Status.PENDING  # waiting on a human (an inquiry), not paused by one
        if status != row["status"] and can_transition(row["status"], status):
            exe_store.set_status(conn, row, status)


# -- control (the API and CLI call these in their own transaction) -----------------------


def control(conn: Connection, execution_id: str, status: str, user: str | None) -> dict[str, Any]:
    """Ask a workflow to pause, resume or cancel; the engine does it in its next step."""
    row = exe_store.get(conn, execution_id)
    if row["runner_type"] not in wf_store.WORKFLOW_RUNNERS:
        raise InvalidInput(
            f"execution {execution_id} runs {row['action_ref']}, which is not a workflow; "
            "only workflows can be paused and resumed"
        )
    current = Status(row["status"])
    if is_final(current):
        raise InvalidInput(f"execution {execution_id} is already {current}")
    wanted = Status(status)
    if wanted == Status.PAUSING:
        if current in (Status.PAUSING, Status.PAUSED):
            return row
        extra: dict[str, Any] = {"paused_by": user}
    elif wanted == Status.RESUMING:
        if current not in (Status.PAUSING, Status.PAUSED, Status.PENDING):
            raise InvalidInput(
                f"execution {execution_id} is {current}, not paused; nothing to resume"
            )
        extra = {"paused_by": None, "resumed_by": user}
    elif wanted == Status.CANCELING:
        extra = {"canceled_by": user}
    else:
        raise InvalidInput(f"a workflow can be asked to pause, resume or cancel, not {status}")
    if can_transition(current, wanted):
        row = exe_store.set_status(conn, row, wanted, extra_context=extra)
    wf_store.send(conn, execution_id, {"control": wanted.value, "user": user})
    return row


# -- the two workflow languages ----------------------------------------------------------


def _new(kind: str, spec: Any, env: Environment, row: dict[str, Any], config: Any) -> Conductor:
    if kind == "orquesta":
        return OrquestaConductor.new(spec, env)
    runner_params = {k: v for k, v in row["parameters"].items() if k in _RUNNER_PARAMETERS}
    return ActionChainConductor.new(spec, env, runner_parameters=runner_params, config=config)


def _restore(
    kind: str,
    spec: Any,
    records: dict[str, dict[str, dict[str, Any]]],
    env: Environment,
    config: Any,
) -> Conductor:
    if kind == "orquesta":
        return OrquestaConductor.restore(spec, records, env)
    return ActionChainConductor.restore(spec, records, env, config=config)


# -- helpers ---------------------------------------------------------------------------


_RUNNER_PARAMETERS = frozenset({"notify", "skip_notify", "display_published"})


def _inputs(row: dict[str, Any]) -> dict[str, Any]:
    # Runner parameters (notify, display_published...) are not workflow input.
    return {k: v for k, v in row["parameters"].items() if k not in _RUNNER_PARAMETERS}


def _task_refs(tasks: list[Any]) -> list[tuple[str, int]]:
    """``["task1", "task2__r1"]`` (st2's re-run ``--tasks``) as ``(task, route)``."""
    refs = []
    for task in tasks:
        name, _, route = str(task).partition("__r")
        refs.append((name, int(route) if route.isdigit() else 0))
    return refs


def _child_context(row: dict[str, Any], kind: str, req: ActionRequest) -> dict[str, Any]:
    where = {
        "execution_id": row["id"],
        "seq": req.seq,
        "item": req.item,
        "task": req.task_id,
        "route": req.route,
    }
    context: dict[str, Any] = {
        "parent": {"execution_id": row["id"], "user": row["user"]},
        "workflow": where,
    }
    if kind == "orquesta":
        context["orquesta"] = {
            "workflow_execution_id": row["id"],
            "task_execution_id": f"{row['id']}:{req.seq}",
            "task_name": req.task_id,
            "task_id": req.task_id,
            "task_route": req.route,
            "item_id": req.item,
        }
    else:
        context["chain"] = {"name": req.task_id}
    return context


def _execution_status(status: str) -> str:
    if status in ("expired",):
        return Status.TIMEOUT.value
    if status in ("unset", "requested", "scheduled", "delayed", "retrying"):
        return Status.RUNNING.value
    return status


def _result(conn: Connection, loaded: _Loaded, execution_id: str) -> dict[str, Any]:
    conductor = loaded.conductor
    if isinstance(conductor, ActionChainConductor):
        kids, _ = exe_store.list_(conn, parent=execution_id, limit=100_000, sort_desc=False)
        by_seq = {(k["context"].get("workflow") or {}).get("seq"): k for k in kids}

        def details(seq: int) -> dict[str, Any]:
            kid = by_seq.get(seq)
            if kid is None:
                return {}
            return {
                "execution_id": kid["id"],
                "created_at": iso(kid["start_timestamp"]),
                "updated_at": iso(kid["end_timestamp"] or kid["start_timestamp"]),
            }

        return conductor.result(details)
    result: dict[str, Any] = {"output": conductor.output}
    if conductor.errors:
        result["errors"] = conductor.errors
    return result


def _finish(conn: Connection, row: dict[str, Any], status: Status, result: Any) -> None:
    if is_final(row["status"]):
        return
    if not can_transition(row["status"], status):
        row = exe_store.set_status(conn, row, Status.RUNNING)
    done = exe_store.set_status(conn, row, status, result=result)
    events.executions_finished(conn, [done])


def _fail_broken(conn: Connection, execution_id: str) -> None:
    """A step that keeps failing must not wedge the engine: drop the
    workflow's events and fail it with a message that says why."""
    wf_store.take_events(conn, execution_id)
    try:
        row = exe_store.get(conn, execution_id)
    except NotFound:
        return
    error = "the workflow engine could not process this workflow; the server log has the details"
    _finish(conn, row, Status.FAILED, {"errors": [{"type": "error", "message": error}]})


# -- what the API shows ------------------------------------------------------------------


def _executions_by_seq(
    conn: Connection, row: dict[str, Any], records: dict[str, dict[str, Any]]
) -> dict[int, list[dict[str, Any]]]:
    """Each task instance's executions. A re-run keeps the task instances of
    the run it continues, so those are looked up there (and further back);
    re-run items of a with-items task belong to its latest instance."""
    by_seq: dict[int, list[dict[str, Any]]] = {}
    runs, current = [], row
    for _ in range(20):
        runs.append(current["id"])
        previous = (current["context"].get("re-run") or {}).get("ref")
        if not previous or (current["context"].get("re-run") or {}).get("tasks") is None:
            break
        try:
            current = exe_store.get(conn, previous)
        except NotFound:
            break
    latest: dict[tuple[Any, Any], int] = {}
    for key in sorted(records, key=int):
        latest[(records[key].get("id"), records[key].get("route"))] = int(key)
    for n, run_id in enumerate(runs):
        kids, _ = exe_store.list_(conn, parent=run_id, limit=1_000_000, sort_desc=False)
        found: dict[int, list[dict[str, Any]]] = {}
        for kid in kids:
            where = kid["context"].get("workflow") or {}
            if where.get("seq") is None:
                continue
            seq = int(where["seq"])
            rec = records.get(str(seq)) or {}
            if n == 0 and where.get("item") is not None:
                seq = latest.get((rec.get("id"), rec.get("route")), seq)
            found.setdefault(seq, []).append(kid)
        for seq, mine in found.items():
            by_seq.setdefault(seq, mine)  # the newest run that ran it wins
    return by_seq


def view(conn: Connection, execution_id: str, depth: int = 0) -> dict[str, Any]:
    """A workflow's graph and the state of each task instance, in the order
    they started, with their executions and timings; subworkflows' tasks
    follow their parent task, one level deeper."""
    row = exe_store.get(conn, execution_id)
    kind = row["runner_type"]
    if kind not in wf_store.WORKFLOW_RUNNERS:
        raise InvalidInput(f"execution {execution_id} is not a workflow ({row['action_ref']})")
    wf = wf_store.get(conn, execution_id)
    try:
        if wf is not None:
            text = wf_store.spec_text(conn, wf["spec_hash"])
        else:
            text = definitions.read(row["action"])
        graph = definitions.graph(definitions.parse(kind, text, definitions.source(row["action"])))
    except InvalidInput:
        graph = {"tasks": [], "transitions": [], "start": []}
    records = wf_store.records_of(conn, execution_id, "task") if wf else {}
    by_seq = _executions_by_seq(conn, row, records)
    tasks: list[dict[str, Any]] = []
    for key in sorted(records, key=int):
        rec = records[key]
        if rec.get("id") == "continue":
            continue  # the implicit end of a branch: nothing an operator needs to see
        mine = by_seq.get(int(key), [])
        last = mine[-1] if mine else None
        status = rec.get("status")
        if last is not None and is_final(row["status"]) and not is_final(status or "unset"):
            # The workflow ended before this task's last news reached it.
            status = last["status"]
        entry: dict[str, Any] = {
            "task": rec.get("id") or rec.get("name"),
            "route": rec.get("route", 0),
            "seq": int(key),
            "status": status,
            "depth": depth,
            "execution_id": last["id"] if last else None,
            "executions": len(mine),
            "start_timestamp": iso(min(k["start_timestamp"] for k in mine)) if mine else None,
            "end_timestamp": None,
        }
        ends = [k["end_timestamp"] for k in mine]
        if mine and all(e is not None for e in ends):
            entry["end_timestamp"] = iso(max(e for e in ends if e is not None))
        if rec.get("items") is not None:
            done = len(
                {k["context"]["workflow"].get("item") for k in mine if is_final(k["status"])}
            )
            if status == Status.SUCCEEDED:
                done = rec["items"]  # items kept from the run a re-run continues count too
            entry["items"] = {"total": rec["items"], "done": done}
        tasks.append(entry)
        if last and last["runner_type"] in wf_store.WORKFLOW_RUNNERS and depth < 5:
            tasks += view(conn, last["id"], depth + 1)["tasks"]
    return {"execution_id": execution_id, "status": row["status"], "graph": graph, "tasks": tasks}
