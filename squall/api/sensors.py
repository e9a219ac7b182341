"""/api/v1/sensortypes: the pack sensors, and how their processes are doing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from squall.api.deps import JSON, json_body, paged, select_attributes, system
from squall.core.timestamps import iso
from squall.errors import InvalidInput
from squall.store import sensors as sensor_store

router = APIRouter(tags=["sensors"])

_INTERNAL = ("entry_point_path", "pack_path", "python")


def sensor_view(row: dict[str, Any]) -> dict[str, Any]:
    meta = row["meta"]
    view = {k: v for k, v in meta.items() if k not in _INTERNAL and v is not None}
    view.update(
        id=row["id"],
        ref=row["ref"],
        uid=f"sensor_type:{row['pack']}:{meta.get('class_name')}",
        name=meta.get("class_name"),
        pack=row["pack"],
        enabled=row["enabled"],
        artifact_uri=f"file://{meta.get('entry_point_path', '')}",
        trigger_types=meta.get("trigger_types") or [],
    )
    # Squall: the state of the sensor's process, so failures are visible.
    view["status"] = {"state": row["state"], "since": iso(row["state_at"]), **row["state_info"]}
    return view


@router.get("/api/v1/sensortypes")
async def list_sensors(
    request: Request,
    pack: str | None = None,
    name: str | None = None,
    enabled: str | None = None,
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
) -> JSON:
    rows = await system(request).db.read(lambda conn: sensor_store.list_(conn, pack=pack))
    views = [sensor_view(r) for r in rows]
    if name:
        views = [v for v in views if v["name"] == name]
    if enabled is not None:
        flag = enabled.lower() in ("1", "true")
        views = [v for v in views if v["enabled"] == flag]
    views = [select_attributes(v, include_attributes, exclude_attributes) for v in views]
    return paged(views, len(views), len(views))


@router.get("/api/v1/sensortypes/{ref_or_id}")
async def get_sensor(request: Request, ref_or_id: str) -> JSON:
    return JSON(sensor_view(await system(request).db.read(sensor_store.get, ref_or_id)))


@router.put("/api/v1/sensortypes/{ref_or_id}")
async def update_sensor(request: Request, ref_or_id: str) -> JSON:
    """Only ``enabled`` can change, as in StackStorm; the rest of the body is ignored."""
    body = await json_body(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise InvalidInput('"enabled" must be true or false')
    row = await system(request).db.write(sensor_store.set_enabled, ref_or_id, enabled)
    return JSON(sensor_view(row))
