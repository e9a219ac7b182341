"""/api/v1/packs: installed content, registration and installation."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from squall.api.deps import JSON, json_body, system
from squall.errors import ContentError, InvalidInput
from squall.services import packs as pack_svc
from squall.store import content

router = APIRouter(prefix="/api/v1/packs", tags=["packs"])


def pack_view(row: dict[str, Any]) -> dict[str, Any]:
    meta = row["meta"]
    return {
        **{k: v for k, v in meta.items() if k not in ("id",)},
        "id": row["id"],
        "ref": row["ref"],
        "name": meta.get("name", row["ref"]),
        "uid": f"pack:{row['ref']}",
        "path": row["path"],
        "files": row["files"],
        "description": meta.get("description", ""),
        "version": str(meta.get("version", "")),
        "author": meta.get("author", ""),
        "email": meta.get("email", ""),
        "keywords": meta.get("keywords", []),
    }


@router.get("")
async def list_packs(request: Request) -> JSON:
    return JSON([pack_view(r) for r in await system(request).db.read(content.list_packs)])


@router.get("/{ref_or_id}")
async def get_pack(request: Request, ref_or_id: str) -> JSON:
    return JSON(pack_view(await system(request).db.read(content.get_pack, ref_or_id)))


@router.post("/register")
async def register(request: Request) -> JSON:
    body = await json_body(request)
    only = body.get("packs") or None
    if only is not None and not (isinstance(only, list) and all(isinstance(p, str) for p in only)):
        raise InvalidInput("'packs' must be a list of pack names")
    sys = system(request)
    report = await pack_svc.register_all(sys.db, sys.settings, only)
    return JSON(report.to_dict())


@router.post("/install")
async def install(request: Request) -> JSON:
    body = await json_body(request)
    sources = body.get("packs")
    if not (isinstance(sources, list) and sources and all(isinstance(p, str) for p in sources)):
        raise InvalidInput("'packs' must be a list of git URLs or paths to install")
    sys = system(request)
    log: list[str] = []
    names = []
    for source in sources:
        name = await asyncio.to_thread(pack_svc.install, source, sys.settings, progress=log.append)
        names.append(name)
    report = await pack_svc.register_all(sys.db, sys.settings, names)
    for name in names:
        target = sys.settings.user_packs_dir / name
        in_use = (await sys.db.read(content.get_pack, name))["path"]
        if in_use != str(target):
            report.errors.append(
                ContentError(
                    str(target),
                    f"pack {name} was installed here, but the copy in {in_use} comes first in the "
                    "packs path and is the one in use",
                )
            )
    return JSON({**report.to_dict(), "installed": names, "log": log})


@router.delete("/{ref}")
async def uninstall(request: Request, ref: str) -> JSON:
    await system(request).db.write(content.unregister_pack, ref)
    return JSON({"unregistered": ref})
