"""Roles and role assignments. Built-in roles live in code (core/rbac.py);
roles read from the rbac directory are stored here so every process sees
the same ones. Assignments come from the API (``source`` "api") or from
files (``source`` the file's path): a reload replaces the file-sourced ones
and never touches those made through the API."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.core.rbac import BUILTIN_ROLES, Assignment, Grant, Role
from squall.errors import Conflict, NotFound
from squall.store.ids import new_id
from squall.store.tables import role_assignments, roles, users

API = "api"


def _role(row: Any) -> Role:
    grants = tuple(
        Grant(frozenset(g.get("permission_types") or []), g.get("resource_uid"))
        for g in row.grants or []
    )
    return Role(row.name, grants, row.description, row.source, bool(row.enabled))


def list_roles(conn: Connection) -> list[Role]:
    stored = [_role(r) for r in conn.execute(sa.select(roles).order_by(roles.c.name)).all()]
    return [*BUILTIN_ROLES.values(), *stored]


def get_role(conn: Connection, name: str) -> Role:
    if name in BUILTIN_ROLES:
        return BUILTIN_ROLES[name]
    row = conn.execute(sa.select(roles).where(roles.c.name == name)).first()
    if row is None:
        known = ", ".join(r.name for r in list_roles(conn))
        raise NotFound(f"no role named {name!r} (roles: {known})")
    return _role(row)


def role_names_of(conn: Connection, user: str) -> list[str]:
    """The roles ``user`` holds: its assignments, and ``admin`` for the
    administrator made on first start."""
    names = [
        r.role
        for r in conn.execute(
            sa.select(role_assignments.c.role)
            .where(role_assignments.c.user == user)
            .order_by(role_assignments.c.created_at)
        ).all()
    ]
    admin = conn.execute(sa.select(users.c.is_admin).where(users.c.name == user)).scalar()
    if admin:
        names.insert(0, "admin")
    return list(dict.fromkeys(names))


def roles_of(conn: Connection, user: str) -> list[Role]:
    names = role_names_of(conn, user)
    found = [BUILTIN_ROLES[n] for n in names if n in BUILTIN_ROLES]
    others = [n for n in names if n not in BUILTIN_ROLES]
    if others:
        rows = conn.execute(sa.select(roles).where(roles.c.name.in_(others))).all()
        found += [_role(r) for r in rows]
    return found


def list_assignments(conn: Connection, user: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(role_assignments).order_by(role_assignments.c.user, role_assignments.c.role)
    if user:
        q = q.where(role_assignments.c.user == user)
    return [dict(r._mapping) for r in conn.execute(q).all()]


def assign(
    conn: Connection, user: str, role: str, *, source: str = API, description: str = ""
) -> dict[str, Any]:
    get_role(conn, role)  # NotFound names the roles there are
    exists = conn.execute(
        sa.select(role_assignments.c.id).where(
            role_assignments.c.user == user,
            role_assignments.c.role == role,
            role_assignments.c.source == source,
        )
    ).first()
    if exists:
        raise Conflict(f"user {user!r} already holds role {role!r}")
    row = {
        "id": new_id(),
        "user": user,
        "role": role,
        "source": source,
        "description": description,
        "created_at": time.time(),
    }
    conn.execute(role_assignments.insert().values(**row))
    return row


def revoke(conn: Connection, user: str, role: str) -> None:
    """Remove an assignment made through the API; one read from a file is
    changed in the file (else the next reload would bring it back)."""
    rows = list_assignments(conn, user)
    mine = [r for r in rows if r["role"] == role]
    if not mine:
        raise NotFound(f"user {user!r} does not hold role {role!r}")
    api = [r for r in mine if r["source"] == API]
    if not api:
        files = ", ".join(r["source"] for r in mine)
        raise Conflict(
            f"user {user!r} holds role {role!r} from {files}: remove it there and reload"
        )
    conn.execute(role_assignments.delete().where(role_assignments.c.id == api[0]["id"]))


def replace_from_files(
    conn: Connection, file_roles: Iterable[Role], file_assignments: Iterable[Assignment]
) -> dict[str, int]:
    """Make the stored roles and file-sourced assignments those just read."""
    now = time.time()
    conn.execute(roles.delete())
    conn.execute(role_assignments.delete().where(role_assignments.c.source != API))
    n_roles = n_assign = 0
    for role in file_roles:
        conn.execute(
            roles.insert().values(
                name=role.name,
                description=role.description,
                grants=[g.to_dict() for g in role.grants],
                enabled=role.enabled,
                source=role.source,
                updated_at=now,
            )
        )
        n_roles += 1
    for a in file_assignments:
        if not a.enabled:
            continue
        for name in dict.fromkeys(a.roles):
            conn.execute(
                role_assignments.insert().values(
                    id=new_id(),
                    user=a.username,
                    role=name,
                    source=a.source,
                    description=a.description,
                    created_at=now,
                )
            )
            n_assign += 1
    return {"roles": n_roles, "assignments": n_assign}
