"""The work queue: rows in the ``work`` table, claimed with a lease.

Producers call :func:`enqueue` inside the transaction that makes the work, so
work exists if and only if the state change committed. Consumers :func:`claim`
a batch with a lease, renew it while they work, and :func:`ack` (delete) the
row in the transaction that records the result. A lease that runs out makes
the row claimable again: the consumer then sees, from the state it guards,
that a previous holder died and decides what that means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.store import fast
from squall.store.db import after_commit
from squall.store.tables import work


@dataclass(frozen=True)
class WorkItem:
    id: int
    topic: str
    ref: str
    payload: Any
    attempts: int


_INSERT = fast.Statement(
    work.insert(),
    column_keys=[
        "topic",
        "ref",
        "payload",
        "available_at",
        "lease_owner",
        "lease_expires",
        "attempts",
        "created_at",
    ],
    deferrable=True,
)
_DELETE = fast.Statement(work.delete().where(work.c.id == sa.bindparam("b_id")))
_IDS = fast.recordset({"id": sa.BigInteger})
# Many items in one statement on PostgreSQL (see fast.recordset).
_DELETE_PG = fast.Statement(work.delete().where(work.c.id == _IDS.c.id))


def _claim_statement(postgres: bool) -> Any:
    ready = (
        sa.select(work.c.id)
        .where(
            work.c.topic == sa.bindparam("b_topic"),
            work.c.available_at <= sa.bindparam("b_now"),
            sa.or_(work.c.lease_expires.is_(None), work.c.lease_expires < sa.bindparam("b_now")),
        )
        .order_by(work.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    if postgres:
        ready = ready.with_for_update(skip_locked=True)
    return (
        work.update()
        .where(work.c.id.in_(ready.scalar_subquery()))
        .values(
            lease_owner=sa.bindparam("b_owner"),
            lease_expires=sa.bindparam("b_expires"),
            attempts=work.c.attempts + 1,
        )
        .returning(work.c.id, work.c.topic, work.c.ref, work.c.payload, work.c.attempts)
    )


_CLAIM = {pg: fast.Statement(_claim_statement(pg)) for pg in (False, True)}


def _take_statement(postgres: bool) -> Any:
    due = (
        sa.select(work.c.id)
        .where(
            work.c.topic == sa.bindparam("b_topic"),
            work.c.available_at <= sa.bindparam("b_now"),
            work.c.lease_owner.is_(None),
        )
        .order_by(work.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    if postgres:
        due = due.with_for_update(skip_locked=True)
    return (
        work.delete()
        .where(work.c.id.in_(due.scalar_subquery()))
        .returning(work.c.id, work.c.topic, work.c.ref, work.c.payload, work.c.attempts)
    )


_TAKE = {pg: fast.Statement(_take_statement(pg)) for pg in (False, True)}


def _insert(
    conn: Connection, topic: str, items: list[tuple[str, Any]], *, delay: float, at: float | None
) -> None:
    """Queue ``(ref, payload)`` items in one statement and wake the topic's consumers."""
    now = time.time()
    available = at if at is not None else now + delay
    _INSERT.many(
        conn,
        [
            {
                "topic": topic,
                "ref": ref,
                "payload": payload,
                "available_at": available,
                "lease_owner": None,
                "lease_expires": None,
                "attempts": 0,
                "created_at": now,
            }
            for ref, payload in items
        ],
    )
    after_commit(conn, "wake", topic)


def enqueue(
    conn: Connection,
    topic: str,
    ref: str,
    payload: Any = None,
    *,
    delay: float = 0.0,
    at: float | None = None,
) -> None:
    _insert(conn, topic, [(ref, payload)], delay=delay, at=at)


def claim(
    conn: Connection, topic: str, owner: str, *, limit: int, lease_seconds: float
) -> list[WorkItem]:
    now = time.time()
    rows = _CLAIM[conn.dialect.name == "postgresql"].rows(
        conn,
        {
            "b_topic": topic,
            "b_now": now,
            "b_limit": limit,
            "b_owner": owner,
            "b_expires": now + lease_seconds,
        },
    )
    return sorted((WorkItem(*r) for r in rows), key=lambda w: w.id)


def take(conn: Connection, topic: str, *, limit: int) -> list[WorkItem]:
    """Remove and return due items: for consumers that finish the work in the
    same transaction, so a crash before the commit leaves the items in place
    and no lease is needed."""
    rows = _TAKE[conn.dialect.name == "postgresql"].rows(
        conn, {"b_topic": topic, "b_now": time.time(), "b_limit": limit}
    )
    return sorted((WorkItem(*r) for r in rows), key=lambda w: w.id)


def enqueue_many(conn: Connection, topic: str, refs: list[str], *, delay: float = 0.0) -> None:
    if refs:
        _insert(conn, topic, [(ref, None) for ref in refs], delay=delay, at=None)


