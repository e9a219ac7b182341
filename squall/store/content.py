"""Registered content: packs, actions and policies, as loaded from pack files."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.errors import NotFound
from squall.store import fast
from squall.store.db import tx_cache
from squall.store.ids import new_id
from squall.store.tables import actions, packs, policies, sensors, trigger_types


def _existing_ids(conn: Connection, table: sa.Table, pack: str) -> dict[str, str]:
    rows = conn.execute(sa.select(table.c.ref, table.c.id).where(table.c.pack == pack)).all()
    return {r.ref: r.id for r in rows}


def register_pack(
    conn: Connection,
    *,
    ref: str,
    meta: dict[str, Any],
    path: str,
    config_schema: dict[str, Any] | None,
    config: dict[str, Any] | None,
    files: list[str],
    action_list: list[dict[str, Any]],
    policy_list: list[dict[str, Any]],
) -> dict[str, int]:
    """Replace what is stored for pack ``ref`` with what was loaded. Ids of
    actions that still exist are kept, so references to them stay valid."""
    tx_cache(conn).clear()
    now = time.time()
    old = conn.execute(sa.select(packs.c.id).where(packs.c.ref == ref)).first()
    pack_row = {
        "ref": ref,
        "name": meta.get("name", ref),
        "path": path,
        "meta": meta,
        "config_schema": config_schema,
        "config": config,
        "files": files,
        "registered_at": now,
    }
    if old is None:
        conn.execute(packs.insert().values(id=new_id(), **pack_row))
    else:
        conn.execute(packs.update().where(packs.c.ref == ref).values(**pack_row))

    ids = _existing_ids(conn, actions, ref)
    conn.execute(actions.delete().where(actions.c.pack == ref))
    for a in action_list:
        action_id = ids.get(a["ref"]) or new_id()
        conn.execute(
            actions.insert().values(
                ref=a["ref"],
                id=action_id,
                pack=ref,
                name=a["name"],
                runner_type=a["runner_type"],
                enabled=bool(a.get("enabled", True)),
                meta={**a, "id": action_id},
                updated_at=now,
            )
        )
    pids = _existing_ids(conn, policies, ref)
    conn.execute(policies.delete().where(policies.c.pack == ref))
    for p in policy_list:
        pref = p.get("ref") or f"{ref}.{p['name']}"
        conn.execute(
            policies.insert().values(
                ref=pref,
                id=pids.get(pref) or new_id(),
                pack=ref,
                resource_ref=p["resource_ref"],
                policy_type=p["policy_type"],
                enabled=bool(p.get("enabled", True)),
                meta=p,
            )
        )
    return {"actions": len(action_list), "policies": len(policy_list)}


def unregister_pack(conn: Connection, ref: str) -> None:
    from squall.store import rules as rule_store

    tx_cache(conn).clear()
    conn.execute(actions.delete().where(actions.c.pack == ref))
    conn.execute(policies.delete().where(policies.c.pack == ref))
    conn.execute(trigger_types.delete().where(trigger_types.c.pack == ref))
    conn.execute(sensors.delete().where(sensors.c.pack == ref))
    rule_store.delete_pack_rules(conn, ref)
    if not conn.execute(packs.delete().where(packs.c.ref == ref)).rowcount:
        raise NotFound(f"no pack {ref!r} is registered")


def list_packs(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.select(packs).order_by(packs.c.ref)).all()]


def get_pack(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(packs).where(sa.or_(packs.c.ref == ref_or_id, packs.c.id == ref_or_id))
    ).first()
    if r is None:
        raise NotFound(f"no pack {ref_or_id!r} is registered")
    return dict(r._mapping)


_PACK_CONFIG = sa.select(packs.c.config).where(packs.c.ref == sa.bindparam("b_ref"))
# An action and its enabled policies in one read: running an action needs
# both, and a workflow step or rollout round reads them once per action.
_ACTION = fast.Statement(
    sa.select(actions.c.ref, actions.c.meta, policies.c.meta.label("policy"))
    .select_from(
        actions.outerjoin(
            policies,
            sa.and_(policies.c.resource_ref == actions.c.ref, policies.c.enabled.is_(True)),
        )
    )
    .where(sa.or_(actions.c.ref == sa.bindparam("b_ref"), actions.c.id == sa.bindparam("b_ref")))
)
_POLICIES = sa.select(policies.c.meta).where(
    policies.c.resource_ref == sa.bindparam("b_ref"), policies.c.enabled.is_(True)
)


def pack_config(conn: Connection, ref: str) -> dict[str, Any]:
    r = conn.execute(_PACK_CONFIG, {"b_ref": ref}).first()
    return dict(r.config or {}) if r else {}


def get_action(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    cache = tx_cache(conn)
    key = ("action", ref_or_id)
    if key not in cache:
        rows = _ACTION.rows(conn, {"b_ref": ref_or_id})
        if not rows:
            raise NotFound(f"no action {ref_or_id!r}: check the name, or register its pack")
        ref, meta, _ = rows[0]
        cache[key] = meta
        cache[("policies", ref)] = [policy for _, _, policy in rows if policy is not None]
    return dict(cache[key])


def list_actions(
    conn: Connection,
    *,
    pack: str | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    where = []
    if pack:
        where.append(actions.c.pack == pack)
    if name:
        where.append(actions.c.name == name)
    total = (
        conn.execute(sa.select(sa.func.count()).select_from(actions).where(*where)).scalar() or 0
    )
    rows = conn.execute(
        sa.select(actions.c.meta).where(*where).order_by(actions.c.ref).limit(limit).offset(offset)
    ).all()
    return [dict(r.meta) for r in rows], int(total)


def policies_for(conn: Connection, action_ref: str) -> list[dict[str, Any]]:
    cache = tx_cache(conn)
    key = ("policies", action_ref)
    if key not in cache:
        cache[key] = [r.meta for r in conn.execute(_POLICIES, {"b_ref": action_ref}).all()]
    return [dict(m) for m in cache[key]]
