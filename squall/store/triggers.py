"""Trigger types, triggers and trigger instances (events)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.core import triggers as core_triggers
from squall.errors import InvalidInput, NotFound
from squall.store import fast
from squall.store.db import after_commit, page, tx_cache
from squall.store.ids import new_id
from squall.store.tables import rules, trigger_instances, trigger_types, triggers

RULES = "rules"  # wake-up topic of the rules engine

# Trigger instance statuses, as StackStorm names them.
PENDING = "pending"  # stored, not yet looked at by the rules engine
PROCESSED = "processed"
PROCESSING_FAILED = "processing_failed"
REJECTED = "rejected"  # Squall: a webhook call that failed authentication


def _row(r: Any) -> dict[str, Any]:
    return dict(r._mapping)


# --------------------------------------------------------------------------
# Trigger types


def type_row(meta: dict[str, Any]) -> dict[str, Any]:
    return {"ref": meta["ref"], "pack": meta["pack"], "name": meta["name"], "meta": meta}


def sync_types(conn: Connection, pack: str, types: list[dict[str, Any]]) -> None:
    """Replace the trigger types of ``pack``, keeping the ids of those that stay."""
    tx_cache(conn).clear()
    old = dict(
        conn.execute(
            sa.select(trigger_types.c.ref, trigger_types.c.id).where(trigger_types.c.pack == pack)
        ).all()
    )
    conn.execute(
        trigger_types.delete().where(
            trigger_types.c.pack == pack, trigger_types.c.ref.not_in(core_triggers.BUILTIN_REFS)
        )
    )
    for meta in types:
        if meta["ref"] in core_triggers.BUILTIN_REFS:
            continue  # a pack cannot replace a built-in trigger type
        type_id = old.get(meta["ref"]) or new_id()
        conn.execute(trigger_types.insert().values(id=type_id, **type_row({**meta, "id": type_id})))


def ensure_builtin_types(conn: Connection) -> None:
    have = set(
        conn.execute(sa.select(trigger_types.c.ref).where(trigger_types.c.pack == "core")).scalars()
    )
    for meta in core_triggers.BUILTIN_TRIGGER_TYPES:
        if meta["ref"] not in have:
            type_id = new_id()
            conn.execute(
                trigger_types.insert().values(id=type_id, **type_row({**meta, "id": type_id}))
            )


def get_type(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    cache = tx_cache(conn)
    key = ("trigger_type", ref_or_id)
    if key not in cache:
        r = conn.execute(
            sa.select(trigger_types.c.meta).where(
                sa.or_(trigger_types.c.ref == ref_or_id, trigger_types.c.id == ref_or_id)
            )
        ).first()
        if r is None:
            raise NotFound(f"no trigger type {ref_or_id!r} is registered")
        cache[key] = r.meta
    return dict(cache[key])


def type_of_trigger(conn: Connection, ref: str) -> dict[str, Any]:
    """The trigger type of trigger ``ref`` (a trigger type without parameters
    is its own trigger); :class:`InvalidInput` when there is none."""
    try:
        type_ref = get_trigger(conn, ref)["type"]
    except NotFound:
        type_ref = ref
    try:
        return get_type(conn, type_ref)
    except NotFound:
        raise InvalidInput(f"trigger {ref!r} is not registered") from None


def list_types(conn: Connection, pack: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(trigger_types.c.meta).order_by(trigger_types.c.ref)
    if pack:
        query = query.where(trigger_types.c.pack == pack)
    return [r.meta for r in conn.execute(query).all()]


# --------------------------------------------------------------------------
# Triggers


def ensure_trigger(conn: Connection, type_ref: str, parameters: dict[str, Any]) -> dict[str, Any]:
    ref = core_triggers.trigger_ref(type_ref, parameters)
    r = conn.execute(sa.select(triggers).where(triggers.c.ref == ref)).first()
    if r is not None:
        return _row(r)
    row = {
        "ref": ref,
        "id": new_id(),
        "type": type_ref,
        "pack": type_ref.split(".", 1)[0],
        "parameters": parameters,
    }
    conn.execute(triggers.insert().values(**row))
    return row


def drop_unused_triggers(conn: Connection) -> None:
    """Forget parameterised triggers that no rule names any more."""
    used = sa.select(rules.c.trigger_ref)
    conn.execute(
        triggers.delete().where(triggers.c.ref.not_in(used), triggers.c.ref != triggers.c.type)
    )


def get_trigger(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(triggers).where(sa.or_(triggers.c.ref == ref_or_id, triggers.c.id == ref_or_id))
    ).first()
    if r is None:
        raise NotFound(f"no trigger {ref_or_id!r}")
    return _row(r)


def list_triggers(conn: Connection, type_ref: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(triggers).order_by(triggers.c.ref)
    if type_ref:
        query = query.where(triggers.c.type == type_ref)
    return [_row(r) for r in conn.execute(query).all()]


def webhook_triggers(conn: Connection, url: str) -> list[dict[str, Any]]:
    """The triggers (of rules) listening at webhook ``url``."""
    wanted = core_triggers.webhook_url(url)
    return [
        t
        for t in list_triggers(conn, core_triggers.WEBHOOK)
        if core_triggers.webhook_url(str(t["parameters"].get("url", ""))) == wanted
    ]


_LISTENED = fast.Statement(
    sa.select(rules.c.ref)
    .where(rules.c.trigger_type == sa.bindparam("b_type"), rules.c.enabled.is_(True))
    .limit(1)
)


def listened(conn: Connection, type_ref: str) -> bool:
    """Whether an enabled rule listens to a trigger of this type."""
    cache = tx_cache(conn)
    key = ("listened", type_ref)
    if key not in cache:
        cache[key] = bool(_LISTENED.rows(conn, {"b_type": type_ref}))
    return bool(cache[key])


# --------------------------------------------------------------------------
# Trigger instances

_INSERT_INSTANCE = fast.Statement(
    trigger_instances.insert(),
    column_keys=[c.name for c in trigger_instances.c],
    deferrable=True,
)


def create_instances(
    conn: Connection,
    events: Iterable[tuple[str, Any, dict[str, Any] | None]],
    *,
    status: str = PENDING,
    at: float | None = None,
) -> list[dict[str, Any]]:
    """Store events ``(trigger ref, payload, context)`` that occurred ``at``
    (default: now). A pending instance is its own work item: the rules
    engine takes pending instances in id (that is, arrival) order, so no
    queue row is needed."""
    now = time.time() if at is None else at
    rows = [
        {
            "id": new_id(),
            "trigger": trigger,
            "payload": payload,
            "status": status,
            "occurrence_time": now,
            "context": context,
        }
        for trigger, payload, context in events
    ]
    if not rows:
        return rows
    _INSERT_INSTANCE.many(conn, rows)
    if status == PENDING:
        after_commit(conn, "wake", RULES)
    for r in rows:
        after_commit(conn, "event", ("st2.trigger_instance__create", r))
    return rows


def create_instance(
    conn: Connection,
    trigger: str,
    payload: Any,
    context: dict[str, Any] | None = None,
    *,
    status: str = PENDING,
    at: float | None = None,
) -> dict[str, Any]:
    return create_instances(conn, [(trigger, payload, context)], status=status, at=at)[0]


def _pending_statement(postgres: bool) -> Any:
    ti = trigger_instances
    query = (
        sa.select(ti.c.id, ti.c.trigger, ti.c.payload)
        .where(ti.c.status == PENDING)
        .order_by(ti.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    return query.with_for_update(skip_locked=True) if postgres else query


_PENDING = {pg: fast.Statement(_pending_statement(pg)) for pg in (False, True)}


def take_pending(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest pending instances, locked for this transaction (which must
    set their status before it commits)."""
    return _PENDING[conn.dialect.name == "postgresql"].dicts(conn, {"b_limit": limit})


