"""/api/v1/rbac: roles, role assignments, and reloading the role files.

GET    /api/v1/rbac/roles                     built-in and file roles
GET    /api/v1/rbac/roles/{name}              one role with its grants
GET    /api/v1/rbac/assignments[?user=U]      who holds which role, and from where
POST   /api/v1/rbac/assignments               {"user": U, "role": R}
DELETE /api/v1/rbac/assignments/{user}/{role} (assignments made through the API)
POST   /api/v1/rbac/reload                    read the rbac directory again
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from squall.api import permissions
from squall.api.deps import JSON, body_schema, forget_credentials, json_body, requester, system
from squall.core.timestamps import iso
from squall.errors import InvalidInput, NotFound
from squall.services import rbac as rbac_service
from squall.store import audit, auth
from squall.store import rbac as store

router = APIRouter(prefix="/api/v1/rbac", tags=["rbac"])


def assignment_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user": row["user"],
        "role": row["role"],
        "source": row["source"],
        "is_remote": False,
        "from_file": row["source"] != store.API,
        "description": row["description"],
        "created_at": iso(row["created_at"]),
    }


@router.get("/roles")
async def list_roles(request: Request) -> JSON:
    return JSON([r.to_dict() for r in await system(request).db.read(store.list_roles)])


@router.get("/roles/{name}")
async def get_role(request: Request, name: str) -> JSON:
    return JSON((await system(request).db.read(store.get_role, name)).to_dict())


@router.get("/assignments")
async def list_assignments(request: Request, user: str | None = None) -> JSON:
    rows = await system(request).db.read(store.list_assignments, user)
    return JSON([assignment_view(r) for r in rows])


@router.post(
    "/assignments",
    status_code=201,
    openapi_extra=body_schema(
        {"user": {"type": "string"}, "role": {"type": "string"}, "description": {"type": "string"}},
        ["user", "role"],
    ),
)
async def assign(request: Request) -> JSON:
    body = await json_body(request)
    user, role = body.get("user"), body.get("role")
    if not isinstance(user, str) or not user or not isinstance(role, str) or not role:
        raise InvalidInput("send 'user' and 'role' (names)")
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise InvalidInput("'description' must be text")
    caller = requester(request)

    def make(conn: Any) -> dict[str, Any]:
        if auth.get_user(conn, user) is None:
            raise NotFound(f"no user named {user!r}: create it first ('squall user add')")
        row = store.assign(conn, user, role, description=description)
        audit.record(
            conn, actor=caller, kind="identity", action="assign role", target=user,
            details={"role": role},
        )  # fmt: skip
        return row

    row = await system(request).db.write(make)
    permissions.forget_roles()
    return JSON(assignment_view(row), status_code=201)


@router.delete("/assignments/{user}/{role}", status_code=204)
async def revoke(request: Request, user: str, role: str) -> Response:
    caller = requester(request)

    def remove(conn: Any) -> None:
        store.revoke(conn, user, role)
        audit.record(
            conn, actor=caller, kind="identity", action="revoke role", target=user,
            details={"role": role},
        )  # fmt: skip

    await system(request).db.write(remove)
    permissions.forget_roles()
    forget_credentials()
    return Response(status_code=204)


@router.post("/reload")
async def reload(request: Request) -> JSON:
    sys = system(request)
    report = await rbac_service.reload(sys.db, sys.settings.rbac_dir, requester(request))
    permissions.forget_roles()
    return JSON(report)
