"""Executions: rows of the ``executions`` table and their output."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from squall.core.executions import Status, check_transition, is_final
from squall.errors import InvalidInput, NotFound
from squall.store import fast, hosts, queue, rollouts, workflows
from squall.store.db import after_commit, bulk
from squall.store.ids import new_id
from squall.store.tables import actions, execution_output, executions, rule_enforcements

SCHEDULE = "schedule"  # work topic: requested executions for the scheduler
RUN = "run"  # work topic: scheduled executions for runner workers


def _row(r: Any) -> dict[str, Any]:
    return dict(r._mapping)


# Hot statements are built once with bound parameters: building a statement
# with literal values costs more than running it.
_INSERT = fast.Statement(
    executions.insert(), column_keys=[c.name for c in executions.c], deferrable=True
)
_BY_ID = fast.Statement(sa.select(executions).where(executions.c.id == sa.bindparam("b_id")))
_SET_STATUS = fast.Statement(
    executions.update()
    .where(executions.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        log=sa.bindparam("b_log", type_=executions.c.log.type),
        result=sa.bindparam("b_result", type_=executions.c.result.type),
        end_timestamp=sa.bindparam("b_end"),
        context=sa.bindparam("b_context", type_=executions.c.context.type),
    )
)


def create(
    conn: Connection,
    *,
    action: dict[str, Any],
    parameters: dict[str, Any],
    context: dict[str, Any],
    user: str | None,
    parent_id: str | None = None,
    delay: float = 0.0,
    schedule: bool = True,
) -> dict[str, Any]:
    """Record a requested execution and queue it for the scheduler.

    With ``schedule=False`` (no policy can hold it back) it is recorded as
    requested and scheduled at once, and queued straight for a runner.
    """
    row = new_row(
        action=action,
        parameters=parameters,
        context=context,
        user=user,
        parent_id=parent_id,
        direct=not schedule and not delay,
    )
    _INSERT.many(conn, [row])
    if row["status"] == Status.SCHEDULED:
        dispatch(conn, [row])
    else:
        queue.enqueue(conn, SCHEDULE, row["id"], delay=delay)
    after_commit(conn, "event", ("st2.execution__create", row))
    return row


def create_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record executions made with :func:`new_row` (no delay) in one statement each."""
    if not rows:
        return
    _INSERT.many(conn, rows)
    dispatch(conn, [r for r in rows if r["status"] == Status.SCHEDULED])
    queue.enqueue_many(conn, SCHEDULE, [r["id"] for r in rows if r["status"] != Status.SCHEDULED])
    for row in rows:
        after_commit(conn, "event", ("st2.execution__create", row))


