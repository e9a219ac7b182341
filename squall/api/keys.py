"""/api/v1/keys: the datastore (StackStorm's key-value pairs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from squall import masks
from squall.api import permissions
from squall.api.deps import (
    JSON,
    UnmaskedJSON,
    body_schema,
    check_limit,
    json_body,
    paged,
    requester,
    system,
)
from squall.core.timestamps import iso
from squall.errors import InvalidInput
from squall.store import kv

router = APIRouter(prefix="/api/v1/keys", tags=["datastore"])

# A TTL beyond this would expire after the dates the API can write (a century is plenty).
MAX_TTL = 100 * 365 * 86400


def key_view(row: dict[str, Any], *, decrypt: bool, decrypter: Any) -> dict[str, Any]:
    value = row["value"]
    if row["secret"] and decrypt:
        value = decrypter(value)
    scope = f"st2kv.{row['scope']}"
    view = {
        "id": f"{scope}:{row['owner']}:{row['name']}" if row["owner"] else f"{scope}:{row['name']}",
        "uid": f"key_value_pair:{scope}:{row['name']}",
        "name": row["name"],
        "value": value,
        "secret": row["secret"],
        "encrypted": bool(row["secret"] and not decrypt),
        "scope": scope,
        "expire_timestamp": iso(row["expire_at"]),
    }
    if row["owner"]:
        view["user"] = row["owner"]
    return view


@router.get("")
async def list_keys(
    request: Request,
    scope: str | None = None,
    prefix: str | None = None,
    decrypt: bool = False,
    user: str | None = None,
    limit: int = 100,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    caller = requester(request)
    if decrypt:
        await permissions.require(request, "key_value_pair_decrypt")
    sys = system(request)
    scope_name = None if scope in (None, "all", "st2kv.all") else kv.normalize_scope(scope)
    limit = check_limit(limit, maximum=10000)
    rows, total = await sys.db.read(
        lambda conn: kv.list_(
            conn, scope=scope_name, user=user or caller, prefix=prefix, limit=limit, offset=offset
        )
    )
    return paged(
        [key_view(r, decrypt=decrypt, decrypter=sys.keyring.decrypt) for r in rows],
        total,
        limit,
        masked=not decrypt,
    )


@router.get("/{name:path}")
async def get_key(
    request: Request,
    name: str,
    scope: str | None = None,
    decrypt: bool = False,
    user: str | None = None,
) -> JSON:
    caller = requester(request)
    if decrypt:
        await permissions.require(request, "key_value_pair_decrypt")
    sys = system(request)
    s = kv.normalize_scope(scope)
    row = await sys.db.read(lambda conn: kv.get(conn, scope=s, user=user or caller, name=name))
    view = key_view(row, decrypt=decrypt, decrypter=sys.keyring.decrypt)
    return UnmaskedJSON(view) if decrypt else JSON(view)


@router.put(
    "/{name:path}",
    openapi_extra=body_schema(
        {
            "name": {"type": "string"},
            "value": {"type": "string"},
            "secret": {"type": "boolean"},
            "scope": {"type": "string", "enum": ["st2kv.system", "st2kv.user", "system", "user"]},
            "ttl": {"type": "integer", "minimum": 1, "maximum": MAX_TTL},
            "user": {"type": "string"},
        },
        ["value"],
    ),
)
async def set_key(request: Request, name: str) -> JSON:
    body = await json_body(request)
    caller = requester(request)
    sys = system(request)
    value = body.get("value")
    if value is None:
        raise InvalidInput("'value' is required")
    if not isinstance(value, str):
        raise InvalidInput("'value' must be a string (encode structured values as JSON)")
    s = kv.normalize_scope(body.get("scope"))
    ttl = body.get("ttl")
    if ttl is not None and (not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL):
        raise InvalidInput(f"'ttl' must be a positive number of seconds, at most {MAX_TTL}")
    secret = bool(body.get("secret"))
    if body.get("encrypted"):
        raise InvalidInput(
            "storing pre-encrypted values is not supported; send the plain value with secret=true"
        )
    user = body.get("user") or caller
    if not isinstance(user, str):
        raise InvalidInput("'user' must be a user name")
    row = await sys.db.write(
        lambda conn: kv.set_value(
            conn,
            scope=s,
            user=user,
            name=name,
            value=value,
            secret=secret,
            ttl=ttl,
            encrypt=sys.keyring.encrypt,
        )
    )
    if secret:
        masks.remember(value)  # masked from now on; other processes catch up by themselves
    return JSON(key_view(row, decrypt=False, decrypter=sys.keyring.decrypt))


@router.delete("/{name:path}", status_code=204)
async def delete_key(
    request: Request,
    name: str,
    scope: str | None = None,
    user: str | None = None,
) -> Response:
    caller = requester(request)
    s = kv.normalize_scope(scope)
    await system(request).db.write(
        lambda conn: kv.delete(conn, scope=s, user=user or caller, name=name)
    )
    return Response(status_code=204)


datastore_router = APIRouter(prefix="/api/v1/datastore", tags=["datastore"])


@datastore_router.post("/rotate-key")
async def rotate_key(request: Request) -> JSON:
    """Encrypt every secret value under a new key, then forget the old keys."""
    sys = system(request)
    async with sys.rotation_lock:
        kid = sys.keyring.add_key()
        count = await sys.db.write(kv.reencrypt_all, sys.keyring.decrypt, sys.keyring.encrypt)
        sys.keyring.retire_others()
    return JSON({"active_key": kid, "reencrypted": count})