def get_instance(conn: Connection, instance_id: str) -> dict[str, Any]:
    ti = trigger_instances
    r = conn.execute(sa.select(ti).where(ti.c.id == instance_id)).first()
    if r is None:
        raise NotFound(f"no trigger instance with id {instance_id!r}")
    return _row(r)


def get_instances(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(trigger_instances).where(trigger_instances.c.id.in_(ids))).all()
    return {r.id: _row(r) for r in rows}


_SET_STATUS = fast.Statement(
    trigger_instances.update()
    .where(trigger_instances.c.id == sa.bindparam("b_id"))
    .values(status=sa.bindparam("b_status"))
)


def set_statuses(conn: Connection, statuses: dict[str, str]) -> None:
    if statuses:
        _SET_STATUS.many(conn, [{"b_id": i, "b_status": s} for i, s in statuses.items()])


def list_instances(
    conn: Connection,
    *,
    trigger: str | None = None,
    trigger_type: str | None = None,
    status: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Newest first. ``trigger`` may also name a trigger type (all its triggers)."""
    ti = trigger_instances
    conds = []
    for ref in (trigger, trigger_type):
        if ref:
            of_type = sa.select(triggers.c.ref).where(triggers.c.type == ref)
            conds.append(sa.or_(ti.c.trigger == ref, ti.c.trigger.in_(of_type)))
    if status:
        conds.append(ti.c.status == status)
    if since is not None:
        conds.append(ti.c.occurrence_time > since)
    if until is not None:
        conds.append(ti.c.occurrence_time < until)
    order = [ti.c.occurrence_time.desc(), ti.c.id.desc()]
    return page(conn, ti, conds, order, limit, offset)