def enqueue_each(conn: Connection, topic: str, items: list[tuple[str, Any]]) -> None:
    """Queue one item per ``(ref, payload)``, in this order, in one statement
    (what as many :func:`enqueue` calls would do)."""
    if items:
        _insert(conn, topic, items, delay=0.0, at=None)


def ack(conn: Connection, item_id: int) -> None:
    _DELETE.many(conn, [{"b_id": item_id}])


def ack_many(conn: Connection, item_ids: list[int]) -> None:
    if len(item_ids) > 1 and conn.dialect.name == "postgresql":
        _DELETE_PG.many(conn, [fast.rows_json([{"id": i} for i in item_ids])])
    elif item_ids:
        _DELETE.many(conn, [{"b_id": i} for i in item_ids])


def ack_ref(conn: Connection, topic: str, ref: str) -> None:
    conn.execute(work.delete().where(work.c.topic == topic, work.c.ref == ref))


_SET_PAYLOAD = (
    work.update()
    .where(
        work.c.id == sa.bindparam("b_id"),
        work.c.lease_owner == sa.bindparam("b_owner"),
        work.c.ref == sa.bindparam("b_ref"),
    )
    .values(payload=sa.bindparam("b_payload", type_=work.c.payload.type))
)


def set_payloads(conn: Connection, owner: str, payloads: dict[int, tuple[str, Any]]) -> None:
    """Replace the payload of items ``owner`` holds: ``{item id: (ref, payload)}``.

    The holder and ref are checked because an item acked meanwhile may have
    had its id reused (SQLite reuses the highest rowid) by someone else's work."""
    if payloads:
        conn.execute(
            _SET_PAYLOAD,
            [
                {"b_id": i, "b_owner": owner, "b_ref": ref, "b_payload": p}
                for i, (ref, p) in payloads.items()
            ],
        )


def release(conn: Connection, item_id: int, *, delay: float = 0.0) -> None:
    """Give a claimed item back, to be claimed again after ``delay`` seconds."""
    conn.execute(
        work.update()
        .where(work.c.id == item_id)
        .values(lease_owner=None, lease_expires=None, available_at=time.time() + delay)
    )


def renew(conn: Connection, owner: str, ids: list[int], lease_seconds: float) -> None:
    if ids:
        conn.execute(
            work.update()
            .where(work.c.id.in_(ids), work.c.lease_owner == owner)
            .values(lease_expires=time.time() + lease_seconds)
        )


def expire_leases(conn: Connection) -> int:
    """Make every claim claimable now: used when no other process can hold one."""
    result = conn.execute(
        work.update().where(work.c.lease_owner.is_not(None)).values(lease_expires=0.0)
    )
    return result.rowcount or 0


def next_due(conn: Connection, topic: str) -> float | None:
    """When the earliest item of ``topic`` becomes claimable, if any is waiting."""
    value = _NEXT_DUE.rows(conn, {"b_topic": topic})[0][0]
    return float(value) if value is not None else None


_NEXT_DUE = fast.Statement(
    sa.select(
        sa.func.min(
            sa.case(
                (work.c.lease_expires > work.c.available_at, work.c.lease_expires),
                else_=work.c.available_at,
            )
        )
    ).where(work.c.topic == sa.bindparam("b_topic"))
)


def depth(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(work.c.topic, sa.func.count()).group_by(work.c.topic)).all()
    return {t: n for t, n in rows}


# -- per-ref event streams (the workflow engine, the rollout controller) ----------------

_DUE_REFS = (
    sa.select(work.c.ref, sa.func.min(work.c.id).label("first"))
    .where(work.c.topic == sa.bindparam("b_topic"), work.c.available_at <= sa.bindparam("b_now"))
    .group_by(work.c.ref)
    .order_by(sa.text("first"))
    .limit(sa.bindparam("b_limit"))
)


def due_refs(conn: Connection, topic: str, limit: int) -> list[str]:
    """Refs of ``topic`` with events due now, the longest-waiting first."""
    params = {"b_topic": topic, "b_now": time.time(), "b_limit": limit}
    return [r.ref for r in conn.execute(_DUE_REFS, params)]


_TAKE_REF = fast.Statement(
    work.delete()
    .where(
        work.c.topic == sa.bindparam("b_topic"),
        work.c.ref == sa.bindparam("b_ref"),
        work.c.available_at <= sa.bindparam("b_now"),
    )
    .returning(work.c.id, work.c.payload)
)


def take_ref(conn: Connection, topic: str, ref: str) -> list[dict[str, Any]]:
    """Remove and return the due events of one ref, oldest first; the step
    that consumes them commits or rolls back with their removal."""
    rows = _TAKE_REF.rows(conn, {"b_topic": topic, "b_ref": ref, "b_now": time.time()})
    return [p or {} for _id, p in sorted(rows)]
