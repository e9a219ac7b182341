"""Rollouts: checking a spec against the system, starting, steering, and the
controller that drives them batch by batch.

Planning (:func:`prepare`) resolves the target once into a fixed host list
and lays it out in batches (:func:`squall.core.rollouts.plan`); the started
rollout keeps that snapshot as rows of ``rollout_hosts``.

The controller works like the workflow engine: everything that concerns a
rollout is an event in the work queue (topic ``rollout``): its start, a host's
execution ending (queued by the executions repository in the transaction of
that change), a pause/resume/abort, a gate's timer. A *step* consumes a
rollout's events and, in the same transaction, records the hosts' outcomes,
checks the failure budgets (after every host result), starts the next hosts
as executions of the per-host action, and moves through batches and gates.
A crash loses nothing: the events wait in the queue, and the per-host
executions carry on (a remote command is re-attached by the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Connection

from squall.core import analysis, targeting
from squall.core import rollouts as core
from squall.core.executions import FINAL, Status
from squall.core.inventory import Inventory
from squall.core.timestamps import iso
from squall.core.workflow import Problem
from squall.crypto import KeyRing
from squall.errors import Conflict, InvalidInput, NotFound, SquallError, StoreUnavailable
from squall.services import events
from squall.services import executions as exe_service
from squall.services.bus import Bus, step_refs
from squall.store import content
from squall.store import executions as exe_store
from squall.store import hosts as host_store
from squall.store import rollouts as store
from squall.store.db import after_commit
from squall.store.rollouts import FINAL_ROLLOUT, ROLLOUT

log = logging.getLogger(__name__)

BATCH = 32  # rollouts stepped per round
APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "description": "true: go on; false: abort the rollout"}
    },
    "required": ["approve"],
}
OUTPUT_CHARS = 500  # of a host's output kept to fold identical ones
# Host statuses of a remote execution that mean the host could not be reached.
_UNREACHABLE = {"unreachable", "auth_failed", "host_key"}


# -- reading and checking a spec ----------------------------------------------------------


def load_spec_text(text: str, source: str) -> dict[str, Any]:
    """A spec file's YAML; a syntax error names the file and line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise InvalidInput(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a rollout spec is a mapping (name, target, action, ...)")
    return data


def prepare(
    conn: Connection, data: Mapping[str, Any], inventory: Inventory, *, source: str = "spec"
) -> tuple[core.RolloutSpec, core.Plan]:
    """Check a spec against the system and plan it; every problem at once."""
    spec = core.parse_spec(data, source)
    problems: list[Problem] = []
    actions = [("action", spec.action)]
    for name in ("pre_host", "post_host", "pre_batch", "post_batch", "on_success", "on_failure"):
        hook = getattr(spec.hooks, name, None)
        if hook is not None:
            actions.append((f"hooks.{name}.action", hook.action))
    if spec.rollback is not None:
        actions.append(("rollback.action", spec.rollback.action))
    for path, ref in actions:
        try:
            content.get_action(conn, ref)
        except NotFound as exc:
            problems.append(Problem(path, exc.message))
    hosts = []
    try:
        hosts = targeting.resolve(spec.target, inventory)
    except targeting.TargetError as exc:
        problems.append(Problem("target", exc.message))
    known_facts = targeting.fact_names(inventory)
    if spec.group_by and spec.group_by not in known_facts:
        problems.append(Problem("group_by", f"no host has a fact named '{spec.group_by}'"))
    if spec.max_per_group and spec.max_per_group.fact not in known_facts:
        problems.append(
            Problem("max_per_group.fact", f"no host has a fact named '{spec.max_per_group.fact}'")
        )
    canary = []
    if isinstance(spec.canary, str):
        try:
            canary = targeting.resolve(spec.canary, inventory)
        except targeting.TargetError as exc:
            problems.append(Problem("canary", exc.message))
    elif spec.canary:
        for i, name in enumerate(spec.canary):
            if name in inventory.hosts:
                canary.append(inventory.hosts[name])
            else:
                problems.append(Problem(f"canary[{i}]", f"no host named '{name}' in the inventory"))
    if problems:
        raise core.RolloutSpecInvalid(problems, source)
    return spec, core.plan(spec, hosts, canary=canary)


def plan_view(spec: core.RolloutSpec, plan: core.Plan) -> dict[str, Any]:
    return {"name": spec.name, "target": spec.target, "count": len(plan.hosts), **plan.to_dict()}


def start(
    conn: Connection,
    data: Mapping[str, Any],
    inventory: Inventory,
    *,
    user: str | None,
    source: str = "spec",
    execution_id: str | None = None,
) -> dict[str, Any]:
    spec, plan = prepare(conn, data, inventory, source=source)
    stored_plan = {k: v for k, v in plan.to_dict().items() if k not in ("hosts", "batches")}
    stored_plan["target"] = spec.target
    row = store.create(
        conn,
        name=spec.name,
        spec=dict(data),
        plan=stored_plan,
        batches=plan.batches,
        user=user,
        execution_id=execution_id,
    )
    return row


def control(
    conn: Connection, rollout_id: str, action: str, user: str | None, **options: Any
) -> None:
    """Pause, resume, abort or roll back a rollout (the controller acts on it
    in its next step)."""
    row = store.get(conn, rollout_id, lock=True)
    if action == "rollback":
        _request_rollback(conn, row, user)
        return
    if row["status"] in FINAL_ROLLOUT:
        raise Conflict(f"rollout {rollout_id} is already {row['status']}")
    if action == "pause" and row["status"] == "paused":
        raise Conflict(f"rollout {rollout_id} is already paused")
    if action == "resume" and row["status"] != "paused":
        raise Conflict(f"rollout {rollout_id} is {row['status']}, not paused")
    store.send(conn, rollout_id, {"control": action, "user": user, **options})


def _request_rollback(conn: Connection, row: dict[str, Any], user: str | None) -> None:
    rid = row["id"]
    if not (row["spec"] or {}).get("rollback"):
        raise Conflict(f"rollout {rid} has no rollback in its spec: nothing says how to undo it")
    state = (row["rollback"] or {}).get("state")
    if row["status"] == "rolled_back" or state in ("requested", "running"):
        raise Conflict(f"rollout {rid} is already rolled back or rolling back")
    if state == "done":
        raise Conflict(f"rollout {rid} was rolled back already")
    if row["status"] in FINAL_ROLLOUT:
        # An ended rollout comes back to life to undo what it did.
        store.update(conn, rid, status="running", ending=row["status"], ended_at=None, gate=None)
    who = user or "a user"
    store.update(conn, rid, rollback={"state": "requested", "reason": f"requested by {who}"})
    store.send(conn, rid, {"control": "rollback", "user": user})


