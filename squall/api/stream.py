"""/stream/v1/stream: live events as server-sent events, like StackStorm's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from squall.api.deps import current_user, iso, system
from squall.api.executions import execution_view

router = APIRouter(tags=["stream"])

KEEPALIVE_SECONDS = 15.0


def _payload(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    if name == "st2.execution.output__create":
        return {
            "id": f"{payload['execution_id']}:{payload['timestamp']}",
            "execution_id": payload["execution_id"], "output_type": payload["output_type"],
            "data": payload["data"], "timestamp": iso(payload["timestamp"]),
        }
    if name.startswith("st2.execution__"):
        return execution_view(payload)
    return payload


def _wanted(name: str, payload: dict[str, Any], events: set[str], ids: set[str], refs: set[str]) -> bool:
    if events and name not in events:
        return False
    if ids:
        eid = payload.get("execution_id") or payload.get("id")
        if eid not in ids:
            return False
    if refs and name.startswith("st2.execution__") and payload.get("action_ref") not in refs:
        return False
    return True


@router.get("/stream/v1/stream")
async def stream(
    request: Request, events: str | None = None, action_refs: str | None = None,
    execution_ids: str | None = None, _user: str = Depends(current_user),
) -> StreamingResponse:
    sub = system(request).bus.subscribe()
    want_events = {e for e in (events or "").split(",") if e}
    want_ids = {e for e in (execution_ids or "").split(",") if e}
    want_refs = {e for e in (action_refs or "").split(",") if e}

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            while True:
                try:
                    item = await sub.get(timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is None:
                    return
                name, payload = item
                if not _wanted(name, payload, want_events, want_ids, want_refs):
                    continue
                data = orjson.dumps(_payload(name, payload)).decode()
                yield f"event: {name}\ndata: {data}\n\n".encode()
        except asyncio.CancelledError:
            raise
        finally:
            sub.close()

    return StreamingResponse(
        body(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
