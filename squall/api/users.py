"""/api/v1/users, /api/v1/apikeys (StackStorm's shapes) and /api/v1/user.

Anyone signed in manages their own API keys; the ``api_key_*`` permissions
are for other users' keys. Users are made, disabled and enabled with the
``user_*`` permissions. A disabled user's tokens and keys stop working at
once (the credential caches are dropped)."""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from squall.api import permissions
from squall.api.deps import JSON, body_schema, forget_credentials, json_body, requester, system
from squall.core.rbac import effective
from squall.core.timestamps import iso
from squall.errors import Conflict, InvalidInput, NotFound
from squall.store import audit, auth
from squall.store import rbac as rbac_store

router = APIRouter(tags=["auth"])


def _forget() -> None:
    forget_credentials()
    permissions.forget_roles()


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None


# -- users ---------------------------------------------------------------------


def user_view(row: dict[str, Any], roles: list[str]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "enabled": row["enabled"],
        "roles": roles,
        "has_password": bool(row["password_hash"]),
        "created_at": iso(row["created_at"]),
    }


@router.get("/api/v1/users")
async def list_users(request: Request) -> JSON:
    def read(conn: Any) -> list[dict[str, Any]]:
        return [
            user_view(u, rbac_store.role_names_of(conn, u["name"])) for u in auth.list_users(conn)
        ]

    return JSON(await system(request).db.read(read))


@router.get("/api/v1/users/{name}")
async def get_user(request: Request, name: str) -> JSON:
    def read(conn: Any) -> dict[str, Any]:
        row = auth.get_user(conn, name)
        if row is None:
            raise _no_user(name)
        return user_view(row, rbac_store.role_names_of(conn, name))

    return JSON(await system(request).db.read(read))


def _no_user(name: str) -> NotFound:
    return NotFound(f"no user named {name!r}")


@router.post(
    "/api/v1/users",
    status_code=201,
    openapi_extra=body_schema(
        {
            "name": {"type": "string"},
            "password": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
        },
        ["name"],
    ),
)
async def create_user(request: Request) -> JSON:
    """Without a password one is generated and answered once."""
    body = await json_body(request)
    name, password, roles = body.get("name"), body.get("password"), body.get("roles") or []
    if not isinstance(name, str) or not name.strip() or len(name) > 255 or ":" in name:
        raise InvalidInput("'name' must be a user name (no ':', at most 255 characters)")
    if password is not None and (not isinstance(password, str) or len(password) < 8):
        raise InvalidInput("'password' must be at least 8 characters")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidInput("'roles' must be a list of role names")
    if roles:
        await permissions.require(request, "role_assign")
    generated = None if password else secrets.token_urlsafe(12)
    caller = requester(request)

    def make(conn: Any) -> dict[str, Any]:
        auth.create_user(conn, name, password or generated)
        for role in roles:
            rbac_store.assign(conn, name, role)
        audit.record(
            conn,
            actor=caller,
            kind="identity",
            action="create user",
            target=name,
            source=_source(request),
            details={"roles": roles},
        )
        row = auth.get_user(conn, name)
        assert row is not None
        return user_view(row, rbac_store.role_names_of(conn, name))

    view = await system(request).db.write(make)
    _forget()
    if generated:
        view["password"] = generated
    return JSON(view, status_code=201)


@router.put(
    "/api/v1/users/{name}",
    openapi_extra=body_schema({"enabled": {"type": "boolean"}, "password": {"type": "string"}}),
)
async def update_user(request: Request, name: str) -> JSON:
    body = await json_body(request)
    caller = requester(request)
    changes: dict[str, Any] = {}
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise InvalidInput("'enabled' must be true or false")
        if name == caller and not body["enabled"]:
            raise Conflict("you cannot disable yourself")
        changes["enabled"] = body["enabled"]
    if "password" in body:
        if not isinstance(body["password"], str) or len(body["password"]) < 8:
            raise InvalidInput("'password' must be at least 8 characters")
        changes["password"] = body["password"]
    if not changes:
        raise InvalidInput("nothing to change: send 'enabled' or 'password'")

    def update(conn: Any) -> dict[str, Any]:
        auth.set_user(conn, name, **changes)
        what = {True: "enable user", False: "disable user"}.get(changes.get("enabled"))  # type: ignore[arg-type]
        audit.record(
            conn,
            actor=caller,
            kind="identity",
            action=what or "change password",
            target=name,
            source=_source(request),
        )
        row = auth.get_user(conn, name)
        assert row is not None
        return user_view(row, rbac_store.role_names_of(conn, name))

    view = await system(request).db.write(update)
    _forget()
    return JSON(view)


# -- API keys (StackStorm's /api/v1/apikeys) -------------------------------------


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


async def _mine_or(request: Request, row: dict[str, Any], permission: str) -> None:
    if row["user"] != requester(request):
        await permissions.require(request, permission)


_YEAR_10000 = 253402300800.0  # past it a time cannot be written in ISO 8601


