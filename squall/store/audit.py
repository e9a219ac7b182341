"""The audit trail: recording, sealing into the hash chain, reading, verifying.

A record is written in the transaction of what it records when there is one
(an execution requested, a rollout decision), so it exists exactly when that
happened. The sealer (:func:`seal`) then chains records in the order it sees
them committed; see :mod:`squall.core.audit`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall import masks
from squall.core import audit as chain
from squall.errors import Conflict
from squall.store import fast
from squall.store.tables import audit

# Where sealing takes turns between processes sharing one PostgreSQL.
_SEAL_LOCK = 0x5371_A0D1


_INSERT = fast.Statement(
    audit.insert(),
    column_keys=["at", "actor", "kind", "action", "target", "outcome", "source", "details"],
    deferrable=True,
)


def record(
    conn: Connection,
    *,
    actor: str | None,
    kind: str,
    action: str,
    target: str | None = None,
    outcome: str = "ok",
    source: str | None = None,
    details: dict[str, Any] | None = None,
    at: float | None = None,
) -> None:
    _INSERT.many(
        conn,
        [
            {
                "at": time.time() if at is None else at,
                "actor": (actor or "anonymous")[:255],
                "kind": kind,
                "action": action[:255],
                "target": target[:255] if target else None,
                "outcome": outcome,
                "source": source,
                # Patterns and datastore secrets masked before the record is
                # chained: what is stored is what is exported.
                "details": masks.masker().data(details),
            }
        ],
    )


def seal(conn: Connection, limit: int = 5000) -> int:
    """Chain the next ``limit`` records not sealed yet, oldest first; how
    many were sealed. One sealer at a time: on PostgreSQL others skip this
    round."""
    if conn.dialect.name == "postgresql":
        got = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_SEAL_LOCK))).scalar()
        if not got:
            return 0
    pending = _UNSEALED.rows(conn, {"limit": limit})
    if not pending:
        return 0
    head = _HEAD.rows(conn, {})
    position, prev_hash = (int(head[0][0]), head[0][1]) if head else (0, chain.GENESIS)
    names = _UNSEALED.columns(conn)
    seals = []
    for row in pending:
        position += 1
        prev_hash = chain.seal(prev_hash, position, dict(zip(names, row, strict=True)))
        seals.append({"seq": row[0], "position": position, "hash": prev_hash})
    # ``hash IS NULL``: a record is sealed once, and the row count proves it.
    if conn.dialect.name == "postgresql":
        changed = _SEAL_PG.many(conn, [fast.rows_json(seals)])
    else:
        changed = _SEAL.many(conn, seals)
    if changed != len(seals):
        raise Conflict("audit records were sealed by another sealer meanwhile; retrying")
    return len(seals)


_UNSEALED = fast.Statement(
    sa.select(*(audit.c[name] for name in chain.FIELDS))
    .where(audit.c.hash.is_(None))
    .order_by(audit.c.seq)
    .limit(sa.bindparam("limit"))
)
_HEAD = fast.Statement(
    sa.select(audit.c.position, audit.c.hash)
    .where(audit.c.position.is_not(None))
    .order_by(audit.c.position.desc())
    .limit(1)
)
_V = fast.recordset({"seq": sa.BigInteger, "position": sa.BigInteger, "hash": sa.String})
# A turn's records in one statement on PostgreSQL (see fast.recordset).
_SEAL_PG = fast.Statement(
    audit.update()
    .where(audit.c.seq == _V.c.seq, audit.c.hash.is_(None))
    .values(position=_V.c.position, hash=_V.c.hash)
)
_SEAL = fast.Statement(
    audit.update()
    .where(audit.c.seq == sa.bindparam("seq"), audit.c.hash.is_(None))
    .values(position=sa.bindparam("position"), hash=sa.bindparam("hash"))
)


def _filtered(query: Any, filters: dict[str, Any]) -> Any:
    if filters.get("actor"):
        query = query.where(audit.c.actor == filters["actor"])
    if filters.get("kind"):
        query = query.where(audit.c.kind == filters["kind"])
    if filters.get("target"):
        query = query.where(audit.c.target == filters["target"])
    if filters.get("outcome"):
        query = query.where(audit.c.outcome == filters["outcome"])
    if filters.get("after") is not None:
        query = query.where(audit.c.at >= filters["after"])
    if filters.get("before") is not None:
        query = query.where(audit.c.at < filters["before"])
    if filters.get("search"):
        like = f"%{filters['search']}%"
        query = query.where(audit.c.action.ilike(like) | audit.c.target.ilike(like))
    return query


def query(
    conn: Connection, filters: dict[str, Any], *, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Records matching the filters, newest first, and how many match."""
    rows = conn.execute(
        _filtered(sa.select(audit), filters)
        .order_by(audit.c.seq.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    total = conn.execute(_filtered(sa.select(sa.func.count()).select_from(audit), filters)).scalar()
    return [dict(r._mapping) for r in rows], int(total or 0)


def sealed(conn: Connection, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every sealed record in chain order, read a batch at a time."""
    after = 0
    while True:
        rows = conn.execute(
            sa.select(audit).where(audit.c.position > after).order_by(audit.c.position).limit(batch)
        ).all()
        if not rows:
            return
        for r in rows:
            yield dict(r._mapping)
        after = int(rows[-1].position)


def after(
    conn: Connection, filters: dict[str, Any], seq: int, *, limit: int = 5000
) -> list[dict[str, Any]]:
    """The next ``limit`` matching records after ``seq``, oldest first (an export)."""
    rows = conn.execute(
        _filtered(sa.select(audit), filters)
        .where(audit.c.seq > seq)
        .order_by(audit.c.seq)
        .limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]


def verify(conn: Connection) -> dict[str, Any]:
    result = chain.verify(sealed(conn)).to_dict()
    result["unsealed"] = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(audit).where(audit.c.hash.is_(None))
        ).scalar()
        or 0
    )
    return result
