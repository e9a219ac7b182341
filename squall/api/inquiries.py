"""/api/v1/inquiries: pending questions to people, and their answers, in
StackStorm's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from squall.api.deps import JSON, body_schema, check_limit, json_body, paged, requester, system
from squall.errors import InvalidInput
from squall.services import inquiries as svc

router = APIRouter(prefix="/api/v1/inquiries", tags=["inquiries"])


@router.get("")
async def list_inquiries(
    request: Request,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    """Pending inquiries, newest first."""
    limit = check_limit(limit)
    rows, total = await system(request).db.read(
        lambda conn: svc.list_pending(conn, limit=limit, offset=offset)
    )
    return paged([svc.inquiry_view(r) for r in rows], total, limit)


@router.get("/{inquiry_id}")
async def get_inquiry(request: Request, inquiry_id: str) -> JSON:
    return JSON(svc.inquiry_view(await system(request).db.read(svc.get, inquiry_id)))


@router.put(
    "/{inquiry_id}",
    openapi_extra=body_schema(
        {
            "id": {"type": "string", "description": "The inquiry's id (optional)."},
            "response": {
                "type": "object",
                "description": "The answer; it must satisfy the inquiry's schema.",
            },
        },
        ["response"],
    ),
)
async def respond(request: Request, inquiry_id: str) -> JSON:
    body = await json_body(request)
    if "response" not in body:
        raise InvalidInput(
            "'response' is required: the answer as an object, e.g. "
            '{"response": {"continue": true}}'
        )
    given_id = body.get("id")
    if given_id not in (None, "", inquiry_id):
        raise InvalidInput(f"the body is for inquiry {given_id!r} but the URL for {inquiry_id!r}")
    user = requester(request)

    def answer(conn: Any) -> dict[str, Any]:
        return svc.respond(conn, inquiry_id, body["response"], user)

    row = await system(request).db.write(answer)
    return JSON({"id": inquiry_id, "response": row["result"]["response"]})
