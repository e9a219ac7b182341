"""Every API route declares the permission it needs, and the built-in roles
get exactly what this table says: each route is called as admin, operator,
observer and a user with no role, and answers 403 or not as expected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from squall.api import permissions
from squall.api.app import create_app
from squall.config import Settings
from tests.support.server import Server

ADMIN, OPERATOR, OBSERVER, NOBODY = "admin", "operator", "observer", "nobody"
EVERYONE = {ADMIN, OPERATOR, OBSERVER, NOBODY}
VIEW = {ADMIN, OPERATOR, OBSERVER}  # everyone with a role
OPS = {ADMIN, OPERATOR}  # changes an operator makes, and views not for observers
ONLY_ADMIN = {ADMIN}

# (method, path) -> who is let through. A new route must be added here (and
# to squall/api/permissions.py), or the first test fails.
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("GET", "/health"): EVERYONE,
    ("GET", "/ready"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,
    ("GET", "/api/v1"): EVERYONE,
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    ("GET", "/api/v1/docs"): EVERYONE,
    ("GET", "/docs/oauth2-redirect"): EVERYONE,
    ("GET", "/"): EVERYONE,
    ("GET", "/ui/"): EVERYONE,
    ("POST", "/auth/v1/tokens"): EVERYONE,
    ("DELETE", "/auth/v1/tokens"): EVERYONE,
    ("GET", "/api/v1/user"): EVERYONE,
    ("GET", "/api/v1/rbac/me"): EVERYONE,
    ("POST", "/api/v1/executions"): OPS,
    ("GET", "/api/v1/executions"): VIEW,
    ("GET", "/api/v1/executions/{execution_id}"): VIEW,
    ("GET", "/api/v1/executions/{execution_id}/hosts"): VIEW,
    ("GET", "/api/v1/executions/{execution_id}/children"): VIEW,
    ("GET", "/api/v1/executions/{execution_id}/workflow"): VIEW,
    ("GET", "/api/v1/executions/{execution_id}/output"): VIEW,
    ("DELETE", "/api/v1/executions/{execution_id}"): OPS,
    ("PUT", "/api/v1/executions/{execution_id}"): OPS,
    ("POST", "/api/v1/executions/{execution_id}/re_run"): OPS,
    ("GET", "/api/v1/actions"): VIEW,
    ("GET", "/api/v1/actions/views/overview"): VIEW,
    ("GET", "/api/v1/actions/views/overview/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/actions/views/parameters/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/actions/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/runnertypes"): VIEW,
    ("GET", "/api/v1/runnertypes/{name_or_id}"): VIEW,
    ("GET", "/api/v1/packs"): VIEW,
    ("GET", "/api/v1/packs/{ref_or_id}"): VIEW,
    ("POST", "/api/v1/packs/register"): ONLY_ADMIN,
    ("POST", "/api/v1/packs/install"): ONLY_ADMIN,
    ("DELETE", "/api/v1/packs/{ref}"): ONLY_ADMIN,
    ("GET", "/api/v1/keys"): VIEW,
    ("GET", "/api/v1/keys/{name:path}"): VIEW,
    ("PUT", "/api/v1/keys/{name:path}"): OPS,
    ("DELETE", "/api/v1/keys/{name:path}"): OPS,
    ("POST", "/api/v1/datastore/rotate-key"): ONLY_ADMIN,
    ("GET", "/api/v1/apikeys"): EVERYONE,  # one's own keys
    ("POST", "/api/v1/apikeys"): EVERYONE,
    ("GET", "/api/v1/apikeys/{key_id}"): EVERYONE,
    ("PUT", "/api/v1/apikeys/{key_id}"): EVERYONE,
    ("DELETE", "/api/v1/apikeys/{key_id}"): EVERYONE,
    ("GET", "/api/v1/users"): OPS,
    ("POST", "/api/v1/users"): ONLY_ADMIN,
    ("GET", "/api/v1/users/{name}"): OPS,
    ("PUT", "/api/v1/users/{name}"): ONLY_ADMIN,
    ("GET", "/api/v1/rbac/roles"): OPS,
    ("GET", "/api/v1/rbac/roles/{name}"): OPS,
    ("GET", "/api/v1/rbac/assignments"): OPS,
    ("POST", "/api/v1/rbac/assignments"): ONLY_ADMIN,
    ("DELETE", "/api/v1/rbac/assignments/{user}/{role}"): ONLY_ADMIN,
    ("POST", "/api/v1/rbac/reload"): ONLY_ADMIN,
    ("GET", "/stream/v1/stream"): VIEW,
    ("GET", "/api/v1/rules"): VIEW,
    ("GET", "/api/v1/rules/views"): VIEW,
    ("GET", "/api/v1/rules/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/rules/{ref_or_id}/explain"): VIEW,
    ("POST", "/api/v1/rules"): ONLY_ADMIN,
    ("PUT", "/api/v1/rules/{ref_or_id}"): ONLY_ADMIN,
    ("DELETE", "/api/v1/rules/{ref_or_id}"): ONLY_ADMIN,
    ("GET", "/api/v1/ruleenforcements"): VIEW,
    ("GET", "/api/v1/ruleenforcements/{enforcement_id}"): VIEW,
    ("GET", "/api/v1/triggertypes"): VIEW,
    ("GET", "/api/v1/triggertypes/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/triggers"): VIEW,
    ("GET", "/api/v1/triggers/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/timers"): VIEW,
    ("GET", "/api/v1/timers/{ref_or_id}"): VIEW,
    ("GET", "/api/v1/triggerinstances"): VIEW,
    ("GET", "/api/v1/triggerinstances/{instance_id}"): VIEW,
    ("POST", "/api/v1/triggerinstances/{instance_id}/re_emit"): OPS,
    ("POST", "/api/v1/webhooks/{url:path}"): OPS,
    ("GET", "/api/v1/webhooks"): VIEW,
    ("GET", "/api/v1/webhooks/{url:path}"): VIEW,
    ("GET", "/api/v1/sensortypes"): VIEW,
    ("GET", "/api/v1/sensortypes/{ref_or_id}"): VIEW,
    ("PUT", "/api/v1/sensortypes/{ref_or_id}"): ONLY_ADMIN,
    ("GET", "/api/v1/inquiries"): VIEW,
    ("GET", "/api/v1/inquiries/{inquiry_id}"): VIEW,
    ("PUT", "/api/v1/inquiries/{inquiry_id}"): OPS,
    ("GET", "/api/v1/inventory/hosts"): VIEW,
    ("GET", "/api/v1/inventory/hosts/{name}"): VIEW,
    ("GET", "/api/v1/inventory/groups"): VIEW,
    ("POST", "/api/v1/inventory/facts"): OPS,
    ("POST", "/api/v1/rollouts/plan"): VIEW,
    ("POST", "/api/v1/rollouts"): OPS,
    ("GET", "/api/v1/rollouts"): VIEW,
    ("GET", "/api/v1/rollouts/{rollout_id}"): VIEW,
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): OPS,
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): OPS,
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): OPS,
    ("POST", "/api/v1/rollouts/{rollout_id}/rollback"): OPS,
    ("POST", "/api/v1/rollouts/{rollout_id}/retry"): OPS,
    ("POST", "/api/v1/rollouts/{rollout_id}/skip"): OPS,
    ("GET", "/api/v1/audit"): OPS,
    ("GET", "/api/v1/audit/verify"): OPS,
    ("GET", "/api/v1/audit/export"): OPS,
}

# Calls that would change the shared server for the other tests even when
# refused nothing: only the refusals are checked for them.
NOT_CALLED_WHEN_ALLOWED = {
    ("POST", "/api/v1/datastore/rotate-key"),
    ("POST", "/api/v1/packs/register"),
    ("POST", "/api/v1/rbac/reload"),
}

# A body each route refuses (400) or ignores, so an allowed call changes nothing.
BODIES: dict[tuple[str, str], object] = {
    ("POST", "/api/v1/apikeys"): {"metadata": "not an object"},
    ("PUT", "/api/v1/keys/{name:path}"): {"value": 1},
    ("POST", "/api/v1/users"): {"name": ""},
    ("POST", "/api/v1/rbac/assignments"): {"user": ""},
    ("POST", "/api/v1/rules"): {"pack": "rbac_probe", "name": "x"},
    ("POST", "/api/v1/executions"): {"action": "rbac_probe.none"},
    ("POST", "/api/v1/packs/install"): {"packs": []},
    ("POST", "/api/v1/inventory/facts"): {"target": 1},
    ("POST", "/api/v1/rollouts"): {"spec": 1},
    ("POST", "/api/v1/rollouts/plan"): {"spec": 1},
}


def app_route_keys(tmp_path: Path) -> list[tuple[str, str]]:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}")
    app = create_app(settings)
    keys: list[tuple[str, str]] = []
    for route in app.routes:
        if hasattr(route, "methods") and route.methods is not None:
            keys += permissions.route_keys(route)
    return keys


def test_every_route_declares_its_permission(tmp_path: Path) -> None:
    keys = app_route_keys(tmp_path)
    undeclared = [k for k in keys if k not in permissions.ROUTES]
    assert not undeclared, f"routes with no permission in squall/api/permissions.py: {undeclared}"
    untested = [k for k in keys if k not in EXPECTED]
    assert not untested, f"routes missing from this test's EXPECTED table: {untested}"


@pytest.fixture(scope="module")
def callers(server: Server) -> Iterator[dict[str, httpx.Client]]:
    clients = {ADMIN: server.client()}
    admin = clients[ADMIN]
    for role in (OPERATOR, OBSERVER, NOBODY):
        name = f"rbac-{role}-{uuid.uuid4().hex[:6]}"
        body = {"name": name, "roles": [] if role == NOBODY else [role]}
        r = admin.post("/api/v1/users", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["password"] and r.json()["roles"] == body["roles"]
        key = admin.post("/api/v1/apikeys", json={"user": name})
        assert key.status_code == 201, key.text
        clients[role] = httpx.Client(
            base_url=server.url, headers={"St2-Api-Key": key.json()["key"]}, timeout=30
        )
    yield clients
    for c in clients.values():
        c.close()


def _url(path: str) -> str:
    return (
        path.replace("{name:path}", "rbac_probe/key")
        .replace("{url:path}", "rbac_probe")
        .replace("{role}", "observer")
        .replace("{user}", "rbac-nobody-none")
        .replace("{", "")
        .replace("}", "_rbac_probe")
    )


def test_each_role_gets_what_the_table_says(
    tmp_path: Path, callers: dict[str, httpx.Client]
) -> None:
    wrong = []
    for key in sorted(app_route_keys(tmp_path)):
        method, path = key
        for who, client in callers.items():
            allowed = who in EXPECTED[key]
            if allowed and key in NOT_CALLED_WHEN_ALLOWED:
                continue
            body = BODIES.get(key, {})
            kwargs = {"json": body} if method in ("POST", "PUT") else {}
            with client.stream(method, _url(path), **kwargs) as r:
                status = r.status_code
                text = r.read().decode() if status == 403 else ""
            if (status == 403) == allowed:
                wrong.append(f"{method} {path} as {who}: {status} {text[:200]}")
            elif status == 403 and "'" not in text:
                wrong.append(f"{method} {path} as {who}: 403 without naming the permission")
    assert not wrong, "\n".join(wrong)


def test_a_refusal_names_the_permission_and_is_audited(callers: dict[str, httpx.Client]) -> None:
    observer, admin = callers[OBSERVER], callers[ADMIN]
    r = observer.post("/api/v1/executions", json={"action": "core.noop"})
    assert r.status_code == 403
    assert "'action_execute'" in r.json()["faultstring"]
    assert "action:core:noop" in r.json()["faultstring"]
    # Secrets stay masked for all but admins: decrypting is a permission of its own.
    for who in (OBSERVER, OPERATOR):
        r = callers[who].get("/api/v1/keys", params={"decrypt": "true"})
        assert r.status_code == 403 and "'key_value_pair_decrypt'" in r.json()["faultstring"]
    assert admin.get("/api/v1/keys", params={"decrypt": "true"}).status_code == 200
    # Webhooks are served on a path of their own, and checked and audited there.
    r = observer.post("/api/v1/webhooks/rbac_probe", json={})
    assert r.status_code == 403 and "'webhook_send'" in r.json()["faultstring"]
    me = observer.get("/api/v1/user").json()["username"]
    found = admin.get("/api/v1/audit", params={"actor": me, "kind": "denied"}).json()
    denied = {(rec["action"], rec["details"].get("permission")) for rec in found}
    assert ("POST /api/v1/executions", "action_execute") in denied, found
    assert ("POST /api/v1/webhooks/rbac_probe", "webhook_send") in denied, found
