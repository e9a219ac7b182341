"""Rollouts and their hosts, and the events that drive the rollout controller."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.core.executions import FINAL, Status
from squall.errors import NotFound
from squall.store import audit, queue
from squall.store.ids import new_id
from squall.store.tables import rollout_hosts, rollout_log, rollouts

ROLLOUT = "rollout"  # the queue topic of the controller's events
ROLLOUT_RUNNER = "rollout"  # core.rollout's runner type
FINAL_ROLLOUT = frozenset({"succeeded", "failed", "aborted", "rolled_back"})


def create(
    conn: Connection,
    *,
    name: str,
    spec: dict[str, Any],
    plan: dict[str, Any],
    batches: Sequence[Sequence[str]],
    user: str | None,
    execution_id: str | None = None,
) -> dict[str, Any]:
    """Record a planned rollout with its host snapshot, and queue its start."""
    rid = new_id()
    now = time.time()
    row = {
        "id": rid,
        "name": name,
        "status": "planned",
        "spec": spec,
        "plan": plan,
        "batch": 0,
        "gate": None,
        "ending": None,
        "error": None,
        "user": user,
        "execution_id": execution_id,
        "rollback": None,
        "analysis": None,
        "created_at": now,
        "started_at": None,
        "ended_at": None,
        "updated_at": now,
    }
    conn.execute(rollouts.insert(), [row])
    hosts = []
    seq = 0
    for index, batch in enumerate(batches):
        for host in batch:
            hosts.append(
                {"rollout_id": rid, "host": host, "batch": index, "seq": seq, "status": "pending"}
            )
            seq += 1
    if hosts:
        conn.execute(rollout_hosts.insert(), hosts)
    send(conn, rid, {"start": True})
    return row


def get(conn: Connection, rollout_id: str, *, lock: bool = False) -> dict[str, Any]:
    q = sa.select(rollouts).where(rollouts.c.id == rollout_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no rollout with id {rollout_id}")
    return dict(row._mapping)


def update(conn: Connection, rollout_id: str, **values: Any) -> None:
    conn.execute(
        rollouts.update()
        .where(rollouts.c.id == rollout_id)
        .values(updated_at=time.time(), **values)
    )


def list_(conn: Connection, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    q = (
        sa.select(rollouts)
        .order_by(rollouts.c.created_at.desc(), rollouts.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [dict(r._mapping) for r in conn.execute(q).all()]


def hosts(conn: Connection, rollout_id: str, *, batch: int | None = None) -> list[dict[str, Any]]:
    q = sa.select(rollout_hosts).where(rollout_hosts.c.rollout_id == rollout_id)
    if batch is not None:
        q = q.where(rollout_hosts.c.batch == batch)
    return [dict(r._mapping) for r in conn.execute(q.order_by(rollout_hosts.c.seq)).all()]


def counts(conn: Connection, rollout_ids: Iterable[str]) -> dict[str, dict[int, dict[str, int]]]:
    """Host counts by status, per batch, per rollout."""
    ids = list(rollout_ids)
    if not ids:
        return {}
    q = (
        sa.select(
            rollout_hosts.c.rollout_id,
            rollout_hosts.c.batch,
            rollout_hosts.c.status,
            sa.func.count(),
        )
        .where(rollout_hosts.c.rollout_id.in_(ids))
        .group_by(rollout_hosts.c.rollout_id, rollout_hosts.c.batch, rollout_hosts.c.status)
    )
    out: dict[str, dict[int, dict[str, int]]] = {}
    for rid, batch, status, n in conn.execute(q).all():
        out.setdefault(rid, {}).setdefault(batch, {})[status] = int(n)
    return out


def host(conn: Connection, rollout_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(rollout_hosts).where(
            rollout_hosts.c.rollout_id == rollout_id, rollout_hosts.c.host == name
        )
    ).first()
    return dict(row._mapping) if row else None


def next_pending(conn: Connection, rollout_id: str, batch: int, limit: int) -> list[str]:
    q = (
        sa.select(rollout_hosts.c.host)
        .where(
            rollout_hosts.c.rollout_id == rollout_id,
            rollout_hosts.c.batch == batch,
            rollout_hosts.c.status == "pending",
        )
        .order_by(rollout_hosts.c.seq)
        .limit(limit)
    )
    return [r.host for r in conn.execute(q).all()]


def running(conn: Connection, rollout_id: str) -> list[dict[str, Any]]:
    q = sa.select(rollout_hosts).where(
        rollout_hosts.c.rollout_id == rollout_id, rollout_hosts.c.status == "running"
    )
    return [dict(r._mapping) for r in conn.execute(q).all()]


def hosts_named(
    conn: Connection, rollout_id: str, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The named hosts' rows, by name (absent names are left out)."""
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(names))
    for i in range(0, len(unique), 500):  # SQLite's bound-parameter limit
        q = sa.select(rollout_hosts).where(
            rollout_hosts.c.rollout_id == rollout_id,
            rollout_hosts.c.host.in_(unique[i : i + 500]),
        )
        found.update({r.host: dict(r._mapping) for r in conn.execute(q).all()})
    return found


