"""/api/v1/actions: what can be run, with its parameters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from squall.api.deps import JSON, check_limit, paged, select_attributes, system
from squall.services.executions import parameter_schema
from squall.store import content

router = APIRouter(prefix="/api/v1/actions", tags=["actions"])

_INTERNAL = ("entry_point_path", "pack_path", "python", "metadata_file")


def action_view(meta: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in meta.items() if k not in _INTERNAL}
    view.setdefault("uid", f"action:{meta['pack']}:{meta['name']}")
    view.setdefault("parameters", {})
    view.setdefault("tags", [])
    view.setdefault("notify", {})
    view.setdefault("enabled", True)
    view.setdefault("entry_point", "")
    view.setdefault("description", "")
    return view


@router.get("")
async def list_actions(
    request: Request,
    pack: str | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = Query(0, ge=0, le=1_000_000_000),
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
) -> JSON:
    limit = check_limit(limit, maximum=10000)
    rows, total = await system(request).db.read(
        lambda conn: content.list_actions(conn, pack=pack, name=name, limit=limit, offset=offset)
    )
    return paged(
        [select_attributes(action_view(r), include_attributes, exclude_attributes) for r in rows],
        total,
        limit,
    )


@router.get("/views/overview")
async def overview(
    request: Request,
    pack: str | None = None,
    limit: int = 100,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    return await list_actions(
        request,
        pack=pack,
        limit=limit,
        offset=offset,
        include_attributes=None,
        exclude_attributes=None,
    )


@router.get("/views/overview/{ref_or_id}")
async def overview_one(request: Request, ref_or_id: str) -> JSON:
    return JSON(action_view(await system(request).db.read(content.get_action, ref_or_id)))


@router.get("/views/parameters/{ref_or_id}")
async def parameters_view(request: Request, ref_or_id: str) -> JSON:
    action = await system(request).db.read(content.get_action, ref_or_id)
    return JSON({"parameters": parameter_schema(action)})


@router.get("/{ref_or_id}")
async def get_action(request: Request, ref_or_id: str) -> JSON:
    return JSON(action_view(await system(request).db.read(content.get_action, ref_or_id)))
