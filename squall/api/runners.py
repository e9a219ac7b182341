"""/api/v1/runnertypes: the runners this Squall has."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from squall.api.deps import JSON
from squall.errors import NotFound
from squall.runners.base import RunnerType
from squall.runners.registry import runner_types

router = APIRouter(prefix="/api/v1/runnertypes", tags=["runners"])


_views: dict[str, dict[str, Any]] = {}


def runner_view(meta: RunnerType) -> dict[str, Any]:
    """A runner type as StackStorm shows it (built once per runner: treat as read-only)."""
    view = _views.get(meta.name)
    if view is None:
        view = _views[meta.name] = _build_view(meta)
    return view


def _build_view(meta: RunnerType) -> dict[str, Any]:
    return {
        "id": meta.name,
        "name": meta.name,
        "uid": f"runner_type:{meta.name}",
        "description": meta.description,
        "enabled": meta.enabled,
        "runner_module": meta.runner_module,
        "runner_package": meta.runner_module.split(".")[0],
        "runner_parameters": meta.runner_parameters,
        "output_key": meta.output_key,
        "output_schema": meta.output_schema,
    }


@router.get("")
async def list_runners(name: str | None = None) -> JSON:
    return JSON([runner_view(r) for r in runner_types() if name is None or r.name == name])


@router.get("/{name_or_id}")
async def get_runner(name_or_id: str) -> JSON:
    for r in runner_types():
        if r.name == name_or_id:
            return JSON(runner_view(r))
    raise NotFound(f"no runner type {name_or_id!r}")