def set_hosts(conn: Connection, rollout_id: str, changes: list[dict[str, Any]]) -> None:
    """Update host rows: each change has ``host`` and the columns to set.

    A host's changes are merged into one row update, and updates that set the
    same columns go to the database together (one statement, many rows)."""
    merged: dict[str, dict[str, Any]] = {}
    for change in changes:
        merged.setdefault(change["host"], {}).update(change)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in merged.values():
        by_columns.setdefault(tuple(sorted(values)), []).append(values)
    for columns, rows in by_columns.items():
        settable = [c for c in columns if c != "host"]
        if not settable:
            continue
        statement = (
            rollout_hosts.update()
            .where(
                rollout_hosts.c.rollout_id == sa.bindparam("k_rollout"),
                rollout_hosts.c.host == sa.bindparam("k_host"),
            )
            .values({c: sa.bindparam(f"v_{c}") for c in settable})
        )
        conn.execute(
            statement,
            [
                {"k_rollout": rollout_id, "k_host": r["host"], **{f"v_{c}": r[c] for c in settable}}
                for r in rows
            ],
        )


def skip(conn: Connection, rollout_id: str, names: Sequence[str], error: str) -> list[str]:
    """Mark the given hosts ``skipped`` if they have not started; the ones marked."""
    done = []
    for name in names:
        result = conn.execute(
            rollout_hosts.update()
            .where(
                rollout_hosts.c.rollout_id == rollout_id,
                rollout_hosts.c.host == name,
                rollout_hosts.c.status == "pending",
            )
            .values(status="skipped", error=error, ended_at=time.time())
        )
        if result.rowcount:
            done.append(name)
    return done


def retry(conn: Connection, rollout_id: str, statuses: Sequence[str], *, skipped: bool) -> int:
    """Put hosts that ended with one of ``statuses`` back to ``pending``
    (and, with ``skipped``, the hosts skipped because the rollout stopped:
    not the ones a user skipped or a pre-flight check excluded)."""
    which = rollout_hosts.c.status.in_(list(statuses))
    if skipped:
        which = which | ((rollout_hosts.c.status == "skipped") & rollout_hosts.c.error.is_(None))
    result = conn.execute(
        rollout_hosts.update()
        .where(rollout_hosts.c.rollout_id == rollout_id, which)
        .values(
            status="pending",
            phase=None,
            outcome=None,
            execution_id=None,
            error=None,
            tries=0,
            passes=0,
            started_at=None,
            ended_at=None,
            output=None,
        )
    )
    return int(result.rowcount or 0)


def mark_undo(conn: Connection, rollout_id: str) -> int:
    """Every host the action was started on, and that could be reached, is to be undone."""
    result = conn.execute(
        rollout_hosts.update()
        .where(
            rollout_hosts.c.rollout_id == rollout_id,
            rollout_hosts.c.changed.is_(True),
            rollout_hosts.c.status.not_in(["pending", "skipped", "unreachable", "rolled_back"]),
        )
        .values(undo="pending")
    )
    return int(result.rowcount or 0)