def retry(conn: Connection, rollout_id: str, user: str | None, *, skipped: bool = False) -> int:
    """Run the hosts that failed again (with ``skipped``, also the hosts never
    started because the rollout stopped); the number of hosts put back."""
    row = store.get(conn, rollout_id, lock=True)
    if row["status"] not in FINAL_ROLLOUT:
        raise Conflict(
            f"rollout {rollout_id} is {row['status']}: retry its failed hosts once it has ended"
        )
    if row["status"] == "rolled_back" or row["rollback"]:
        raise Conflict(f"rollout {rollout_id} was rolled back; start a new rollout instead")
    counting = (row["plan"].get("budget") or {}).get("count_as_failure") or core.FAILURE_STATUSES
    statuses = sorted({*core.FAILURE_STATUSES, *counting, "canceled"})
    count = store.retry(conn, rollout_id, statuses, skipped=skipped)
    if not count:
        what = "failed or skipped" if skipped else "failed"
        raise Conflict(f"rollout {rollout_id} has no {what} hosts to retry")
    batches = store.counts(conn, [rollout_id]).get(rollout_id, {})
    first = min(b for b, by_status in batches.items() if by_status.get("pending"))
    store.update(
        conn,
        rollout_id,
        status="running",
        ending=None,
        error=None,
        ended_at=None,
        gate=None,
        batch=first,
    )
    store.log(conn, rollout_id, "retry", f"{count} hosts retried by {user or 'a user'}", user)
    store.send(conn, rollout_id, {"retry": True})
    return count


def skip(conn: Connection, rollout_id: str, hosts: list[str], user: str | None) -> list[str]:
    """Leave hosts out before they start; every host must still be pending."""
    row = store.get(conn, rollout_id, lock=True)
    if row["status"] in FINAL_ROLLOUT:
        raise Conflict(f"rollout {rollout_id} is already {row['status']}")
    problems = []
    for name in hosts:
        found = store.host(conn, rollout_id, name)
        if found is None:
            raise NotFound(f"rollout {rollout_id} has no host named '{name}'")
        if found["status"] != "pending":
            problems.append(f"{name} is {found['status']}")
    if problems:
        raise Conflict(f"only hosts not started yet can be skipped: {'; '.join(problems)}")
    who = user or "a user"
    done = store.skip(conn, rollout_id, hosts, f"skipped by {who}")
    store.log(conn, rollout_id, "skip", f"{', '.join(done)} skipped by {who}", user)
    store.send(conn, rollout_id, {"skipped": done})
    return done


# -- what the API shows --------------------------------------------------------------------


def _time(value: float | None) -> str | None:
    return iso(value) if value else None


def _counts(by_status: Mapping[str, int]) -> dict[str, int]:
    out = dict(by_status)
    out["total"] = sum(by_status.values())
    return out


def view(
    conn: Connection,
    rollout_id: str,
    inventory: Inventory | None = None,
    *,
    with_hosts: bool = True,
) -> dict[str, Any]:
    """The rollout as the API shows it; ``with_hosts=False`` leaves out the
    per-host lists (and what is computed from them), for cheap polling."""
    row = store.get(conn, rollout_id)
    per_batch = store.counts(conn, [rollout_id]).get(rollout_id, {})
    hosts = store.hosts(conn, rollout_id) if with_hosts else []
    plan = row["plan"]
    budget = plan.get("budget") or {}
    counting = set(budget.get("count_as_failure") or core.FAILURE_STATUSES)
    overall = _overall(per_batch)
    batches: dict[int, list[dict[str, Any]]] = {}
    for h in hosts:
        batches.setdefault(h["batch"], []).append(
            {
                "name": h["host"],
                "status": h["status"],
                "phase": h["phase"],
                "execution": h["execution_id"],
                "error": h["error"],
                "started_at": _time(h["started_at"]),
                "ended_at": _time(h["ended_at"]),
            }
        )
    if not with_hosts:
        batches = {index: [] for index in per_batch}
    batch_views = []
    durations = [
        h["ended_at"] - h["started_at"]
        for h in hosts
        if h["started_at"] and h["ended_at"] and h["status"] not in ("skipped", "pending")
    ]
    failures: dict[str, list[str]] = {}
    for h in hosts:
        if h["status"] in counting or h["status"] == "canceled":
            failures.setdefault(h["error"] or h["status"], []).append(h["host"])
    for index in sorted(batches):
        counts = per_batch.get(index, {})
        waiting = counts.get("pending", 0) + counts.get("running", 0)
        state = "done" if not waiting else "running" if index <= row["batch"] else "pending"
        if index == row["batch"] and row["status"] == "planned":
            state = "pending"
        limits = budget.get("batches") or []
        gates_after = plan.get("gates") or []
        batch_views.append(
            {
                "index": index,
                "status": state,
                "gates_after": gates_after[index] if index < len(gates_after) else [],
                "counts": _counts(counts),
                "budget": {
                    "max_failures": limits[index] if index < len(limits) else None,
                    "failures": sum(n for s, n in counts.items() if s in counting),
                },
                **({"hosts": batches[index]} if with_hosts else {}),
            }
        )
    new_hosts: list[str] = []
    if with_hosts and inventory is not None and row["status"] not in FINAL_ROLLOUT:
        try:
            now = targeting.select(plan.get("target") or row["spec"].get("target", ""), inventory)
            known = {h["host"] for h in hosts}
            new_hosts = [h.name for h in now if h.name not in known]
        except SquallError:
            pass
    gate = row["gate"] if row["gate"] and row["gate"].get("kind") else None
    if gate:
        gate = {k: v for k, v in gate.items() if k not in ("hooks", "key")}
        if gate.get("until"):
            gate["until"] = iso(gate["until"])
    rollback = dict(row["rollback"]) if row["rollback"] else None
    if rollback:
        for key in ("started_at", "ended_at"):
            rollback[key] = _time(rollback.get(key))
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "batch": row["batch"],
        "batch_count": len(batch_views),
        "counts": _counts(overall),
        "budget": {
            "max_failures": budget.get("max_failures"),
            "failures": sum(n for s, n in overall.items() if s in counting),
            "on_breach": budget.get("on_breach"),
        },
        "gate": gate,
        "ending": row["ending"],
        "error": row["error"],
        "user": row["user"],
        "execution": row["execution_id"],
        "batches": batch_views,
        "durations": _duration_stats(durations),
        "failures": [
            {"error": error, "count": len(names), "hosts": names}
            for error, names in sorted(failures.items(), key=lambda kv: -len(kv[1]))
        ],
        "new_hosts": new_hosts,
        "rollback": rollback,
        "analysis": [_analysis_view(run) for run in row["analysis"] or []],
        "outputs": _outputs(conn, rollout_id) if with_hosts else [],
        "log": [
            {"at": iso(e["at"]), "kind": e["kind"], "message": e["message"], "user": e["user"]}
            for e in store.logs(conn, rollout_id)
        ]
        if with_hosts
        else [],
        "has_rollback": bool((row["spec"] or {}).get("rollback")),
        "estimated_seconds": plan.get("estimated_seconds"),
        "created_at": _time(row["created_at"]),
        "started_at": _time(row["started_at"]),
        "ended_at": _time(row["ended_at"]),
    }


