"""/api/v1/audit: the audit trail — who did what, when — and its check.

    GET /api/v1/audit          newest first; actor, kind, target, outcome, after, before, search
    GET /api/v1/audit/verify   walk the hash chain: {ok, records, unsealed, head, problem}
    GET /api/v1/audit/export   JSON lines, oldest first (the same filters), for a SIEM

:class:`AuditCalls` records every API call that changes something (and every
refused one) once it has been answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from squall.api.deps import JSON, OWN_AUTH_PREFIXES, check_limit, paged, system
from squall.core.timestamps import iso
from squall.errors import InvalidInput
from squall.services.audit import record_call
from squall.store import audit as store

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes that write their own, richer record (sign-in; identities and roles
# when they succeed).
SELF_RECORDED = ("/auth/v1/tokens",)
SELF_RECORDED_PREFIXES = ("/api/v1/users", "/api/v1/apikeys", "/api/v1/rbac/assignments")
# An execution requested is recorded (who, what, from where) in the
# transaction that requests it; a second record of the call would only add
# its status, at the cost of another write on the busiest route.
RECORDED_BY_RESULT = frozenset({("POST", "/api/v1/executions")})


def record_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "at": iso(row["at"]),
        "actor": row["actor"],
        "kind": row["kind"],
        "action": row["action"],
        "target": row["target"],
        "outcome": row["outcome"],
        "source": row["source"],
        "details": row["details"],
        "sealed": row["hash"] is not None,
        "position": row["position"],
        "hash": row["hash"],
    }


def _time(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, not {value!r}") from None


def _filters(
    actor: str | None,
    kind: str | None,
    target: str | None,
    outcome: str | None,
    after: str | None,
    before: str | None,
    search: str | None,
) -> dict[str, Any]:
    return {
        "actor": actor,
        "kind": kind,
        "target": target,
        "outcome": outcome,
        "after": _time(after, "after"),
        "before": _time(before, "before"),
        "search": search,
    }


@router.get("")
async def list_audit(
    request: Request,
    actor: str | None = None,
    kind: str | None = None,
    target: str | None = None,
    outcome: str | None = None,
    after: str | None = None,
    before: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    limit = check_limit(limit)
    filters = _filters(actor, kind, target, outcome, after, before, search)
    rows, total = await system(request).db.read(
        lambda conn: store.query(conn, filters, limit=limit, offset=offset)
    )
    return paged([record_view(r) for r in rows], total, limit)


@router.get("/verify")
async def verify_audit(request: Request) -> JSON:
    """Walk the whole chain; ``ok`` false names the first record that breaks it."""
    return JSON(await system(request).db.read(store.verify))


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}},
)
async def export_audit(
    request: Request,
    actor: str | None = None,
    kind: str | None = None,
    target: str | None = None,
    outcome: str | None = None,
    after: str | None = None,
    before: str | None = None,
    search: str | None = None,
) -> StreamingResponse:
    filters = _filters(actor, kind, target, outcome, after, before, search)
    db = system(request).db

    async def body() -> AsyncIterator[bytes]:
        seq = 0
        while True:
            rows = await db.read(store.after, filters, seq)
            if not rows:
                return
            yield b"".join(orjson.dumps(record_view(r)) + b"\n" for r in rows)
            seq = int(rows[-1]["seq"])

    return StreamingResponse(body(), media_type="application/x-ndjson")


def _target(path: str) -> str | None:
    """What a call acts on: the id or ref after the collection in the path."""
    parts = path.split("/")  # ["", "api", "v1", "rules", "pack.rule", ...]
    return parts[4] if len(parts) > 4 and parts[1] == "api" and parts[4] else None


class AuditCalls:
    """Record every API call that changes something, and every refused call,
    once it has been answered: who, what, the answer's status, from where."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        method, path = scope["method"], scope["path"]
        changing = method in CHANGING and not path.startswith(OWN_AUTH_PREFIXES)
        if path in SELF_RECORDED or not (changing or status in (401, 403)):
            return
        if status < 400 and (
            path.startswith(SELF_RECORDED_PREFIXES) or (method, path) in RECORDED_BY_RESULT
        ):
            return
        if status == 401 and not changing:
            return  # a GET without credentials changes nothing: not worth a record each
        state = scope.get("state") or {}
        user = state.get("user")
        client = scope.get("client")
        outcome = "ok" if status < 400 else "denied" if status in (401, 403) else "failed"
        sys = getattr(scope["app"].state, "system", None) if "app" in scope else None
        if sys is None:
            return
        await record_call(
            sys.db,
            actor=user,
            kind="denied" if status in (401, 403) else "api",
            action=f"{method} {path}",
            target=_target(path),
            outcome=outcome if outcome != "failed" else str(status),
            source=client[0] if client else None,
            details={"status": status, "permission": state["denied"]}
            if state.get("denied")
            else {"status": status},
        )