def undo_counts(conn: Connection, rollout_id: str) -> dict[int, dict[str, int]]:
    """Hosts to undo by state (pending, running, done, failed), per batch."""
    q = (
        sa.select(rollout_hosts.c.batch, rollout_hosts.c.undo, sa.func.count())
        .where(rollout_hosts.c.rollout_id == rollout_id, rollout_hosts.c.undo.is_not(None))
        .group_by(rollout_hosts.c.batch, rollout_hosts.c.undo)
    )
    out: dict[int, dict[str, int]] = {}
    for batch, undo, n in conn.execute(q).all():
        out.setdefault(batch, {})[undo] = int(n)
    return out


def next_undo(conn: Connection, rollout_id: str, batch: int, limit: int) -> list[str]:
    """The next hosts of a batch to undo: the last changed first."""
    q = (
        sa.select(rollout_hosts.c.host)
        .where(
            rollout_hosts.c.rollout_id == rollout_id,
            rollout_hosts.c.batch == batch,
            rollout_hosts.c.undo == "pending",
        )
        .order_by(rollout_hosts.c.seq.desc())
        .limit(limit)
    )
    return [r.host for r in conn.execute(q).all()]


def outputs(conn: Connection, rollout_id: str, *, limit: int = 20) -> list[tuple[str, int]]:
    """The hosts' outputs, identical ones counted together, most frequent first."""
    count = sa.func.count().label("n")
    q = (
        sa.select(rollout_hosts.c.output, count)
        .where(rollout_hosts.c.rollout_id == rollout_id, rollout_hosts.c.output.is_not(None))
        .group_by(rollout_hosts.c.output)
        .order_by(count.desc(), rollout_hosts.c.output)
        .limit(limit)
    )
    return [(r.output, int(r.n)) for r in conn.execute(q).all()]


def hosts_with_output(conn: Connection, rollout_id: str, output: str, limit: int) -> list[str]:
    q = (
        sa.select(rollout_hosts.c.host)
        .where(rollout_hosts.c.rollout_id == rollout_id, rollout_hosts.c.output == output)
        .order_by(rollout_hosts.c.seq)
        .limit(limit)
    )
    return [r.host for r in conn.execute(q).all()]


def skip_pending(conn: Connection, rollout_id: str) -> int:
    """Every host never started is ``skipped``."""
    result = conn.execute(
        rollout_hosts.update()
        .where(rollout_hosts.c.rollout_id == rollout_id, rollout_hosts.c.status == "pending")
        .values(status="skipped", ended_at=time.time())
    )
    return int(result.rowcount or 0)


# -- the decision log -------------------------------------------------------------------


def log(
    conn: Connection, rollout_id: str, kind: str, message: str, user: str | None = None
) -> None:
    """Record a decision in the rollout's log, and in the audit trail (the
    user's when someone steered it, the controller's otherwise)."""
    now = time.time()
    conn.execute(
        rollout_log.insert(),
        [{"rollout_id": rollout_id, "at": now, "kind": kind, "message": message, "user": user}],
    )
    audit.record(
        conn,
        actor=user or "rollout-controller",
        kind="rollout",
        action=kind,
        target=rollout_id,
        details={"message": message},
    )


def logs(conn: Connection, rollout_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, oldest first."""
    q = (
        sa.select(rollout_log)
        .where(rollout_log.c.rollout_id == rollout_id)
        .order_by(rollout_log.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in reversed(conn.execute(q).all())]


# -- events --------------------------------------------------------------------------------


def send(conn: Connection, rollout_id: str, event: dict[str, Any], *, delay: float = 0.0) -> None:
    queue.enqueue(conn, ROLLOUT, rollout_id, event, delay=delay)


def notify(conn: Connection, changed: Iterable[dict[str, Any]]) -> None:
    """Tell rollouts about their hosts' executions ending (called by the
    executions repository in the transaction of the change)."""
    for row in changed:
        ctx = row["context"].get("rollout")
        if ctx and Status(row["status"]) in FINAL:
            send(
                conn, ctx["id"], {"child": row["id"], **{k: v for k, v in ctx.items() if k != "id"}}
            )


def take_events(conn: Connection, rollout_id: str) -> list[dict[str, Any]]:
    return queue.take_ref(conn, ROLLOUT, rollout_id)
