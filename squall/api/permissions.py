"""Which permission every API route needs, in one table, and the guard that
checks it before the route runs.

Each route is wrapped at start-up (:func:`guard_routes`) with the need the
table declares for its method and path. A route missing from the table is
refused to everyone (and the route table test fails), so a new route cannot
be reachable by accident. A need names a permission and, optionally, how to
find the resource the request acts on (from the path, the body, or the
execution's action), so grants on one resource or a whole pack apply.

A denied request answers 403 naming the missing permission; the audit
middleware records it (with the permission, left in the request state).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import FastAPI, Request
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from squall.api.deps import JSON
from squall.core.rbac import PERMISSIONS, Resource, Role, has_permission, resource_from_ref
from squall.errors import Forbidden
from squall.store import rbac as rbac_store
from squall.store.tables import executions

Finder = Callable[[Scope, bytes | None], Awaitable[Resource | None]]


@dataclass(frozen=True)
class Need:
    permission: str | None  # None: anyone signed in
    resource: Finder | None = None
    body: bool = False  # the finder reads the request body
    public: bool = False  # no credentials at all


PUBLIC = Need(None, public=True)
SIGNED_IN = Need(None)


def need(permission: str, finder: Finder | None = None, *, body: bool = False) -> Need:
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return Need(permission, finder, body)


def path_ref(rtype: str, param: str) -> Finder:
    """The resource named by a path parameter (a ref such as ``pack.name``)."""

    async def find(scope: Scope, _body: bytes | None) -> Resource | None:
        value = scope.get("path_params", {}).get(param)
        return resource_from_ref(rtype, str(value)) if value else None

    return find


def body_ref(rtype: str, field: str) -> Finder:
    """The resource named by a field of the JSON body (``{"action": "pack.name"}``)."""

    async def find(_scope: Scope, body: bytes | None) -> Resource | None:
        data = _json(body)
        value = data.get(field)
        return resource_from_ref(rtype, value) if isinstance(value, str) and value else None

    return find


async def _rule_in_body(_scope: Scope, body: bytes | None) -> Resource | None:
    data = _json(body)
    pack, name = data.get("pack"), data.get("name")
    if isinstance(pack, str) and isinstance(name, str):
        return resource_from_ref("rule", f"{pack}.{name}")
    return None


async def _execution_action(scope: Scope, _body: bytes | None) -> Resource | None:
    """An execution is judged by its action (see core/rbac.py)."""
    execution_id = scope.get("path_params", {}).get("execution_id")
    if not execution_id:
        return None
    db = scope["app"].state.system.db
    ref = await db.read(
        lambda conn: conn.execute(
            sa.select(executions.c.action_ref).where(executions.c.id == execution_id)
        ).scalar()
    )
    return resource_from_ref("action", ref) if ref else None


async def _key(scope: Scope, _body: bytes | None) -> Resource | None:
    name = scope.get("path_params", {}).get("name")
    query = Request(scope).query_params
    kv_scope = (query.get("scope") or "system").removeprefix("st2kv.")
    return Resource("key_value_pair", f"{kv_scope}:{name}") if name else None


def _json(body: bytes | None) -> dict[str, Any]:
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return {}  # the route answers the bad body with 400
    return data if isinstance(data, dict) else {}


_action = path_ref("action", "ref_or_id")
_rule = path_ref("rule", "ref_or_id")
_pack = path_ref("pack", "ref_or_id")
_exe = _execution_action

# (method, path) -> what the caller needs. HEAD follows GET.
ROUTES: dict[tuple[str, str], Need] = {
    # Public: the health check, the API's description, the UI's files, signing in and out.
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # checks its own credentials (a metrics token)
    ("GET", "/api/v1"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/ui/"): PUBLIC,
    ("POST", "/auth/v1/tokens"): PUBLIC,
    ("DELETE", "/auth/v1/tokens"): PUBLIC,  # needs the token it revokes
    # Who am I, what may I do.
    ("GET", "/api/v1/user"): SIGNED_IN,
    ("GET", "/api/v1/rbac/me"): SIGNED_IN,
    # Executions
    ("POST", "/api/v1/executions"): need("action_execute", body_ref("action", "action"), body=True),
    ("GET", "/api/v1/executions"): need("execution_list"),
    ("GET", "/api/v1/executions/{execution_id}"): need("execution_view", _exe),
    ("GET", "/api/v1/executions/{execution_id}/hosts"): need("execution_view", _exe),
    ("GET", "/api/v1/executions/{execution_id}/children"): need("execution_view", _exe),
    ("GET", "/api/v1/executions/{execution_id}/workflow"): need("execution_view", _exe),
    ("GET", "/api/v1/executions/{execution_id}/output"): need("execution_view", _exe),
    ("DELETE", "/api/v1/executions/{execution_id}"): need("execution_stop", _exe),
    ("PUT", "/api/v1/executions/{execution_id}"): need("execution_stop", _exe),
    ("POST", "/api/v1/executions/{execution_id}/re_run"): need("execution_re_run", _exe),
    # Actions, runners, packs
    ("GET", "/api/v1/actions"): need("action_list"),
    ("GET", "/api/v1/actions/views/overview"): need("action_list"),
    ("GET", "/api/v1/actions/views/overview/{ref_or_id}"): need("action_view", _action),
    ("GET", "/api/v1/actions/views/parameters/{ref_or_id}"): need("action_view", _action),
    ("GET", "/api/v1/actions/{ref_or_id}"): need("action_view", _action),
    ("GET", "/api/v1/runnertypes"): need("runner_type_list"),
    ("GET", "/api/v1/runnertypes/{name_or_id}"): need("runner_type_view"),
    ("GET", "/api/v1/packs"): need("pack_list"),
    ("GET", "/api/v1/packs/{ref_or_id}"): need("pack_view", _pack),
    ("POST", "/api/v1/packs/register"): need("pack_register"),
    ("POST", "/api/v1/packs/install"): need("pack_install"),
    ("DELETE", "/api/v1/packs/{ref}"): need("pack_uninstall", path_ref("pack", "ref")),
    # The datastore
    ("GET", "/api/v1/keys"): need("key_value_pair_list"),
    ("GET", "/api/v1/keys/{name:path}"): need("key_value_pair_view", _key),
    ("PUT", "/api/v1/keys/{name:path}"): need("key_value_pair_set", _key),
    ("DELETE", "/api/v1/keys/{name:path}"): need("key_value_pair_delete", _key),
    ("POST", "/api/v1/datastore/rotate-key"): need("key_value_pair_rotate"),
    # Users, API keys, roles (the routes also let anyone manage their own keys)
    ("GET", "/api/v1/apikeys"): SIGNED_IN,
    ("POST", "/api/v1/apikeys"): SIGNED_IN,
    ("GET", "/api/v1/apikeys/{key_id}"): SIGNED_IN,
    ("PUT", "/api/v1/apikeys/{key_id}"): SIGNED_IN,
    ("DELETE", "/api/v1/apikeys/{key_id}"): SIGNED_IN,
    ("GET", "/api/v1/users"): need("user_list"),
    ("POST", "/api/v1/users"): need("user_create"),
    ("GET", "/api/v1/users/{name}"): need("user_view"),
    ("PUT", "/api/v1/users/{name}"): need("user_modify"),
    ("GET", "/api/v1/rbac/roles"): need("role_list"),
    ("GET", "/api/v1/rbac/roles/{name}"): need("role_view"),
    ("GET", "/api/v1/rbac/assignments"): need("role_list"),
    ("POST", "/api/v1/rbac/assignments"): need("role_assign"),
    ("DELETE", "/api/v1/rbac/assignments/{user}/{role}"): need("role_assign"),
    ("POST", "/api/v1/rbac/reload"): need("role_reload"),
    # The event stream
    ("GET", "/stream/v1/stream"): need("stream_view"),
    # Rules and triggers
    ("GET", "/api/v1/rules"): need("rule_list"),
    ("GET", "/api/v1/rules/views"): need("rule_list"),
    ("GET", "/api/v1/rules/{ref_or_id}"): need("rule_view", _rule),
    ("GET", "/api/v1/rules/{ref_or_id}/explain"): need("rule_view", _rule),
    ("POST", "/api/v1/rules"): need("rule_create", _rule_in_body, body=True),
    ("PUT", "/api/v1/rules/{ref_or_id}"): need("rule_modify", _rule),
    ("DELETE", "/api/v1/rules/{ref_or_id}"): need("rule_delete", _rule),
    ("GET", "/api/v1/ruleenforcements"): need("rule_enforcement_list"),
    ("GET", "/api/v1/ruleenforcements/{enforcement_id}"): need("rule_enforcement_view"),
    ("GET", "/api/v1/triggertypes"): need("trigger_list"),
    ("GET", "/api/v1/triggertypes/{ref_or_id}"): need("trigger_view"),
    ("GET", "/api/v1/triggers"): need("trigger_list"),
    ("GET", "/api/v1/triggers/{ref_or_id}"): need("trigger_view"),
    ("GET", "/api/v1/timers"): need("trigger_list"),
    ("GET", "/api/v1/timers/{ref_or_id}"): need("trigger_view"),
    ("GET", "/api/v1/triggerinstances"): need("trigger_list"),
    ("GET", "/api/v1/triggerinstances/{instance_id}"): need("trigger_view"),
    ("POST", "/api/v1/triggerinstances/{instance_id}/re_emit"): need("trigger_re_emit"),
    # Webhooks: a POST is checked by the webhook route itself (it may be signed instead)
    ("POST", "/api/v1/webhooks/{url:path}"): need("webhook_send"),
    ("GET", "/api/v1/webhooks"): need("webhook_list"),
    ("GET", "/api/v1/webhooks/{url:path}"): need("webhook_view"),
    # Sensors
    ("GET", "/api/v1/sensortypes"): need("sensor_type_list"),
    ("GET", "/api/v1/sensortypes/{ref_or_id}"): need("sensor_type_view"),
    ("PUT", "/api/v1/sensortypes/{ref_or_id}"): need("sensor_type_modify"),
    # Inquiries
    ("GET", "/api/v1/inquiries"): need("inquiry_list"),
    ("GET", "/api/v1/inquiries/{inquiry_id}"): need("inquiry_view"),
    ("PUT", "/api/v1/inquiries/{inquiry_id}"): need("inquiry_respond"),
    # The inventory
    ("GET", "/api/v1/inventory/hosts"): need("inventory_list"),
    ("GET", "/api/v1/inventory/hosts/{name}"): need("inventory_view"),
    ("GET", "/api/v1/inventory/groups"): need("inventory_list"),
    ("POST", "/api/v1/inventory/facts"): need("inventory_gather"),
    # Rollouts
    ("POST", "/api/v1/rollouts/plan"): need("rollout_view"),
    ("POST", "/api/v1/rollouts"): need("rollout_start"),
    ("GET", "/api/v1/rollouts"): need("rollout_list"),
    ("GET", "/api/v1/rollouts/{rollout_id}"): need("rollout_view"),
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): need("rollout_pause"),
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): need("rollout_approve"),
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): need("rollout_abort"),
    ("POST", "/api/v1/rollouts/{rollout_id}/rollback"): need("rollout_rollback"),
    ("POST", "/api/v1/rollouts/{rollout_id}/retry"): need("rollout_start"),
    ("POST", "/api/v1/rollouts/{rollout_id}/skip"): need("rollout_abort"),
    # The audit trail
    ("GET", "/api/v1/audit"): need("audit_view"),
    ("GET", "/api/v1/audit/verify"): need("audit_view"),
    ("GET", "/api/v1/audit/export"): need("audit_view"),
}


def route_keys(route: Any) -> list[tuple[str, str]]:
    methods = sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}) or ["GET"]
    return [(m, route.path) for m in methods]


# -- the roles of a caller, kept a few seconds ---------------------------------

_ROLES_CACHE_SECONDS = 5.0
_roles_cache: dict[str, tuple[list[Role], float]] = {}


def forget_roles() -> None:
    """Role assignments or users changed: ask the database again."""
    _roles_cache.clear()


async def roles_of(scope: Scope, user: str) -> list[Role]:
    now = time.monotonic()
    hit = _roles_cache.get(user)
    if hit and hit[1] > now:
        return hit[0]
    roles = await scope["app"].state.system.db.read(rbac_store.roles_of, user)
    if len(_roles_cache) > 10_000:
        _roles_cache.clear()
    _roles_cache[user] = (roles, now + _ROLES_CACHE_SECONDS)
    return roles


def _denied(user: str, permission: str, resource: Resource | None) -> Forbidden:
    on = f" on {resource.uid}" if resource else ""
    return Forbidden(
        f"user {user!r} lacks the permission {permission!r}{on}; ask an administrator "
        "for a role that grants it"
    )


async def require(request: Request, permission: str, resource: Resource | None = None) -> None:
    """For routes whose need depends on what the request asks (decrypting,
    acting for another user): Forbidden unless the caller holds ``permission``."""
    await check(request.scope, request.scope["state"]["user"], permission, resource)


async def check(scope: Scope, user: str, permission: str, resource: Resource | None) -> None:
    if not has_permission(await roles_of(scope, user), permission, resource):
        scope.setdefault("state", {})["denied"] = permission
        raise _denied(user, permission, resource)


async def holds(request: Request, permission: str, resource: Resource | None = None) -> bool:
    user = request.scope["state"]["user"]
    return has_permission(await roles_of(request.scope, user), permission, resource)


# -- the guard -------------------------------------------------------------------


class Guard:
    """Wraps one route's ASGI app: checks the need, then runs the route."""

    def __init__(self, app: ASGIApp, needs: dict[str, Need | None], path: str) -> None:
        self.app, self.needs, self.path = app, needs, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        need_ = self.needs.get(method)
        if need_ is None:
            if method not in self.needs:  # 405: the route answers that itself
                await self.app(scope, receive, send)
                return
            await JSON(
                {"faultstring": f"{method} {self.path} has no declared permission: refused"},
                status_code=403,
            )(scope, receive, send)
            return
        if need_.public:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        user = state.get("user")
        if user is None or need_.permission is None:
            await self.app(scope, receive, send)  # authentication already refused anonymous calls
            return
        roles = await roles_of(scope, user)
        if not has_permission(roles, need_.permission):
            resource = None
            if need_.resource is not None:
                body = None
                if need_.body:
                    body, receive = await _buffer(receive)
                resource = await need_.resource(scope, body)
            if resource is None or not has_permission(roles, need_.permission, resource):
                state["denied"] = need_.permission
                exc = _denied(user, need_.permission, resource)
                await JSON(exc.to_dict(), status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body, and a receive that hands it to the route again."""
    chunks: list[bytes] = []
    first: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            first.append(message)
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *first]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return body, replay


def guard_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Wrap every route with its need; returns the routes the table misses
    (they are refused to everyone)."""
    missing: list[tuple[str, str]] = []
    for route in app.router.routes:
        if isinstance(route, Mount):
            continue  # the UI's static files
        needs: dict[str, Need | None] = {}
        for key in route_keys(route):
            needs[key[0]] = ROUTES.get(key)
            if key not in ROUTES:
                missing.append(key)
        route.app = Guard(route.app, needs, route.path)  # type: ignore[attr-defined]
    return missing
