"""Sensors: as registered from packs, and what their processes last reported."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.errors import NotFound
from squall.store.db import after_commit
from squall.store.ids import new_id
from squall.store.tables import sensors

# Process states the sensor container reports.
STOPPED = "stopped"  # not running: disabled, or not started yet


def _row(r: Any) -> dict[str, Any]:
    return dict(r._mapping)


def sync_pack(conn: Connection, pack: str, metas: list[dict[str, Any]]) -> None:
    """Replace the sensors of ``pack``; ids, enabled flags set through the
    API and reported states of sensors that stay are kept."""
    old = {r.ref: r for r in conn.execute(sa.select(sensors).where(sensors.c.pack == pack)).all()}
    conn.execute(sensors.delete().where(sensors.c.pack == pack))
    now = time.time()
    for meta in metas:
        prev = old.get(meta["ref"])
        sensor_id = prev.id if prev else new_id()
        conn.execute(
            sensors.insert().values(
                ref=meta["ref"],
                id=sensor_id,
                pack=pack,
                enabled=bool(meta.get("enabled", True)),
                meta={**meta, "id": sensor_id},
                state=prev.state if prev else STOPPED,
                state_info=prev.state_info if prev else {},
                state_at=prev.state_at if prev else now,
            )
        )
    after_commit(conn, "sensors-changed", pack)


def list_(conn: Connection, *, pack: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(sensors).order_by(sensors.c.ref)
    if pack:
        query = query.where(sensors.c.pack == pack)
    return [_row(r) for r in conn.execute(query).all()]


def get(conn: Connection, ref_or_id: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(sensors).where(sa.or_(sensors.c.ref == ref_or_id, sensors.c.id == ref_or_id))
    ).first()
    if r is None:
        raise NotFound(f"no sensor {ref_or_id!r}")
    return _row(r)


def set_enabled(conn: Connection, ref_or_id: str, enabled: bool) -> dict[str, Any]:
    row = get(conn, ref_or_id)
    meta = {**row["meta"], "enabled": enabled}
    conn.execute(
        sensors.update().where(sensors.c.ref == row["ref"]).values(enabled=enabled, meta=meta)
    )
    after_commit(conn, "sensors-changed", row["pack"])
    return {**row, "enabled": enabled, "meta": meta}


def set_state(conn: Connection, ref: str, state: str, info: dict[str, Any]) -> None:
    conn.execute(
        sensors.update()
        .where(sensors.c.ref == ref)
        .values(state=state, state_info=info, state_at=time.time())
    )