def _expiry(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        at = float(value)
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise InvalidInput(f"'expires_at' must be an ISO 8601 time, not {value!r}") from None
    else:
        raise InvalidInput("'expires_at' must be an ISO 8601 time")
    if at <= time.time():
        raise InvalidInput("'expires_at' must be in the future")
    if at >= _YEAR_10000:
        raise InvalidInput("'expires_at' must be before the year 10000")
    return at


@router.get("/api/v1/apikeys")
async def list_apikeys(request: Request) -> JSON:
    """Every key for holders of ``api_key_list``, else the caller's own."""
    everyone = await permissions.holds(request, "api_key_list")
    user = None if everyone else requester(request)
    rows = await system(request).db.read(auth.list_api_keys, user)
    return JSON([apikey_view(r) for r in rows])


@router.post(
    "/api/v1/apikeys",
    status_code=201,
    openapi_extra=body_schema(
        {
            "user": {"type": "string"},
            "metadata": {"type": "object"},
            "expires_at": {"type": "string", "format": "date-time"},
        }
    ),
)
async def create_apikey(request: Request) -> JSON:
    body = await json_body(request)
    caller = requester(request)
    user = body.get("user") or caller
    metadata = body.get("metadata") or {}
    if not isinstance(user, str) or not user:
        raise InvalidInput("'user' must be a user name")
    if not isinstance(metadata, dict):
        raise InvalidInput("'metadata' must be an object")
    expires_at = _expiry(body.get("expires_at"))
    if user != caller:
        await permissions.require(request, "api_key_create")
    sys = system(request)
    if user != caller and await sys.db.read(auth.get_user, user) is None:
        # StackStorm makes the user along with its first key.
        await permissions.require(request, "user_create")

    def make(conn: Any) -> tuple[str, dict[str, Any]]:
        if auth.get_user(conn, user) is None:
            auth.create_user(conn, user, None)
        key, row = auth.create_api_key(conn, user, metadata=metadata, expires_at=expires_at)
        audit.record(
            conn,
            actor=caller,
            kind="identity",
            action="create API key",
            target=row["id"],
            source=_source(request),
            details={"user": user, "expires_at": expires_at},
        )
        return key, row

    key, row = await sys.db.write(make)
    return JSON(apikey_view(row, key), status_code=201)


@router.get("/api/v1/apikeys/{key_id}")
async def get_apikey(request: Request, key_id: str) -> JSON:
    row = await system(request).db.read(auth.get_api_key, key_id)
    await _mine_or(request, row, "api_key_view")
    return JSON(apikey_view(row))


@router.put("/api/v1/apikeys/{key_id}", openapi_extra=body_schema({"enabled": {"type": "boolean"}}))
async def update_apikey(request: Request, key_id: str) -> JSON:
    """``enabled: false`` revokes the key (it stays listed, refused)."""
    body = await json_body(request)
    sys = system(request)
    await _mine_or(request, await sys.db.read(auth.get_api_key, key_id), "api_key_modify")
    caller = requester(request)

    def update(conn: Any) -> dict[str, Any]:
        row = auth.get_api_key(conn, key_id)
        if "enabled" in body and bool(body["enabled"]) != row["enabled"]:
            auth.update_api_key(conn, row["id"], enabled=bool(body["enabled"]))
            audit.record(
                conn,
                actor=caller,
                kind="identity",
                action="enable API key" if body["enabled"] else "revoke API key",
                target=row["id"],
                source=_source(request),
                details={"user": row["user"]},
            )
        return auth.get_api_key(conn, row["id"])

    row = await sys.db.write(update)
    _forget()
    return JSON(apikey_view(row))


@router.delete("/api/v1/apikeys/{key_id}", status_code=204)
async def delete_apikey(request: Request, key_id: str) -> Response:
    sys = system(request)
    await _mine_or(request, await sys.db.read(auth.get_api_key, key_id), "api_key_delete")
    caller = requester(request)

    def delete(conn: Any) -> None:
        row = auth.get_api_key(conn, key_id)
        auth.delete_api_key(conn, row["id"])
        audit.record(
            conn,
            actor=caller,
            kind="identity",
            action="delete API key",
            target=row["id"],
            source=_source(request),
            details={"user": row["user"]},
        )

    await sys.db.write(delete)
    _forget()
    return Response(status_code=204)


# -- who am I --------------------------------------------------------------------


@router.get("/api/v1/user")
async def whoami(request: Request) -> JSON:
    """Who the caller is, shaped like StackStorm's answer."""
    user = requester(request)
    roles = await permissions.roles_of(request.scope, user)
    names = [r.name for r in roles]
    return JSON(
        {
            "username": user,
            "authentication": {
                "method": "api_key" if request.headers.get("st2-api-key") else "token"
            },
            "rbac": {"enabled": True, "roles": names, "is_admin": "admin" in names},
        }
    )


@router.get("/api/v1/rbac/me")
async def my_permissions(request: Request) -> JSON:
    """What the caller may do: the UI hides what is not allowed."""
    user = requester(request)
    roles = await permissions.roles_of(request.scope, user)
    return JSON({"username": user, "roles": [r.name for r in roles], **effective(roles)})
