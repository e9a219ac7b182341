"""Per-host results of remote executions, and the facts gathered from hosts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from squall.store.db import bulk
from squall.store.tables import execution_hosts, host_facts


def _upsert_statement(insert: Any, table: sa.Table, keys: list[str], cols: list[str]) -> Any:
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in cols}
    )


_HOSTS_UPSERT = {
    name: _upsert_statement(
        ins, execution_hosts, ["execution_id", "host"], ["status", "result", "updated_at"]
    )
    for name, ins in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_FACTS_UPSERT = {
    name: _upsert_statement(ins, host_facts, ["host"], ["facts", "gathered_at"])
    for name, ins in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def record(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or update host rows: ``{execution_id, host, seq, status, result}``."""
    if not rows:
        return
    now = time.time()
    conn.execute(_HOSTS_UPSERT[conn.dialect.name], bulk([{**r, "updated_at": now} for r in rows]))


def results(
    conn: Connection,
    execution_id: str,
    *,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The execution's host rows in target order, optionally of one status."""
    q = sa.select(
        execution_hosts.c.host,
        execution_hosts.c.seq,
        execution_hosts.c.status,
        execution_hosts.c.result,
        execution_hosts.c.updated_at,
    ).where(execution_hosts.c.execution_id == execution_id)
    if status:
        q = q.where(execution_hosts.c.status == status)
    q = q.order_by(execution_hosts.c.seq).offset(offset)
    if limit:
        q = q.limit(limit)
    return [dict(r._mapping) for r in conn.execute(q).all()]


def summary(conn: Connection, execution_id: str) -> dict[str, int]:
    """How many hosts of the execution are in each status."""
    q = (
        sa.select(execution_hosts.c.status, sa.func.count())
        .where(execution_hosts.c.execution_id == execution_id)
        .group_by(execution_hosts.c.status)
    )
    return {status: int(n) for status, n in conn.execute(q).all()}


def delete_for(conn: Connection, ids: Any) -> None:
    """Forget the host rows of executions being deleted (a list or a select of ids)."""
    conn.execute(execution_hosts.delete().where(execution_hosts.c.execution_id.in_(ids)))


# -- gathered facts ---------------------------------------------------------------------


def save_facts(conn: Connection, facts: Mapping[str, Mapping[str, Any]]) -> None:
    if not facts:
        return
    now = time.time()
    conn.execute(
        _FACTS_UPSERT[conn.dialect.name],
        [{"host": h, "facts": dict(f), "gathered_at": now} for h, f in facts.items()],
    )


def facts(conn: Connection, hosts: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Gathered facts by host name, each with ``gathered_at`` (epoch seconds)."""
    q = sa.select(host_facts.c.host, host_facts.c.facts, host_facts.c.gathered_at)
    if hosts is not None:
        q = q.where(host_facts.c.host.in_(list(hosts)))
    return {h: {**f, "gathered_at": at} for h, f, at in conn.execute(q).all()}
