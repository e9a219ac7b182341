"""/stream/v1/stream: live events as server-sent events, like StackStorm's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from squall import masks
from squall.api.deps import system
from squall.api.executions import execution_view
from squall.api.rules import enforcement_view, instance_view
from squall.core.executions import is_final
from squall.core.timestamps import iso
from squall.errors import NotFound
from squall.store import executions as exe_store

router = APIRouter(tags=["stream"])

KEEPALIVE_SECONDS = 20.0


def _payload(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    if name == "st2.execution.output__create":
        return {
            "id": f"{payload['execution_id']}:{payload['timestamp']}",
            "execution_id": payload["execution_id"],
            "output_type": payload["output_type"],
            "data": payload["data"],
            "timestamp": iso(payload["timestamp"]),
            "action_ref": payload.get("action_ref"),
            "runner_ref": payload.get("runner_ref"),
        }
    if name.startswith("st2.execution__"):
        return execution_view(payload)
    if name.startswith("st2.trigger_instance__"):
        return instance_view(payload)
    if name.startswith("st2.rule_enforcement__"):
        return enforcement_view(payload)
    return payload


def _wanted(
    name: str, payload: dict[str, Any], events: set[str], ids: set[str], refs: set[str]
) -> bool:
    if events and name not in events:
        return False
    if ids:
        eid = payload.get("execution_id") or payload.get("id")
        if eid not in ids:
            return False
    return not (refs and payload.get("action_ref") not in refs)


def _is_end(name: str, payload: dict[str, Any], end_event: str | None, end_id: str | None) -> bool:
    if not end_event or name != end_event:
        return False
    if end_id and payload.get("id") != end_id:
        return False
    return not name.startswith("st2.execution__") or is_final(payload.get("status", ""))


@router.get("/stream/v1/stream")
async def stream(
    request: Request,
    events: str | None = None,
    action_refs: str | None = None,
    execution_ids: str | None = None,
    end_event: str | None = None,
    end_execution_id: str | None = None,
) -> StreamingResponse:
    """Server-sent events. With ``end_event`` (and ``end_execution_id``) the
    stream closes after that event, as StackStorm's does for ``st2 execution tail``."""
    sys = system(request)
    sub = sys.bus.subscribe()
    already_final: dict[str, Any] | None = None
    if end_execution_id:
        try:
            row = await sys.db.read(exe_store.get, end_execution_id)
        except NotFound:
            row = None
        if row is not None and is_final(row["status"]):
            already_final = row
    want_events = {e for e in (events or "").split(",") if e}
    want_ids = {e for e in (execution_ids or "").split(",") if e}
    want_refs = {e for e in (action_refs or "").split(",") if e}

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"\n"
            if already_final is not None:
                # It ended before we subscribed: say so now, or a tail would wait forever.
                data = orjson.dumps(masks.masker().data(execution_view(already_final))).decode()
                yield f"event: st2.execution__update\ndata: {data}\n\n".encode()
                return
            while True:
                try:
                    item = await sub.get(timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b"\n"
                    continue
                if item is None:
                    return
                name, payload = item
                if not _wanted(name, payload, want_events, want_ids, want_refs):
                    continue
                data = orjson.dumps(masks.masker().data(_payload(name, payload))).decode()
                yield f"event: {name}\ndata: {data}\n\n".encode()
                if _is_end(name, payload, end_event, end_execution_id):
                    return
        except asyncio.CancelledError:
            raise
        finally:
            sub.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
