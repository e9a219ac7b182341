"""Workflows: their definitions, their conductors' records, and the work
items that wake the workflow engine.

A workflow's state is the set of records its conductor emitted
(core/workflow.py), one row each, keyed by ``(execution_id, kind, key)``.
Each engine step writes the records it changed and bumps the workflow's
``version`` in the same transaction as the events it consumed and the child
executions it created.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from squall.core.executions import Status
from squall.core.workflow import Changes
from squall.store import fast, queue
from squall.store.tables import workflow_records, workflow_specs, workflows

WORKFLOW = "workflow"  # work topic: events for the workflow engine, ref = workflow execution id
WORKFLOW_RUNNERS = frozenset({"orquesta", "action-chain"})

# Child statuses a parent workflow reacts to. "running" matters only when a
# child comes back from pending or paused; a first start is not worth a step.
_NOTIFY = frozenset(
    {
        Status.PENDING,
        Status.PAUSING,
        Status.PAUSED,
        Status.RESUMING,
        Status.CANCELING,
        Status.SUCCEEDED,
        Status.FAILED,
        Status.TIMEOUT,
        Status.CANCELED,
        Status.ABANDONED,
    }
)
_BACK = frozenset({Status.PENDING, Status.PAUSED, Status.RESUMING})


def spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def save_spec(conn: Connection, kind: str, text: str) -> str:
    digest = spec_hash(text)
    found = conn.execute(
        sa.select(workflow_specs.c.hash).where(workflow_specs.c.hash == digest)
    ).first()
    if found is None:
        values = {"hash": digest, "kind": kind, "text": text, "created_at": time.time()}
        if conn.dialect.name == "postgresql":
            # Writers run side by side there: two workflows of one definition
            # starting at once both find it missing; the same text is stored once.
            from sqlalchemy.dialects.postgresql import insert

            conn.execute(insert(workflow_specs).values(**values).on_conflict_do_nothing())
        else:
            conn.execute(workflow_specs.insert().values(**values))
    return digest


def spec_text(conn: Connection, digest: str) -> str:
    text = conn.execute(
        sa.select(workflow_specs.c.text).where(workflow_specs.c.hash == digest)
    ).scalar()
    return str(text or "")


def create(conn: Connection, execution_id: str, kind: str, digest: str) -> None:
    now = time.time()
    conn.execute(
        workflows.insert().values(
            execution_id=execution_id,
            kind=kind,
            spec_hash=digest,
            version=1,  # its first step
            created_at=now,
            updated_at=now,
        )
    )


# Statements a step runs are built once, with bound parameters: building one
# costs more than running it, and a step runs several.
_GET = sa.select(workflows).where(workflows.c.execution_id == sa.bindparam("b_id"))


def get(conn: Connection, execution_id: str) -> dict[str, Any] | None:
    row = conn.execute(_GET, {"b_id": execution_id}).first()
    return dict(row._mapping) if row is not None else None


_BEGIN_STEP = fast.Statement(
    workflows.update()
    .where(workflows.c.execution_id == sa.bindparam("b_id"))
    .values(version=workflows.c.version + 1, updated_at=sa.bindparam("b_now"))
    .returning(*workflows.c)
)


def begin_step(conn: Connection, execution_id: str) -> dict[str, Any] | None:
    """Move the workflow to its next version and return it (None: no such
    workflow yet). A step's first statement: on PostgreSQL the update also
    holds the row, so steps of one workflow in several engines take turns,
    and a step that rolls back leaves the version as it was."""
    found = _BEGIN_STEP.dicts(conn, {"b_id": execution_id, "b_now": time.time()})
    return found[0] if found else None


def load_records(conn: Connection, execution_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    records: dict[str, dict[str, dict[str, Any]]] = {}
    rows = conn.execute(
        sa.select(workflow_records.c.kind, workflow_records.c.key, workflow_records.c.value).where(
            workflow_records.c.execution_id == execution_id
        )
    )
    for kind, key, value in rows:
        records.setdefault(kind, {})[key] = value
    return records


def records_of(conn: Connection, execution_id: str, kind: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        sa.select(workflow_records.c.key, workflow_records.c.value).where(
            workflow_records.c.execution_id == execution_id, workflow_records.c.kind == kind
        )
    )
    return {key: value for key, value in rows}


def _upsert_statement(insert: Any) -> Any:
    stmt = insert(workflow_records)
    return stmt.on_conflict_do_update(
        index_elements=["execution_id", "kind", "key"], set_={"value": stmt.excluded.value}
    )


_UPSERT = {
    "postgresql": fast.Statement(_upsert_statement(postgresql.insert)),
    "sqlite": fast.Statement(_upsert_statement(sqlite.insert)),
}


def _upsert(conn: Connection) -> Any:
    return _UPSERT[conn.dialect.name]


_DELETE = fast.Statement(
    workflow_records.delete().where(
        workflow_records.c.execution_id == sa.bindparam("b_id"),
        workflow_records.c.kind == sa.bindparam("b_kind"),
        workflow_records.c.key == sa.bindparam("b_key"),
    )
)


def write(conn: Connection, execution_id: str, changes: Changes) -> None:
    """Store what a step changed (the step began with :func:`begin_step`)."""
    puts, deletes = [], []
    for kind, recs in changes.records.items():
        for key, value in recs.items():
            if value is None:
                deletes.append({"b_id": execution_id, "b_kind": kind, "b_key": key})
            else:
                puts.append(
                    {"execution_id": execution_id, "kind": kind, "key": key, "value": value}
                )
    if puts:
        _upsert(conn).many(conn, puts)
    if deletes:
        _DELETE.many(conn, deletes)


def copy_records(conn: Connection, source: str, target: str) -> None:
    """Give a re-run the state of the run it continues."""
    rows = conn.execute(
        sa.select(workflow_records.c.kind, workflow_records.c.key, workflow_records.c.value).where(
            workflow_records.c.execution_id == source
        )
    ).all()
    if rows:
        conn.execute(
            workflow_records.insert(),
            [{"execution_id": target, "kind": k, "key": key, "value": v} for k, key, v in rows],
        )


def delete_finished(conn: Connection, ids: Any) -> None:
    """Forget the state of workflows whose executions are being deleted
    (``ids``: a list or a select of execution ids)."""
    conn.execute(workflow_records.delete().where(workflow_records.c.execution_id.in_(ids)))
    conn.execute(workflows.delete().where(workflows.c.execution_id.in_(ids)))


# -- events for the engine --------------------------------------------------------------


def send(conn: Connection, execution_id: str, event: dict[str, Any], *, delay: float = 0.0) -> None:
    queue.enqueue(conn, WORKFLOW, execution_id, event, delay=delay)


def notify_parents(conn: Connection, changed: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Tell parent workflows about their children's status changes.

    ``changed`` holds ``(previous status, new row)``; called by the
    executions repository in the transaction of the change, so a workflow
    never misses (or imagines) a child's result."""
    for old, row in changed:
        parent = (row["context"].get("workflow") or {}).get("execution_id")
        if not parent:
            continue
        status = Status(row["status"])
        if status in _NOTIFY or (status == Status.RUNNING and old in _BACK):
            send(conn, parent, {"child": row["id"]})


def take_events(conn: Connection, execution_id: str) -> list[dict[str, Any]]:
    """Remove and return a workflow's due events, oldest first; the step
    that consumes them commits or rolls back with their removal."""
    return queue.take_ref(conn, WORKFLOW, execution_id)


def write_result(conn: Connection, execution_id: str, seq: int, item: int, result: Any) -> None:
    """Keep the result of one with-items item (read back by :func:`records_of`)."""
    _upsert(conn).many(
        conn,
        [
            {
                "execution_id": execution_id,
                "kind": f"result:{seq}",
                "key": str(item),
                "value": {"result": result},
            }
        ],
    )
