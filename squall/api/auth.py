"""/auth/v1/tokens and /api/v1/apikeys: signing in and API keys."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request, Response

from squall.api.deps import JSON, body_schema, forget_credentials, json_body, requester, system
from squall.core.timestamps import iso
from squall.errors import InvalidInput, Unauthorized
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

    def sign_in(conn: Any) -> dict[str, Any] | None:
        row = auth.get_user(conn, user)
        if (
            row is None
            or not row["enabled"]
            or not auth.verify_password(password, row["password_hash"])
        ):
            why = "no such user" if row is None else "disabled" if not row["enabled"] else None
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


def apikey_view(row: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    view = {
        "id": row["id"],
        "uid": f"api_key:{row['key_hash']}",
        "user": row["user"],
        "key_hash": row["key_hash"],
        "metadata": row["metadata"],
        "enabled": row["enabled"],
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["expires_at"]),
    }
    if key:
        view["key"] = key
    return view


@router.get("/api/v1/apikeys")
async def list_apikeys(request: Request) -> JSON:
    return JSON([apikey_view(r) for r in await system(request).db.read(auth.list_api_keys)])


@router.post("/api/v1/apikeys", status_code=201)
async def create_apikey(request: Request) -> JSON:
    body = await json_body(request)
    caller = requester(request)
    user = body.get("user") or caller
    metadata = body.get("metadata") or {}
    if not isinstance(user, str) or not user:
        raise InvalidInput("'user' must be a user name")
    if not isinstance(metadata, dict):
        raise InvalidInput("'metadata' must be an object")

    def make(conn: Any) -> tuple[str, dict[str, Any]]:
        if auth.get_user(conn, user) is None:
            auth.create_user(conn, user, None)
        return auth.create_api_key(conn, user, metadata=metadata)

    key, row = await system(request).db.write(make)
    return JSON(apikey_view(row, key), status_code=201)


@router.get("/api/v1/apikeys/{key_id}")
async def get_apikey(request: Request, key_id: str) -> JSON:
    return JSON(apikey_view(await system(request).db.read(auth.get_api_key, key_id)))


@router.put("/api/v1/apikeys/{key_id}", openapi_extra=body_schema({"enabled": {"type": "boolean"}}))
async def update_apikey(request: Request, key_id: str) -> JSON:
    body = await json_body(request)

    def update(conn: Any) -> dict[str, Any]:
        row = auth.get_api_key(conn, key_id)
        if "enabled" in body:
            auth.update_api_key(conn, row["id"], enabled=bool(body["enabled"]))
        return auth.get_api_key(conn, row["id"])

    row = await system(request).db.write(update)
    forget_credentials()
    return JSON(apikey_view(row))


@router.delete("/api/v1/apikeys/{key_id}", status_code=204)
async def delete_apikey(request: Request, key_id: str) -> Response:
    def delete(conn: Any) -> None:
        auth.delete_api_key(conn, auth.get_api_key(conn, key_id)["id"])

    await system(request).db.write(delete)
    forget_credentials()
    return Response(status_code=204)


@router.get("/api/v1/user")
async def whoami(request: Request) -> JSON:
    """Who the caller is, shaped like StackStorm's answer."""
    user = requester(request)
    row = await system(request).db.read(auth.get_user, user)
    return JSON(
        {
            "username": user,
            "authentication": {
                "method": "api_key" if request.headers.get("st2-api-key") else "token"
            },
            "rbac": {
                "enabled": False,
                "roles": ["admin"] if row and row["is_admin"] else [],
                "is_admin": bool(row and row["is_admin"]),
            },
        }
    )