def report(conn: Connection, rollout_id: str) -> dict[str, Any]:
    """The final report: the rollout's view, per-batch counts without the
    per-host lists (those are in the view and the hosts' executions)."""
    full = view(conn, rollout_id)
    for batch in full["batches"]:
        batch.pop("hosts", None)
    full.pop("new_hosts", None)
    return full


def _analysis_view(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "gate": run.get("gate"),
        "name": run.get("name"),
        "after_batch": run.get("after_batch"),
        "status": run.get("status"),
        "summary": run.get("summary"),
        "execution": run.get("execution"),
        "measurements": [{**m, "at": _time(m.get("at"))} for m in run.get("measurements") or []],
    }


def _outputs(conn: Connection, rollout_id: str, *, shown: int = 10) -> list[dict[str, Any]]:
    """Identical outputs folded: "812 hosts: active (running)"."""
    return [
        {
            "output": output,
            "count": count,
            "hosts": store.hosts_with_output(conn, rollout_id, output, shown),
        }
        for output, count in store.outputs(conn, rollout_id)
    ]


def _duration_stats(seconds: list[float]) -> dict[str, float] | None:
    """Per-host durations: median, 95th percentile and maximum, in seconds."""
    if not seconds:
        return None
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"count": len(ordered), "median": at(0.5), "p95": at(0.95), "max": at(1.0)}


def _overall(per_batch: Mapping[int, Mapping[str, int]]) -> dict[str, int]:
    """Host counts by status across every batch."""
    overall: dict[str, int] = {}
    for statuses in per_batch.values():
        for status, n in statuses.items():
            overall[status] = overall.get(status, 0) + n
    return overall


def summary(row: dict[str, Any], counts: Mapping[int, Mapping[str, int]]) -> dict[str, Any]:
    overall = _overall(counts)
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "batch": row["batch"],
        "counts": _counts(overall),
        "error": row["error"],
        "created_at": _time(row["created_at"]),
        "ended_at": _time(row["ended_at"]),
    }


