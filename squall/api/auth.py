"""/auth/v1/tokens: signing in and out (API keys and users are in api/users.py)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request, Response

from squall.api.deps import JSON, body_schema, forget_credentials, json_body, system
from squall.core.timestamps import iso
from squall.errors import InvalidInput, Unauthorized
from squall.services import signin
from squall.store import audit, auth

router = APIRouter(tags=["auth"])


def _basic(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthorized("sign in with HTTP basic authentication (user and password)")
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed basic authentication header") from None
    return user, password


@router.post(
    "/auth/v1/tokens",
    status_code=201,
    openapi_extra=body_schema({"ttl": {"type": "integer", "minimum": 1}}),
)
async def create_token(request: Request) -> JSON:
    body = await json_body(request)
    sys = system(request)
    user, password = _basic(request)
    ttl = (body or {}).get("ttl") or sys.settings.token_ttl_seconds
    if not isinstance(ttl, int) or ttl <= 0 or ttl > sys.settings.token_ttl_seconds:
        raise InvalidInput(f"ttl must be between 1 and {sys.settings.token_ttl_seconds} seconds")

    source = request.client.host if request.client else None
    checked = await signin.backend(sys.settings).authenticate(sys.db, user, password)

    def sign_in(conn: Any) -> dict[str, Any] | None:
        # Whatever the backend says, a user disabled here stays out.
        enabled = checked.ok and auth.user_is_active(conn, user)
        if not enabled:
            why = checked.reason if not checked.ok else "disabled"
            audit.record(
                conn,
                actor=user,
                kind="sign_in",
                action="sign in",
                outcome="denied",
                source=source,
                details={"reason": why or "wrong password"},
            )
            return None
        token = auth.create_token(conn, user, ttl)
        audit.record(
            conn,
            actor=user,
            kind="sign_in",
            action="sign in",
            target=token["id"],
            source=source,
            details={"ttl": ttl},
        )
        return token

    token = await sys.db.write(sign_in)
    if token is None:
        raise Unauthorized("invalid user name or password")
    return JSON(
        {
            "id": token["id"],
            "user": user,
            "token": token["token"],
            "expiry": iso(token["expiry"]),
            "metadata": token["metadata"],
        },
        status_code=201,
    )


@router.delete("/auth/v1/tokens", status_code=204)
async def delete_token(request: Request) -> Response:
    """Sign out: the token in ``X-Auth-Token`` stops working at once."""
    token = request.headers.get("x-auth-token")
    if not token:
        raise Unauthorized("sign out with the token to revoke in X-Auth-Token")

    def sign_out(conn: Any) -> str | None:
        user = auth.user_for_token(conn, token)
        if user is None or not auth.delete_token(conn, token):
            return None
        source = request.client.host if request.client else None
        audit.record(conn, actor=user, kind="sign_in", action="sign out", source=source)
        return user

    if not await system(request).db.write(sign_out):
        raise Unauthorized("no such token (already signed out or expired)")
    forget_credentials()
    return Response(status_code=204)