def dispatch(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Hand scheduled executions to whoever runs them: runner workers, the
    workflow engine for workflows, the rollout controller for rollouts
    (neither runs a process of its own)."""
    run = []
    for r in rows:
        if r["runner_type"] in workflows.WORKFLOW_RUNNERS:
            workflows.send(conn, r["id"], {"start": True})
        elif r["runner_type"] == rollouts.ROLLOUT_RUNNER:
            rollouts.send(conn, r["id"], {"execution": r["id"]})
        else:
            run.append(r["id"])
    queue.enqueue_many(conn, RUN, run)


def new_row(
    *,
    action: dict[str, Any],
    parameters: dict[str, Any],
    context: dict[str, Any],
    user: str | None,
    parent_id: str | None,
    direct: bool,
) -> dict[str, Any]:
    """A requested execution's row; ``direct`` ones are scheduled at once."""
    now = time.time()
    log = [{"status": Status.REQUESTED.value, "timestamp": now}]
    if direct:
        log.append({"status": Status.SCHEDULED.value, "timestamp": now})
    return {
        "id": new_id(),
        "action_ref": action["ref"],
        "runner_type": action["runner_type"],
        "status": (Status.SCHEDULED if direct else Status.REQUESTED).value,
        "action": action,
        "parameters": parameters,
        "result": None,
        "context": context,
        "log": log,
        "parent_id": parent_id,
        "user": user,
        "start_timestamp": now,
        "end_timestamp": None,
        "output_bytes": 0,
    }


def get(conn: Connection, execution_id: str) -> dict[str, Any]:
    found = _BY_ID.dicts(conn, {"b_id": execution_id})
    if not found:
        raise NotFound(f"no execution with id {execution_id!r}")
    return found[0]


def get_many(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(dict.fromkeys(ids))
    found: dict[str, dict[str, Any]] = {}
    while ids:
        chunk, ids = ids[:_IN_MAX], ids[_IN_MAX:]
        size = _in_size(len(chunk))
        # Padded with repeats of the last id to one of a few list sizes, so
        # each size is one statement prepared once.
        values = {f"b_{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
        for r in _by_ids(size).dicts(conn, values):
            found[r["id"]] = r
    return found


_IN_MAX = 256


def _in_size(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


@functools.cache
def _by_ids(size: int) -> fast.Statement:
    binds = [sa.bindparam(f"b_{i}") for i in range(size)]
    return fast.Statement(sa.select(executions).where(executions.c.id.in_(binds)))


UNSET: Any = object()  # "leave the result as it is"


def _transition(
    row: dict[str, Any],
    status: Status,
    result: Any,
    extra_context: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    check_transition(row["status"], status)
    new = {
        **row,
        "status": status.value,
        "log": [*row["log"], {"status": status.value, "timestamp": now}],
    }
    if result is not UNSET:
        new["result"] = result
    if is_final(status):
        new["end_timestamp"] = now
    if extra_context:
        new["context"] = {**row["context"], **extra_context}
    return new


def started(row: dict[str, Any], at: float) -> dict[str, Any]:
    """A scheduled execution's row once a worker started it at ``at``,
    without storing it (see :func:`record_started`)."""
    return _transition(row, Status.RUNNING, UNSET, None, at)


def set_status(
    conn: Connection,
    row: dict[str, Any],
    status: Status,
    *,
    result: Any = UNSET,
    extra_context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move ``row`` (as last read in this transaction) to ``status`` and publish it."""
    return set_status_many(conn, [(row, status, result, extra_context)])[0]


def set_status_many(
    conn: Connection,
    changes: list[tuple[dict[str, Any], Status, Any, dict[str, Any] | None]],
) -> list[dict[str, Any]]:
    """Several ``(row, status, result or UNSET, extra_context)`` changes in one
    statement; each is checked against the lifecycle and published."""
    if not changes:
        return []
    now = time.time()
    done = [
        (row["status"], _transition(row, status, result, extra, now))
        for row, status, result, extra in changes
    ]
    _store(conn, done)
    return [new for _old, new in done]


def record_started(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store that executions a worker started (rows from :func:`started`)
    are running, where their record still says scheduled (one canceled or
    finished meanwhile stays so). Returns the rows stored."""
    current = get_many(conn, (r["id"] for r in rows))
    found = current.get
    changed = [
        (Status.SCHEDULED.value, r)
        for r in rows
        if (c := found(r["id"])) is not None and c["status"] == Status.SCHEDULED
    ]
    _store(conn, changed)
    return [new for _old, new in changed]


def _store(conn: Connection, changed: list[tuple[str, dict[str, Any]]]) -> None:
    """Write status changes ``(previous status, new row)`` and tell whoever
    follows them (the event stream, parent workflows, rollouts)."""
    if not changed:
        return
    if conn.dialect.name == "postgresql" and len(changed) > 1:
        _SET_STATUS_PG.many(conn, [fast.rows_json([_record(new) for _old, new in changed])])
    else:
        _SET_STATUS.many(conn, [_params(new) for _old, new in changed])
    for _old, new in changed:
        after_commit(conn, "event", ("st2.execution__update", new))
    workflows.notify_parents(conn, changed)
    rollouts.notify(conn, (new for _old, new in changed))


def _params(new: dict[str, Any]) -> dict[str, Any]:
    return {
        "b_id": new["id"],
        "b_status": new["status"],
        "b_log": new["log"],
        "b_result": new["result"],
        "b_end": new["end_timestamp"],
        "b_context": new["context"],
    }


def _record(new: dict[str, Any]) -> dict[str, Any]:
    """A status change as a row of :data:`_SET_STATUS_PG`'s recordset."""
    dump = fast.dump_json
    return {
        "id": new["id"],
        "status": new["status"],
        "log": dump(new["log"]),
        "result": dump(new["result"]),
        "end": new["end_timestamp"],
        "context": dump(new["context"]),
    }


_V = fast.recordset(
    {
        "id": sa.String,
        "status": sa.String,
        "log": sa.Text,
        "result": sa.Text,
        "end": sa.Double,
        "context": sa.Text,
    }
)
# Many status changes in one statement on PostgreSQL (see fast.recordset).
_SET_STATUS_PG = fast.Statement(
    executions.update()
    .where(executions.c.id == _V.c.id)
    .values(
        status=_V.c.status,
        log=sa.cast(_V.c.log, JSONB),
        result=sa.cast(_V.c.result, JSONB),
        end_timestamp=_V.c.end,
        context=sa.cast(_V.c.context, JSONB),
    )
)


_SORTABLE = {"start_timestamp", "end_timestamp", "status", "action_ref", "id"}


def _id_prefix(text: str) -> Any:
    """Ids starting with ``text`` (lower-case hex): a range of the primary key."""
    return sa.and_(executions.c.id >= text, executions.c.id < text + "g")


def list_(
    conn: Connection,
    *,
    action: str | None = None,
    status: str | None = None,
    parent: str | None = None,
    user: str | None = None,
    runner: str | None = None,
    rule: str | None = None,
    trigger_instance: str | None = None,
    search: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    offset: int = 0,
    sort_desc: bool = True,
    sort_by: str = "start_timestamp",
    count: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """One page of executions matching the filters, and how many match.

    ``rule`` is a rule's ref (``pack.name``) or, as in StackStorm, its name;
    ``search`` is the list's search box (see :func:`_search`).
    Every filter is served by an index ending in the list's order (see
    ``tables.executions``): the page is read from the index, and only its
    rows are fetched. ``count=False`` skips the count (returned as -1)."""
    if sort_by not in _SORTABLE:
        raise InvalidInput(f"cannot sort by {sort_by!r}: use one of {sorted(_SORTABLE)}")
    where: list[Any] = []
    if action:
        where.append(executions.c.action_ref == action)
    if status:
        where.append(executions.c.status.in_(status.split(",")))
    if parent == "null":
        where.append(executions.c.parent_id.is_(None))
    elif parent:
        where.append(executions.c.parent_id == parent)
    if user:
        where.append(executions.c.user == user)
    if runner:
        where.append(executions.c.runner_type == runner)
    enforced: list[Any] = []
    if rule and "." in rule:
        enforced.append(rule_enforcements.c.rule_ref == rule)
    elif rule:
        enforced.append(rule_enforcements.c.rule_ref.endswith("." + rule))
    if trigger_instance:
        enforced.append(rule_enforcements.c.trigger_instance_id == trigger_instance)
    if search and search.strip():
        where.append(_search(conn, search.strip()))
    if since is not None:
        where.append(executions.c.start_timestamp >= since)
    if until is not None:
        where.append(executions.c.start_timestamp <= until)
    if enforced:
        by_rule = sa.select(rule_enforcements.c.execution_id).where(*enforced)
        where = [*where, executions.c.id.in_(by_rule)]
    page_where = where
    total = -1
    if count:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(executions).where(*where)
        ).scalar()
        if enforced and (total or 0) > _FEW and offset + limit <= _FEW:
            # Many executions from the rule, and one of the first pages: walk
            # the list's order and check each one, rather than sort them all
            # (both use indexes).
            page_where = [
                *page_where[:-1],
                sa.exists().where(rule_enforcements.c.execution_id == executions.c.id, *enforced),
            ]
    col = executions.c[sort_by]
    order = [col.desc(), executions.c.id.desc()] if sort_desc else [col.asc(), executions.c.id]
    # The page's ids first, from an index alone; then only those rows (a
    # deep page no longer reads every row before it).
    page_ids = (
        sa.select(executions.c.id).where(*page_where).order_by(*order).limit(limit).offset(offset)
    )
    rows = conn.execute(
        sa.select(executions).where(executions.c.id.in_(page_ids)).order_by(*order)
    ).all()
    return [_row(r) for r in rows], int(total if total is not None else 0)


_FEW = 1000  # executions of a rule that are still cheap to sort
_MAX_REFS = 1000  # actions a search may match
# At least the 8 digits of an id's second: a shorter prefix matches too much.
_ID_PREFIX = re.compile(r"[0-9a-f]{8,24}")


def _search(conn: Connection, text: str) -> Any:
    """What the list's search box finds: the executions whose id starts with
    ``text`` (8 to 24 hex digits), or else of every action whose ref contains
    ``text`` (any case). The refs are looked up first (the actions table is
    small) and given as a list, so that the action index serves the rest and
    the planner knows how many rows each one has. Actions since removed are
    found by their whole ref."""
    if _ID_PREFIX.fullmatch(text.lower()):
        return _id_prefix(text.lower())
    refs = conn.execute(
        sa.select(actions.c.ref)
        .where(actions.c.ref.icontains(text, autoescape=True))
        .order_by(actions.c.ref)
        .limit(_MAX_REFS)
    ).scalars()
    return executions.c.action_ref.in_(sorted({text, *refs}))


def children(conn: Connection, parent_id: str) -> list[str]:
    rows = conn.execute(
        sa.select(executions.c.id)
        .where(executions.c.parent_id == parent_id)
        .order_by(executions.c.start_timestamp)
    ).all()
    return [r.id for r in rows]


def count_active(
    conn: Connection, action_ref: str, statuses: Iterable[str]
) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(executions.c.id, executions.c.parameters).where(
            executions.c.action_ref == action_ref, executions.c.status.in_(list(statuses))
        )
    ).all()
    return [{"id": r.id, "parameters": r.parameters} for r in rows]


# -- output -------------------------------------------------------------------


_INSERT_OUTPUT = execution_output.insert()
_ADD_OUTPUT_BYTES = (
    executions.update()
    .where(executions.c.id == sa.bindparam("b_id"))
    .values(output_bytes=executions.c.output_bytes + sa.bindparam("b_bytes"))
)

Chunk = tuple[str, str, float]  # (stream, text, timestamp)


@dataclass(frozen=True)
class OutputBatch:
    """New output of one execution, with what the event stream shows of it."""

    execution_id: str
    action_ref: str
    runner_ref: str
    chunks: list[Chunk]
    nbytes: int


def append_output_many(conn: Connection, batches: list[OutputBatch]) -> None:
    """Store output batches and publish every chunk."""
    batches = [b for b in batches if b.chunks]
    if not batches:
        return
    conn.execute(
        _INSERT_OUTPUT,
        [
            {"execution_id": b.execution_id, "stream": s, "data": d, "timestamp": t}
            for b in batches
            for s, d, t in b.chunks
        ],
    )
    conn.execute(
        _ADD_OUTPUT_BYTES, bulk([{"b_id": b.execution_id, "b_bytes": b.nbytes} for b in batches])
    )
    for b in batches:
        for s, d, t in b.chunks:
            after_commit(
                conn,
                "event",
                (
                    "st2.execution.output__create",
                    {
                        "execution_id": b.execution_id,
                        "action_ref": b.action_ref,
                        "runner_ref": b.runner_ref,
                        "output_type": s,
                        "data": d,
                        "timestamp": t,
                    },
                ),
            )


def output(
    conn: Connection, execution_id: str, *, stream: str | None = None, after_seq: int = 0
) -> list[dict[str, Any]]:
    q = sa.select(execution_output).where(
        execution_output.c.execution_id == execution_id, execution_output.c.seq > after_seq
    )
    if stream:
        q = q.where(execution_output.c.stream == stream)
    return [_row(r) for r in conn.execute(q.order_by(execution_output.c.seq)).all()]


def delete_older_than(conn: Connection, cutoff: float) -> int:
    """Delete final executions that ended before ``cutoff``, with their output."""
    old = sa.select(executions.c.id).where(
        executions.c.end_timestamp.is_not(None), executions.c.end_timestamp < cutoff
    )
    conn.execute(execution_output.delete().where(execution_output.c.execution_id.in_(old)))
    workflows.delete_finished(conn, old)
    hosts.delete_for(conn, old)
    return conn.execute(executions.delete().where(executions.c.id.in_(old))).rowcount or 0


def delete_output_older_than(conn: Connection, cutoff: float) -> int:
    return (
        conn.execute(
            execution_output.delete().where(execution_output.c.timestamp < cutoff)
        ).rowcount
        or 0
    )