def list_view(conn: Connection, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    rows = store.list_(conn, limit=limit, offset=offset)
    counts = store.counts(conn, [r["id"] for r in rows])
    return [summary(r, counts.get(r["id"], {})) for r in rows]


# -- the controller ------------------------------------------------------------------------


class RolloutController:
    def __init__(self, db: Any, bus: Bus, keyring: KeyRing, inventory: Any = None) -> None:
        self.db, self.bus, self.keyring = db, bus, keyring
        self.inventory = inventory  # squall.services.inventory.InventoryService

    async def run(self) -> None:
        await step_refs(
            self.db, self.bus, ROLLOUT, self._step, batch=BATCH, what="rollout controller"
        )

    async def _step(self, rollout_id: str) -> None:
        try:
            await self.db.write(self.step, rollout_id)
        except StoreUnavailable:
            log.warning("rollout %s: database unavailable; will retry", rollout_id)
            await asyncio.sleep(1.0)
        except Exception as exc:
            log.exception("rollout %s: a step failed; stopping the rollout", rollout_id)
            try:
                await self.db.write(_fail_broken, rollout_id, str(exc))
            except Exception:
                log.exception("rollout %s could not be marked failed", rollout_id)

    def step(self, conn: Connection, rollout_id: str) -> None:
        events = store.take_events(conn, rollout_id)
        if not events:
            return
        if any("execution" in e for e in events):
            self._start_execution(conn, rollout_id)
            return
        try:
            row = store.get(conn, rollout_id, lock=True)
        except NotFound:
            return
        if row["status"] in FINAL_ROLLOUT:
            return
        inventory = self.inventory.get() if self.inventory is not None else None
        r = _Rollout(conn, row, self.keyring, inventory)
        r.prefetch(events)
        for event in events:
            r.apply(event)
        r.drive()
        r.save()

    def _start_execution(self, conn: Connection, execution_id: str) -> None:
        """A ``core.rollout`` execution: plan and start its rollout, or fail it."""
        try:
            row = exe_store.get(conn, execution_id)
        except NotFound:
            return
        if row["status"] != Status.SCHEDULED:
            return  # canceled before it started
        params = row["parameters"]
        try:
            data, source = _spec_of(row["action"], params)
            inventory = self.inventory.get() if self.inventory is not None else Inventory()
            inventory = inventory.with_facts(host_store.facts(conn, list(inventory.hosts)))
            rollout = start(
                conn, data, inventory, user=row["user"], source=source, execution_id=row["id"]
            )
        except SquallError as exc:
            result: dict[str, Any] = {"error": exc.message}
            if isinstance(exc, core.RolloutSpecInvalid):
                result["problems"] = [{"path": p.path, "message": p.message} for p in exc.problems]
            events.executions_finished(
                conn, [exe_store.set_status(conn, row, Status.FAILED, result=result)]
            )
            return
        exe_store.set_status(conn, row, Status.RUNNING, extra_context={"rollout_id": rollout["id"]})


def _spec_of(action: dict[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(params.get("spec"), dict):
        return dict(params["spec"]), "spec"
    name = params.get("spec_file")
    if not isinstance(name, str) or not name:
        raise InvalidInput("core.rollout needs 'spec' (an object) or 'spec_file' (a path)")
    pack_dir = action.get("pack_path")
    path = Path(pack_dir or ".") / name
    if pack_dir and not path.resolve().is_relative_to(Path(pack_dir).resolve()):
        raise InvalidInput(f"spec_file {name} is outside the pack")
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read the rollout spec {name}: {exc.strerror or exc}") from None
    return load_spec_text(text, name), name


def finish_execution(conn: Connection, rollout_id: str) -> None:
    """End the ``core.rollout`` execution of a rollout that just ended."""
    row = store.get(conn, rollout_id)
    if not row["execution_id"]:
        return
    try:
        execution = exe_store.get(conn, row["execution_id"])
    except NotFound:
        return
    if Status(execution["status"]) in FINAL:
        return
    result = report(conn, rollout_id)
    if row["status"] == "succeeded":
        status = Status.SUCCEEDED
    elif execution["status"] == Status.CANCELING:
        status = Status.CANCELED
    else:
        status = Status.FAILED
        result["error"] = row["error"] or f"the rollout ended {row['status']}"
    events.executions_finished(conn, [exe_store.set_status(conn, execution, status, result=result)])


def _fail_broken(conn: Connection, rollout_id: str, error: str) -> None:
    store.take_events(conn, rollout_id)
    row = store.get(conn, rollout_id)
    if row["status"] in FINAL_ROLLOUT:
        return
    store.update(
        conn,
        rollout_id,
        status="failed",
        error=f"the rollout controller could not go on: {error}",
        ended_at=time.time(),
    )
    store.skip_pending(conn, rollout_id)
    finish_execution(conn, rollout_id)


class _Rollout:
    """One step's view of a rollout: apply events, then decide what comes next."""

    def __init__(
        self,
        conn: Connection,
        row: dict[str, Any],
        keyring: KeyRing,
        inventory: Inventory | None = None,
    ) -> None:
        self.conn, self.row, self.keyring = conn, row, keyring
        self.id = row["id"]
        self.plan = row["plan"]
        self.budget = self.plan.get("budget") or {}
        self.counting = set(self.budget.get("count_as_failure") or core.FAILURE_STATUSES)
        self.spec = core.parse_spec(row["spec"], row["name"])
        self.inventory = inventory
        self.changes: dict[str, Any] = {}
        self.host_changes: list[dict[str, Any]] = []
        self.hosts_now: dict[str, dict[str, Any]] = {}  # this step's changes to hosts
        self.stored: dict[str, dict[str, Any] | None] = {}  # host rows as read this step
        self.children: dict[str, dict[str, Any]] = {}  # ended executions, read together
        self.now = time.time()

    # -- state ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.changes.get(key, self.row[key])

    def set(self, **values: Any) -> None:
        self.changes.update(values)

    def log(self, kind: str, message: str, user: str | None = None) -> None:
        store.log(self.conn, self.id, kind, message, user)

    def save(self) -> None:
        store.set_hosts(self.conn, self.id, self.host_changes)
        if self.changes:
            store.update(self.conn, self.id, **self.changes)
        if self["status"] in FINAL_ROLLOUT and self.row["execution_id"]:
            finish_execution(self.conn, self.id)
        # Watchers (the stream, the UI) get the rollout's counts after every step.
        counts = _overall(store.counts(self.conn, [self.id]).get(self.id, {}))
        event = {
            "id": self.id,
            "name": self.row["name"],
            "status": self["status"],
            "batch": self["batch"],
            "counts": _counts(counts),
            "error": self["error"],
            "rolling_back": (self["rollback"] or {}).get("state") == "running",
        }
        after_commit(self.conn, "event", ("squall.rollout__update", event))

    @property
    def rolling_back(self) -> bool:
        return (self["rollback"] or {}).get("state") == "running"

    # -- events ----------------------------------------------------------------------------

    def prefetch(self, events: list[dict[str, Any]]) -> None:
        """Read the hosts and executions a step's events name in two queries,
        not two per event: a batch of hundreds of hosts ends in a few steps."""
        hosts = [e["host"] for e in events if e.get("host")]
        if hosts:
            rows = store.hosts_named(self.conn, self.id, hosts)
            self.stored.update({h: rows.get(h) for h in hosts})
        children = [e["child"] for e in events if e.get("child")]
        if children:
            self.children.update(exe_store.get_many(self.conn, children))

    def apply(self, event: dict[str, Any]) -> None:
        if event.get("start"):
            if self["status"] == "planned":
                self.set(status="running", started_at=self.now)
                self.log("started", f"started: {len(self.plan.get('concurrency') or [])} batches")
        elif event.get("child"):
            self._child(event)
        elif event.get("control"):
            self._control(event)
        elif event.get("refused") and event.get("host"):
            self._phase_done(event["host"], event.get("phase") or "action", None)
        elif event.get("wake"):
            gate = self["gate"] or {}
            if gate.get("kind") in ("pause", "window") and self.now >= gate.get("until", 0) - 0.01:
                if gate["kind"] == "pause":
                    self.log("gate", f"soak time after batch {gate.get('after_batch')} is over")
                    self._pass_gate()
                else:
                    self._gate()  # the window may be open: the drive checks it again

    def _control(self, event: dict[str, Any]) -> None:
        action, user = event["control"], event.get("user")
        who = user or "a user"
        if action == "pause" and self["status"] == "running":
            self.set(status="paused")
            self.log("paused", f"paused by {who}", user)
        elif action == "resume" and self["status"] == "paused":
            self.set(status="running")
            self.log("resumed", f"resumed by {who}", user)
            gate = self["gate"] or {}
            if gate.get("kind") == "hold" or (
                gate.get("kind") == "analysis" and gate.get("inconclusive")
            ):
                self._pass_gate()
        elif action == "abort":
            self.log("aborted", f"aborted by {who}", user)
            self._stop("aborted", f"aborted by {who}", cancel=bool(event.get("cancel")))
            if self["status"] == "paused":
                self.set(status="running")  # to wind down
        elif action == "rollback" and not self.rolling_back:
            state = self["rollback"] or {}
            if state.get("state") != "requested":
                self.set(rollback={"state": "requested", "reason": f"requested by {who}"})
            self.log("rollback", f"rollback requested by {who}", user)
            self._stop("aborted", f"rolled back at the request of {who}")
            if self["status"] == "paused":
                self.set(status="running")

    def _child(self, event: dict[str, Any]) -> None:
        child = self.children.get(event["child"])
        if child is None:
            try:
                child = exe_store.get(self.conn, event["child"])
            except NotFound:
                return
        if "analysis" in event:
            self._measured(child, int(event["analysis"]))
        elif "gate" in event:
            self._approval_answered(child, event)
        elif "hook" in event:
            self._hook_done(child, event)
        elif event.get("host"):
            self._phase_done(event["host"], event.get("phase") or "action", child)

    def _approval_answered(self, child: dict[str, Any], event: dict[str, Any]) -> None:
        gate = self["gate"] or {}
        if gate.get("kind") != "approval" or gate.get("inquiry") != child["id"]:
            return
        after = gate["after_batch"]
        if child["status"] == Status.SUCCEEDED:
            response = (child["result"] or {}).get("response") or {}
            who = (child["context"] or {}).get("responded_by") or "someone"
            if response.get("approve"):
                self.log("gate", f"batch {after + 1} approved by {who}", who)
                self._pass_gate()
            else:
                self.log("gate", f"batch {after + 1} refused by {who}", who)
                self._stop("aborted", f"not approved after batch {after} ({who})")
        elif gate.get("on_timeout") == "continue":
            self.log("gate", f"no answer to the approval after batch {after}: going on")
            self._pass_gate()
        else:
            self._stop("aborted", f"no approval after batch {after} in time")

    # -- deciding ----------------------------------------------------------------------------

    def _stop(self, ending: str, error: str, *, cancel: bool = False) -> None:
        if self["ending"]:
            return
        self.set(ending=ending, error=error, gate=None)
        if ending == "failed":
            self.log("stopped", error)
        if cancel or self.budget.get("on_breach") == "cancel":
            for h in store.running(self.conn, self.id):
                if h["execution_id"]:
                    with contextlib.suppress(Conflict, NotFound):
                        exe_service.cancel(self.conn, h["execution_id"], self.row["user"])

    def _pass_gate(self) -> None:
        gate = self["gate"] or {}
        self._gate(after_batch=gate.get("after_batch"), index=gate.get("index", 0) + 1)
        if self["status"] == "paused" and gate.get("kind") in ("hold", "analysis"):
            self.set(status="running")

    def _counts(self) -> dict[int, dict[str, int]]:
        # This step's host changes first, so that the counts are the truth.
        store.set_hosts(self.conn, self.id, self.host_changes)
        self.host_changes = []
        return store.counts(self.conn, [self.id]).get(self.id, {})

    def _gate(self, **values: Any) -> None:
        """Set the gate state, keeping the record of the batch hooks already run."""
        done = (self["gate"] or {}).get("hooks") or []
        self.set(gate={"hooks": done, **values})

    def _finalize(self, status: str) -> None:
        self.set(status=status, ended_at=self.now, gate=None)
        message = f"ended {status}" + (f": {self['error']}" if self["error"] else "")
        self.log("ended", message)
        self._run_hook("on_success" if status == "succeeded" else "on_failure", wait=False)

    def _batch_hook(self, name: str, index: int) -> bool:
        """Run a pre_batch/post_batch hook once per batch (and once per batch
        of a rollback); False while it runs."""
        if getattr(self.spec.hooks, name) is None:
            return True
        key = f"{name}:{index}" + (":rollback" if self.rolling_back else "")
        gate = self["gate"] or {}
        if key in (gate.get("hooks") or []):
            return True
        if gate.get("kind") == name:
            return False  # running
        execution = self._run_hook(name, wait=True)
        if execution is not None:
            self._gate(kind=name, execution=execution, batch=index, key=key)
        return False

    def drive(self) -> None:
        if self["status"] not in ("running", "paused"):
            return
        counts = self._counts()
        if self.rolling_back:
            self._drive_rollback(counts)
            return
        running = sum(c.get("running", 0) for c in counts.values())
        if not self["ending"]:
            self._check_budget(counts)
        if self["ending"]:
            if running == 0:
                store.skip_pending(self.conn, self.id)
                self.stored.clear()
                if self._wants_rollback():
                    self._begin_rollback()
                else:
                    self._finalize(self["ending"])
            return
        if self["status"] == "paused":
            return
        while True:
            index = self["batch"]
            batch = counts.get(index, {})
            pending, in_flight = batch.get("pending", 0), batch.get("running", 0)
            fresh = pending and not in_flight and sum(batch.values()) == pending
            sliding = self.plan.get("mode") == "window"
            if pending and (fresh or sliding) and not self._window_open():
                return
            if fresh and not self._batch_hook("pre_batch", index):
                return
            if pending:
                if fresh:
                    self.log("batch", f"batch {index} started: {pending} hosts")
                concurrency = (self.plan.get("concurrency") or [])[index : index + 1]
                limit = concurrency[0] if concurrency else pending
                room = limit - in_flight
                if room > 0:
                    self._start_hosts(index, room)
                return
            if in_flight:
                return
            if not self._batch_hook("post_batch", index) or not self._gates_passed(index):
                return
            if index + 1 >= len(counts) or index + 1 not in counts:
                self._finalize("succeeded")
                return
            self.set(batch=index + 1, gate=None)

    def _check_budget(self, counts: Mapping[int, Mapping[str, int]]) -> None:
        failures = sum(n for c in counts.values() for s, n in c.items() if s in self.counting)
        limit = self.budget.get("max_failures")
        if limit is not None and failures > limit:
            what = "the first failure" if limit == 0 else f"{failures} failures, more than {limit}"
            self._stop("failed", f"stopped at {what} (failure budget)")
            return
        index = self["batch"]
        limits = self.budget.get("batches") or []
        batch_limit = limits[index] if index < len(limits) else None
        if batch_limit is not None:
            in_batch = sum(n for s, n in counts.get(index, {}).items() if s in self.counting)
            if in_batch > batch_limit:
                self._stop(
                    "failed",
                    f"stopped: {in_batch} failures in batch {index}, more than {batch_limit}",
                )

    def _window_open(self) -> bool:
        """Whether a new batch (or, in window mode, a new host) may start now."""
        windows = self.spec.windows
        if not windows:
            return True
        is_open, when = core.window_state(windows, self.now)
        gate = self["gate"] or {}
        if is_open:
            if gate.get("kind") == "window":
                self.log("gate", "the time window is open")
                self._gate()
            return True
        if gate.get("kind") != "window" or gate.get("until") != when:
            zones = {w.timezone for w in windows}
            zone = zones.pop() if len(zones) == 1 else None
            if math.isfinite(when):
                self._gate(kind="window", until=when, timezone=zone)
                store.send(self.conn, self.id, {"wake": True}, delay=max(0.0, when - self.now))
                self.log("gate", f"outside the time windows: waiting until {iso(when)}")
            else:  # refused when the spec is read; never wait for ever silently
                self._stop("failed", "the time windows never open")
        return False

    def _gates_passed(self, index: int) -> bool:
        """Work through the gates after batch ``index``; False while one holds."""
        gates = (self.plan.get("gates") or [])[index : index + 1]
        gates = gates[0] if gates else []
        state = self["gate"] or {}
        k = state.get("index", 0) if state.get("after_batch") == index else 0
        if state.get("kind"):
            return False  # waiting on it
        while k < len(gates):
            gate = gates[k]
            kind = gate["kind"]
            waiting: dict[str, Any] = {"after_batch": index, "index": k, "kind": kind}
            if kind == "pause":
                waiting["until"] = self.now + float(gate["seconds"])
                store.send(self.conn, self.id, {"wake": True}, delay=float(gate["seconds"]))
                self._gate(**waiting)
                self.log("gate", f"soak time after batch {index}: {gate['seconds']:g} s")
                return False
            if kind == "hold":
                self._gate(**waiting)
                self.set(status="paused")
                self.log("gate", f"held after batch {index}: resume to go on")
                return False
            if kind == "approval":
                inquiry = self._ask(index, k, gate)
                waiting.update(inquiry=inquiry, on_timeout=gate.get("on_timeout", "abort"))
                self._gate(**waiting)
                self.log("gate", f"waiting for approval after batch {index} (inquiry {inquiry})")
                return False
            if kind == "analysis":
                waiting.update(name=gate["analysis"], run=self._begin_analysis(index, k, gate))
                self._gate(**waiting)
                return False
            k += 1  # window gates are checked before each batch starts
        return True

    def _ask(self, index: int, k: int, gate: dict[str, Any]) -> str:
        params: dict[str, Any] = {
            "route": f"rollout:{self.row['name']}",
            "schema": APPROVAL_SCHEMA,
        }
        if gate.get("users"):
            params["users"] = gate["users"]
        if gate.get("roles"):
            params["roles"] = gate["roles"]
        if gate.get("timeout"):
            params["ttl"] = float(gate["timeout"]) / 60.0  # core.ask's ttl is in minutes
        row = exe_service.request(
            self.conn,
            action_ref="core.ask",
            parameters=params,
            user=self.row["user"],
            keyring=self.keyring,
            context={"rollout": {"id": self.id, "gate": k, "batch": index}},
        )
        return str(row["id"])

    # -- metric analysis ---------------------------------------------------------------

    def _analysis_spec(self, name: str) -> core.Analysis:
        return next(a for a in self.spec.analysis if a.name == name)

    def _begin_analysis(self, index: int, k: int, gate: dict[str, Any]) -> int:
        runs = list(self["analysis"] or [])
        run = {
            "gate": gate["gate"],
            "name": gate["analysis"],
            "after_batch": index,
            "status": "running",
            "measurements": [],
            "started_at": self.now,
            "execution": None,
        }
        runs.append(run)
        self.set(analysis=runs)
        self.log("analysis", f"analysis {gate['analysis']} after batch {index} started")
        self._measure(len(runs) - 1, delay=0.0)
        return len(runs) - 1

    def _measure(self, number: int, delay: float) -> None:
        runs = [dict(r) for r in self["analysis"] or []]
        run = runs[number]
        spec = self._analysis_spec(run["name"])
        action, parameters = analysis.measurement_request(spec)
        try:
            row = exe_service.request(
                self.conn,
                action_ref=action,
                parameters=parameters,
                user=self.row["user"],
                keyring=self.keyring,
                context={"rollout": {"id": self.id, "analysis": number}},
                extra_context={
                    "rollout": {
                        "id": self.id,
                        "name": self.row["name"],
                        "batch": run["after_batch"],
                        "started_at": iso(self.row["started_at"] or self.now),
                    }
                },
                delay=delay,
            )
        except SquallError as exc:
            run["execution"] = None
            runs[number] = run
            self.set(analysis=runs)
            measurement = analysis.Measurement(
                at=self.now, value=None, outcome="error", message=exc.message
            )
            self._judge(number, measurement)
            return
        run["execution"] = row["id"]
        runs[number] = run
        self.set(analysis=runs)

    def _measured(self, child: dict[str, Any], number: int) -> None:
        runs = self["analysis"] or []
        if number >= len(runs):
            return
        run = runs[number]
        if run.get("status") != "running" or run.get("execution") != child["id"]:
            return
        spec = self._analysis_spec(run["name"])
        measurement = analysis.measure(spec, str(child["status"]), child.get("result"), self.now)
        self._judge(number, measurement)

    def _judge(self, number: int, measurement: analysis.Measurement) -> None:
        runs = [dict(r) for r in self["analysis"] or []]
        run = runs[number]
        spec = self._analysis_spec(run["name"])
        run["measurements"] = [*run["measurements"], measurement.to_dict()]
        taken = [analysis.Measurement.from_dict(m) for m in run["measurements"]]
        verdict = analysis.verdict(spec, taken)
        run["status"] = verdict
        run["summary"] = analysis.describe(spec, taken)
        runs[number] = run
        self.set(analysis=runs)
        if verdict == "running":
            self._measure(number, delay=spec.interval)
            return
        gate = self["gate"] or {}
        waiting = gate.get("kind") == "analysis" and gate.get("run") == number
        after = run["after_batch"]
        self.log("analysis", f"analysis {run['name']} after batch {after}: {verdict}")
        if verdict == "successful":
            if waiting:
                self._pass_gate()
        elif verdict == "failed":
            self._stop("failed", f"analysis {run['name']} failed after batch {after}")
        elif waiting:  # inconclusive: a human decides
            self._gate(**{**gate, "inconclusive": True})
            self.set(status="paused")
            self.log(
                "gate",
                f"analysis {run['name']} is inconclusive: resume to go on, abort to stop",
            )

    # -- rolling back --------------------------------------------------------------------

    def _wants_rollback(self) -> bool:
        state = self["rollback"] or {}
        if state.get("state") == "requested":
            return True
        automatic = self.spec.rollback is not None and self.spec.rollback.automatic
        return automatic and self["ending"] == "failed" and not state

    def _begin_rollback(self) -> None:
        state = self["rollback"] or {}
        automatic = state.get("state") != "requested"
        reason = state.get("reason") or self["error"] or "requested"
        count = store.mark_undo(self.conn, self.id)
        self.stored.clear()
        undo = store.undo_counts(self.conn, self.id)
        self.set(
            rollback={
                "state": "running",
                "reason": reason,
                "automatic": automatic,
                "batch": max(undo) if undo else 0,
                "started_at": self.now,
                "hosts": count,
            },
            ending=None,
            gate=None,
            status="running",
        )
        how = "automatic rollback" if automatic else "rollback"
        self.log("rollback", f"{how} of {count} hosts, last batch first ({reason})")
        if not count:
            self._end_rollback({})
            return
        self._drive_rollback(self._counts())

    def _drive_rollback(self, counts: Mapping[int, Mapping[str, int]]) -> None:
        running = sum(c.get("running", 0) for c in counts.values())
        if self["ending"]:  # aborted while rolling back
            if running == 0:
                state = {**(self["rollback"] or {}), "state": "done", "ended_at": self.now}
                self.set(rollback=state)
                self._finalize(self["ending"])
            return
        if self["status"] == "paused":
            return
        undo = store.undo_counts(self.conn, self.id)
        while True:
            state = dict(self["rollback"] or {})
            index = int(state.get("batch", 0))
            batch = undo.get(index, {})
            pending, in_flight = batch.get("pending", 0), batch.get("running", 0)
            fresh = pending and not in_flight and sum(batch.values()) == pending
            if fresh and not self._batch_hook("pre_batch", index):
                return
            if pending:
                if fresh:
                    self.log("batch", f"rolling back batch {index}: {pending} hosts")
                concurrency = (self.plan.get("concurrency") or [])[index : index + 1]
                limit = concurrency[0] if concurrency else pending
                room = limit - in_flight
                if room > 0:
                    self._start_undo(index, room)
                return
            if in_flight:
                return
            if batch and not self._batch_hook("post_batch", index):
                return
            lower = [b for b in undo if b < index]
            if not lower:
                self._end_rollback(undo)
                return
            self.set(rollback={**state, "batch": max(lower)}, gate=None)

    def _end_rollback(self, undo: Mapping[int, Mapping[str, int]]) -> None:
        failed = sum(c.get("failed", 0) for c in undo.values())
        self.set(rollback={**(self["rollback"] or {}), "state": "done", "ended_at": self.now})
        if failed:
            self.set(error=f"the rollback failed on {failed} hosts")
            self._finalize("failed")
        else:
            self._finalize("rolled_back")

    def _start_undo(self, index: int, room: int) -> None:
        for host in store.next_undo(self.conn, self.id, index, room):
            self._host(host, status="running", undo="running", tries=0, passes=0, error=None)
            self._pre_host(host)

    # -- a host's phases: preflight, pre_host, action (or rollback), health, post_host --

    def _start_hosts(self, index: int, room: int) -> None:
        for host in store.next_pending(self.conn, self.id, index, room):
            self._host(host, status="running", started_at=self.now, tries=0, passes=0)
            if self.spec.checks.preflight is not None:
                self._check(host, "preflight", self.spec.checks.preflight)
            else:
                self._pre_host(host)

    def _host(self, host: str, **values: Any) -> None:
        self.host_changes.append({"host": host, **values})
        self.hosts_now.setdefault(host, {}).update(values)

    def _host_row(self, host: str) -> dict[str, Any]:
        """The host as it is now: its row with this step's changes."""
        if host not in self.stored:
            self.stored[host] = store.host(self.conn, self.id, host)
        return {**(self.stored[host] or {}), **self.hosts_now.get(host, {})}

    def _pre_host(self, host: str) -> None:
        hook = self.spec.hooks.pre_host
        if hook is not None:
            self._launch(host, "pre_host", hook.action, dict(hook.parameters))
        else:
            self._change(host)

    def _change(self, host: str) -> None:
        """The host's main phase: the action, or its undo while rolling back."""
        if self.rolling_back:
            assert self.spec.rollback is not None
            rollback = self.spec.rollback
            self._launch(host, "rollback", rollback.action, dict(rollback.parameters))
        else:
            self._launch(host, "action", self.spec.action, dict(self.spec.parameters))

    def _launch(
        self, host: str, phase: str, action: str, parameters: dict[str, Any], delay: float = 0
    ) -> None:
        """Run one phase of a host as an execution; its end comes back as an event."""
        if phase in ("action", "rollback"):
            parameters = {**parameters, self.spec.host_parameter: host}
        elif phase in ("preflight", "health") and action == "core.remote":
            parameters["hosts"] = host
        # Hooks name the host themselves, through {{ host.name }} / {{ host.address }}.
        facts = self._host_facts(host)
        if action == "core.tcp":
            parameters["host"] = facts["address"]
        try:
            row = exe_service.request(
                self.conn,
                action_ref=action,
                parameters=parameters,
                user=self.row["user"],
                keyring=self.keyring,
                context={"rollout": {"id": self.id, "host": host, "phase": phase}},
                extra_context={
                    "rollout": {
                        "id": self.id,
                        "name": self.row["name"],
                        "batch": self["batch"],
                        "host": host,
                        "rolling_back": self.rolling_back,
                    },
                    "host": facts,
                },
                delay=delay,
            )
        except SquallError as exc:
            # Nothing will send an event for it: the next step takes it from here.
            self._host(host, phase=phase, execution_id=None, error=exc.message)
            store.send(self.conn, self.id, {"host": host, "phase": phase, "refused": exc.message})
            return
        changes: dict[str, Any] = {"phase": phase, "execution_id": row["id"]}
        if phase == "action":
            changes["changed"] = True
        self._host(host, **changes)

    def _host_facts(self, host: str) -> dict[str, Any]:
        found = self.inventory.hosts.get(host) if self.inventory is not None else None
        if found is None:
            return {"name": host, "address": host}
        return {"name": host, "address": found.address, "facts": dict(found.facts)}

    def _check(self, host: str, phase: str, check: core.Check, delay: float = 0) -> None:
        timeout = max(1, int(check.timeout))
        if check.command is not None:
            params: dict[str, Any] = {"cmd": check.command, "timeout": timeout}
            self._launch(host, phase, "core.remote", params, delay)
        elif check.http is not None:
            params = {"url": check.http.url, "timeout": timeout}
            self._launch(host, phase, "core.http", params, delay)
        elif check.tcp is not None:
            params = {"port": check.tcp.port, "timeout": timeout}
            self._launch(host, phase, "core.tcp", params, delay)

    def _phase_done(self, host: str, phase: str, child: dict[str, Any] | None) -> None:
        row = self._host_row(host)
        if row.get("status") != "running":
            return
        if child is not None and row.get("execution_id") not in (None, child["id"]):
            return  # an old execution of this host
        if phase in ("preflight", "health"):
            check = self.spec.checks.preflight if phase == "preflight" else self.spec.checks.health
            ok, error = _check_passed(child, check)
        elif child is not None:
            status, error = _host_outcome(self.conn, child, host)
            ok = status == "succeeded"
        else:
            status, ok, error = "failed", False, row.get("error")
        if phase == "preflight":
            if ok:
                self._pre_host(host)
            elif check is not None and check.on_fail == "exclude":
                self._finish_host(
                    host, "skipped", f"excluded: the pre-flight check failed: {error}"
                )
            else:
                self._finish_host(host, "failed", f"the pre-flight check failed: {error}")
                self._stop("failed", f"the pre-flight check failed on {host}")
        elif phase == "pre_host":
            if ok:
                self._change(host)
            else:
                self._post(host, "failed", f"the pre_host hook failed: {error}")
        elif phase in ("action", "rollback"):
            if child is not None and phase == "action":
                self._host(host, output=_host_output(child, host))
            if ok and self.spec.checks.health is not None:
                self._host(host, tries=1, passes=0)
                self._check(host, "health", self.spec.checks.health)
            else:
                self._post(host, "succeeded" if ok else status, error)
        elif phase == "health":
            self._health(host, row, ok, error)
        elif phase == "post_host":
            outcome, kept = row.get("outcome") or "failed", row.get("error")
            if not ok and outcome == "succeeded":
                outcome, kept = "failed", f"the post_host hook failed: {error}"
            self._finish_host(host, outcome, kept)

    def _health(self, host: str, row: Mapping[str, Any], ok: bool, error: str | None) -> None:
        check = self.spec.checks.health
        assert check is not None
        tries, passes = int(row.get("tries") or 1), int(row.get("passes") or 0)
        if ok:
            passes += 1
            if passes >= check.successes:
                self._post(host, "succeeded", None)
                return
        else:
            passes = 0
            if tries > check.retries:
                self._post(host, "failed", f"the health check failed {tries} times: {error}")
                return
        self._host(host, tries=tries + 1, passes=passes)
        self._check(host, "health", check, delay=check.interval)

    def _post(self, host: str, outcome: str, error: str | None) -> None:
        """post_host runs whatever happened to the host (finally)."""
        hook = self.spec.hooks.post_host
        if hook is None:
            self._finish_host(host, outcome, error)
            return
        self._host(host, outcome=outcome, error=error)
        self._launch(host, "post_host", hook.action, dict(hook.parameters))

    def _finish_host(self, host: str, status: str, error: str | None) -> None:
        if self._host_row(host).get("undo") == "running":
            if status == "succeeded":
                self._host(host, status="rolled_back", undo="done", error=None, phase=None)
            else:
                failure = f"the rollback failed: {error or status}"
                self._host(host, status="failed", undo="failed", error=failure, phase=None)
            self._host(host, ended_at=self.now)
            return
        self._host(host, status=status, error=error, phase=None, ended_at=self.now)

    # -- rollout-level hooks ---------------------------------------------------------------

    def _run_hook(self, name: str, wait: bool) -> str | None:
        hook = getattr(self.spec.hooks, name)
        if hook is None:
            return None
        try:
            row = exe_service.request(
                self.conn,
                action_ref=hook.action,
                parameters=dict(hook.parameters),
                user=self.row["user"],
                keyring=self.keyring,
                context={"rollout": {"id": self.id, "hook": name}} if wait else {},
                extra_context={
                    "rollout": {
                        "id": self.id,
                        "name": self.row["name"],
                        "batch": self["batch"],
                        "status": self["status"],
                        "error": self["error"],
                        "rolling_back": self.rolling_back,
                    }
                },
            )
        except SquallError as exc:
            if wait:
                self._stop("failed", f"the {name} hook could not start: {exc.message}")
            else:
                log.warning("rollout %s: the %s hook could not start: %s", self.id, name, exc)
            return None
        return str(row["id"])

    def _hook_done(self, child: dict[str, Any], event: dict[str, Any]) -> None:
        gate = self["gate"] or {}
        if gate.get("kind") != event["hook"] or gate.get("execution") != child["id"]:
            return
        if child["status"] == Status.SUCCEEDED:
            key = gate.get("key") or f"{event['hook']}:{gate.get('batch')}"
            self.set(gate={"hooks": [*(gate.get("hooks") or []), key]})
        else:
            error = (
                (child.get("result") or {}).get("error")
                if isinstance(child.get("result"), dict)
                else None
            )
            self._stop("failed", f"the {event['hook']} hook failed: {error or child['status']}")


def _host_output(child: dict[str, Any], host: str) -> str | None:
    """A host's output, short, to fold identical ones together: the command's
    stdout for a remote action, else the action's result."""
    result = child.get("result")
    text: Any = None
    if isinstance(result, dict):
        entry = result.get(host)
        if isinstance(entry, dict) and "stdout" in entry:
            text = entry.get("stdout")
        elif "stdout" in result:
            text = result.get("stdout")
        elif "output" in result:
            text = result.get("output")
    elif result is not None:
        text = result
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        text = json.dumps(text, sort_keys=True, default=str)
    text = text.strip()
    return text[:OUTPUT_CHARS] if text else None


def _check_passed(
    child: dict[str, Any] | None, check: core.Check | None
) -> tuple[bool, str | None]:
    """Whether one run of a check passed, and why not."""
    if child is None or check is None:
        return False, "the check could not run"
    result = child.get("result") if isinstance(child.get("result"), dict) else {}
    if check.http is not None:
        code = result.get("status_code")
        if code != check.http.status:
            return False, f"HTTP status {code}, expected {check.http.status}"
        if check.http.body:
            body = result.get("body")
            text = body if isinstance(body, str) else json.dumps(body)
            if not re.search(check.http.body, text or ""):
                return False, f"the body does not match {check.http.body!r}"
        return True, None
    if child["status"] == Status.SUCCEEDED:
        return True, None
    for entry in result.values():
        if isinstance(entry, dict):
            detail = entry.get("error") or str(entry.get("stderr") or "")[-200:]
            return False, detail or f"exit code {entry.get('return_code')}"
    return False, str(result.get("error") or child["status"])


def _host_outcome(conn: Connection, child: dict[str, Any], host: str) -> tuple[str, str | None]:
    """What a host's execution ending means for the host."""
    status = Status(child["status"])
    result = child.get("result") if isinstance(child.get("result"), dict) else {}
    error = None
    if isinstance(result, dict):
        error = result.get("error")
    if status == Status.SUCCEEDED:
        return "succeeded", None
    if status == Status.CANCELED:
        return "canceled", error or "canceled"
    if status == Status.TIMEOUT:
        return "timeout", error or "the action timed out"
    # A remote action knows whether the host was reachable at all.
    for row in host_store.results(conn, child["id"]):
        if row["host"] == host and row["status"] in _UNREACHABLE:
            return "unreachable", ((row["result"] or {}).get("error") or error)
        if row["host"] == host and row["status"] == "timeout":
            return "timeout", ((row["result"] or {}).get("error") or error)
    if not error and isinstance(result, dict):
        entry = result.get(host)
        if isinstance(entry, dict):
            error = entry.get("error") or (str(entry.get("stderr") or "")[-300:] or None)
            if not error and entry.get("return_code") not in (None, 0):
                error = f"exit code {entry['return_code']}"
    return "failed", error or f"the execution ended {status}"
