"""Rules, their enforcements, their hygiene windows and the timers they use."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.core import timers
from squall.core.rules import Window
from squall.core.triggers import TIMER_TYPES
from squall.errors import NotFound
from squall.store import fast, queue
from squall.store import triggers as trigger_store
from squall.store.db import after_commit, page, tx_cache
from squall.store.ids import new_id
from squall.store.tables import rule_enforcements, rule_windows, rules, triggers, work

TIMER = "timer"  # work topic: the next firing of a timer trigger (ref = trigger ref)
WINDOW = "rule-window"  # work topic: a throttle/accumulate window closing

# Enforcement statuses: StackStorm's two, and Squall's hygiene outcomes.
SUCCEEDED = "succeeded"
FAILED = "failed"


def _row(r: Any) -> dict[str, Any]:
    return dict(r._mapping)


def changed(conn: Connection) -> None:
    """After any change of rules: a webhook or timer that no rule names any
    more is unregistered (as in StackStorm), timers are brought in line.
    Callers that change many rules at once pass ``refresh=False`` and call
    this once at the end."""
    tx_cache(conn).clear()
    trigger_store.drop_unused_triggers(conn)
    sync_timers(conn)
    after_commit(conn, "rules-changed", None)


# --------------------------------------------------------------------------
# Rules


def put(
    conn: Connection, meta: dict[str, Any], *, source: str | None = None, refresh: bool = True
) -> dict[str, Any]:
    """Create or replace the rule ``meta['ref']``; its id, and its source
    ("pack" or "api") unless one is given, are kept when it exists."""
    old = conn.execute(
        sa.select(rules.c.id, rules.c.source).where(rules.c.ref == meta["ref"])
    ).first()
    rule_id = old.id if old else (meta.get("id") or new_id())
    source = source or (old.source if old else "api")
    meta = {**meta, "id": rule_id}
    trigger_store.ensure_trigger(conn, meta["trigger"]["type"], meta["trigger"]["parameters"])
    values = {
        "ref": meta["ref"],
        "id": rule_id,
        "pack": meta["pack"],
        "name": meta["name"],
        "enabled": bool(meta["enabled"]),
        "trigger_type": meta["trigger"]["type"],
        "trigger_ref": meta["trigger"]["ref"],
        "meta": meta,
        "source": source,
        "updated_at": time.time(),
        "owner": (meta.get("context") or {}).get("user"),
    }
    if old:
        conn.execute(rules.update().where(rules.c.ref == meta["ref"]).values(**values))
    else:
        conn.execute(rules.insert().values(**values))
    conn.execute(rule_windows.delete().where(rule_windows.c.rule_ref == meta["ref"]))
    if refresh:
        changed(conn)
    return meta


def delete(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    meta = get(conn, ref_or_id)
    conn.execute(rules.delete().where(rules.c.ref == meta["ref"]))
    conn.execute(rule_windows.delete().where(rule_windows.c.rule_ref == meta["ref"]))
    changed(conn)
    return meta


def delete_pack_rules(
    conn: Connection, pack: str, keep: Iterable[str] = (), *, refresh: bool = True
) -> list[str]:
    """Remove the pack-loaded rules of ``pack`` other than ``keep``."""
    refs = set(
        conn.execute(
            sa.select(rules.c.ref).where(rules.c.pack == pack, rules.c.source == "pack")
        ).scalars()
    ) - set(keep)
    if refs:
        conn.execute(rules.delete().where(rules.c.ref.in_(refs)))
        conn.execute(rule_windows.delete().where(rule_windows.c.rule_ref.in_(refs)))
        if refresh:
            changed(conn)
    return sorted(refs)


def get(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(rules.c.meta).where(sa.or_(rules.c.ref == ref_or_id, rules.c.id == ref_or_id))
    ).first()
    if r is None:
        raise NotFound(f"no rule {ref_or_id!r}")
    return dict(r.meta)


def list_(
    conn: Connection,
    *,
    pack: str | None = None,
    enabled: bool | None = None,
    trigger_type: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    query = sa.select(rules.c.meta).order_by(rules.c.ref)
    if pack:
        query = query.where(rules.c.pack == pack)
    if enabled is not None:
        query = query.where(rules.c.enabled.is_(enabled))
    if trigger_type:
        query = query.where(rules.c.trigger_type == trigger_type)
    metas = [dict(r.meta) for r in conn.execute(query).all()]
    if action:
        metas = [m for m in metas if m["action"]["ref"] == action]
    return metas


_GENERATION = fast.Statement(
    sa.select(sa.func.count(), sa.func.max(rules.c.updated_at)).select_from(rules)
)


def generation(conn: Connection) -> tuple[int, float]:
    """Changes whenever a rule is created, changed or deleted: a cache key."""
    ((count, latest),) = _GENERATION.rows(conn)
    return int(count), float(latest or 0.0)


# --------------------------------------------------------------------------
# Timers: one queued firing per timer trigger that an enabled rule uses


def sync_timers(conn: Connection, now: float | None = None) -> None:
    now = time.time() if now is None else now
    wanted = {
        r.ref: r
        for r in conn.execute(
            sa.select(triggers.c.ref, triggers.c.type, triggers.c.parameters).where(
                triggers.c.type.in_(TIMER_TYPES),
                triggers.c.ref.in_(sa.select(rules.c.trigger_ref).where(rules.c.enabled.is_(True))),
            )
        ).all()
    }
    queued = set(conn.execute(sa.select(work.c.ref).where(work.c.topic == TIMER)).scalars())
    for ref in queued - set(wanted):
        queue.ack_ref(conn, TIMER, ref)
    for ref in set(wanted) - queued:
        t = wanted[ref]
        at = timers.next_fire(t.type, t.parameters, now)
        if at is not None:
            queue.enqueue(conn, TIMER, ref, {"type": t.type, "parameters": t.parameters}, at=at)


# --------------------------------------------------------------------------
# Enforcements

_INSERT_ENFORCEMENT = fast.Statement(
    rule_enforcements.insert(),
    column_keys=[c.name for c in rule_enforcements.c],
    deferrable=True,
)


def add_enforcements(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    _INSERT_ENFORCEMENT.many(conn, rows)
    for r in rows:
        after_commit(conn, "event", ("st2.rule_enforcement__create", r))


def enforcement(
    rule: Any,
    instance_id: str,
    *,
    status: str,
    execution_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "rule_ref": rule.ref,
        "rule_id": rule.id,
        "trigger_instance_id": instance_id,
        "execution_id": execution_id,
        "status": status,
        "failure_reason": reason,
        "enforced_at": time.time(),
        "details": details,
    }


def get_enforcement(conn: Connection, enforcement_id: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(rule_enforcements).where(rule_enforcements.c.id == enforcement_id)
    ).first()
    if r is None:
        raise NotFound(f"no rule enforcement with id {enforcement_id!r}")
    return _row(r)


def list_enforcements(
    conn: Connection,
    *,
    rule: str | None = None,
    trigger_instance: str | None = None,
    execution: str | None = None,
    status: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    re_ = rule_enforcements
    conds = []
    if rule:
        conds.append(sa.or_(re_.c.rule_ref == rule, re_.c.rule_id == rule))
    if trigger_instance:
        conds.append(re_.c.trigger_instance_id == trigger_instance)
    if execution:
        conds.append(re_.c.execution_id == execution)
    if status:
        conds.append(re_.c.status == status)
    if since is not None:
        conds.append(re_.c.enforced_at > since)
    if until is not None:
        conds.append(re_.c.enforced_at < until)
    return page(conn, re_, conds, [re_.c.enforced_at.desc(), re_.c.id.desc()], limit, offset)


# --------------------------------------------------------------------------
# Hygiene windows


def get_window(conn: Connection, rule_ref: str, group: str) -> Window | None:
    r = conn.execute(
        sa.select(rule_windows).where(
            rule_windows.c.rule_ref == rule_ref, rule_windows.c.group_key == group
        )
    ).first()
    if r is None:
        return None
    return Window(r.opened_at, r.closes_at, r.count, list(r.instances))


def put_window(conn: Connection, rule_ref: str, group: str, window: Window | None) -> None:
    where = (rule_windows.c.rule_ref == rule_ref, rule_windows.c.group_key == group)
    if window is None:
        conn.execute(rule_windows.delete().where(*where))
        return
    values = {
        "opened_at": window.opened_at,
        "closes_at": min(window.closes_at, 1e300),
        "count": window.count,
        "instances": window.instances,
    }
    if conn.execute(rule_windows.update().where(*where).values(**values)).rowcount == 0:
        conn.execute(rule_windows.insert().values(rule_ref=rule_ref, group_key=group, **values))


def delete_stale_windows(conn: Connection, before: float) -> int:
    return int(
        conn.execute(rule_windows.delete().where(rule_windows.c.closes_at < before)).rowcount or 0
    )
