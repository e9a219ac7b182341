"""What every route needs: the running system, the caller, and StackStorm's
shapes for timestamps and lists."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from squall import masks
from squall.errors import InvalidInput, SquallError, Unauthorized
from squall.server import System
from squall.store import auth

# A validated key or token is trusted for this long without asking the
# database again: authentication stays off the hot path of busy clients.
_AUTH_CACHE_SECONDS = 5.0
_auth_cache: dict[str, tuple[str, float]] = {}


def system(request: Request) -> System:
    sys: System = request.app.state.system
    return sys


def credential(request: Request) -> tuple[str, str] | None:
    h = request.headers
    if key := h.get("st2-api-key"):
        return "key", key
    if token := h.get("x-auth-token"):
        return "token", token
    # The stream is authenticated in the query string (browsers' EventSource
    # cannot send headers, and the st2 client does it that way).
    q = request.query_params
    if key := q.get("st2-api-key") or q.get("api_key"):
        return "key", key
    if token := q.get("x-auth-token") or q.get("token"):
        return "token", token
    return None


def requester(request: Request) -> str:
    """The authenticated user making ``request`` (set by :class:`Authenticate`)."""
    user: str = request.scope["state"]["user"]
    return user


async def authenticate(scope: Scope) -> str:
    """The user behind the request's API key or token; Unauthorized without one."""
    request = Request(scope)
    cred = credential(request)
    if cred is None:
        raise Unauthorized(
            "authentication required: send an API key (St2-Api-Key header) or a token "
            "(X-Auth-Token header)"
        )
    kind, secret = cred
    cache_key = f"{kind}:{secret}"
    hit = _auth_cache.get(cache_key)
    now = time.monotonic()
    if hit and hit[1] > now:
        return hit[0]
    db = scope["app"].state.system.db

    def lookup(conn: Any) -> str | None:
        user = (
            auth.user_for_api_key(conn, secret)
            if kind == "key"
            else auth.user_for_token(conn, secret)
        )
        if user and not auth.user_is_active(conn, user):
            return None
        return user

    user = await db.read(lookup)
    if user is None:
        raise Unauthorized(
            f"the {'API key' if kind == 'key' else 'token'} is invalid, expired or revoked"
        )
    if len(_auth_cache) > 10_000:
        _auth_cache.clear()
    _auth_cache[cache_key] = (user, now + _AUTH_CACHE_SECONDS)
    return user


# Paths anyone may call: the health and readiness checks, signing in, and
# the API's schema. /metrics checks credentials itself (api/metrics.py): it
# also takes a metrics token, or may be configured public.
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/auth/v1/tokens",
        "/api/v1",
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/",
    }
)
# The web UI's static files: the page itself signs in and sends credentials
# with each API call; nothing under it holds data.
PUBLIC_PREFIXES = ("/ui/",)


# Routes that check credentials themselves: a webhook may instead be signed
# with a shared secret, which only the route can verify.
OWN_AUTH_PREFIXES = ("/api/v1/webhooks/",)


class Authenticate:
    """Every request, except to the public paths, must carry valid credentials;
    the user is put in the request state for the routes. Doing this once here,
    rather than per route, means no route can forget it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if (
            scope["type"] == "http"
            and path not in PUBLIC_PATHS
            and not path.startswith(PUBLIC_PREFIXES)
            and not (scope["method"] == "POST" and path.startswith(OWN_AUTH_PREFIXES))
        ):
            try:
                user = await authenticate(scope)
            except SquallError as exc:
                response = JSON(exc.to_dict(), status_code=exc.http_status)
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def forget_credentials() -> None:
    _auth_cache.clear()


class JSON(Response):
    """JSON rendered with orjson, straight from plain data: the routes build
    StackStorm's shapes themselves, so nothing needs validating on the way out.

    Secrets are masked in every response (configured patterns, datastore
    secret values; see squall/masks.py), whatever route built it; only
    :class:`UnmaskedJSON` (a datastore read with ``decrypt``) shows them."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(masks.masker().data(content), option=orjson.OPT_NON_STR_KEYS)


class UnmaskedJSON(JSON):
    """A response whose secrets the caller asked for and may see."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def paged(items: list[Any], total: int, limit: int, *, masked: bool = True) -> JSON:
    kind = JSON if masked else UnmaskedJSON
    return kind(items, headers={"X-Total-Count": str(total), "X-Limit": str(limit)})


def check_limit(limit: int, *, maximum: int = 1000) -> int:
    if limit == -1 or limit == 0:
        return maximum
    if limit < 0 or limit > maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def select_attributes(
    obj: dict[str, Any], include: str | None, exclude: str | None
) -> dict[str, Any]:
    """StackStorm's include_attributes / exclude_attributes (top-level and dotted)."""
    if include:
        keep = [a.strip() for a in include.split(",") if a.strip()]
        out: dict[str, Any] = {}
        for attr in keep:
            head, _, rest = attr.partition(".")
            if head not in obj:
                continue
            if rest and isinstance(obj[head], dict):
                sub = out.setdefault(head, {})
                if rest in obj[head]:
                    sub[rest] = obj[head][rest]
            else:
                out[head] = obj[head]
        if "id" in obj:
            out.setdefault("id", obj["id"])
        return out
    if exclude:
        drop = {a.strip() for a in exclude.split(",") if a.strip()}
        out = {}
        for k, v in obj.items():
            if k in drop:
                continue
            if isinstance(v, dict):
                inner = {d.split(".", 1)[1] for d in drop if d.startswith(k + ".")}
                if inner:
                    v = {ik: iv for ik, iv in v.items() if ik not in inner}
            out[k] = v
        return out
    return obj


async def json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, whatever Content-Type the client sent."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def body_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """OpenAPI for a JSON request body that the route reads with json_body
    (routes check their bodies themselves, so the schema only documents it)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {
        "requestBody": {
            "required": bool(required),
            "content": {"application/json": {"schema": schema}},
        }
    }
