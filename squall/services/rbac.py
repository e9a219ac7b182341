"""Role and assignment files kept in git, in StackStorm's layout:

    <rbac dir>/roles/*.yaml         one role per file
    <rbac dir>/assignments/*.yaml   one user's roles per file

(``<rbac dir>/rbac/roles`` is accepted too, for a checkout whose root holds
an ``rbac`` directory.) They are read on start and on ``squall rbac
reload``; a file that cannot be used is reported and skipped, the others
still apply."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from squall.core.rbac import Assignment, Role, parse_assignment, parse_role
from squall.errors import InvalidInput
from squall.store import audit
from squall.store import rbac as store
from squall.store.db import Database

log = logging.getLogger(__name__)


def _root(rbac_dir: Path) -> Path:
    nested = rbac_dir / "rbac"
    return nested if (nested / "roles").is_dir() or (nested / "assignments").is_dir() else rbac_dir


def read_dir(rbac_dir: Path) -> tuple[list[Role], list[Assignment], list[str]]:
    """The roles and assignments under ``rbac_dir``, and the problems found."""
    root = _root(rbac_dir)
    roles: list[Role] = []
    assignments: list[Assignment] = []
    problems: list[str] = []
    for kind in ("roles", "assignments"):
        for path in sorted((root / kind).glob("*.y*ml")):
            source = str(path.relative_to(root))
            try:
                data = yaml.safe_load(path.read_text())
                if kind == "roles":
                    role = parse_role(data, source)
                    if any(r.name == role.name for r in roles):
                        raise InvalidInput(f"{source}: role {role.name!r} is defined twice")
                    roles.append(role)
                else:
                    assignments.append(parse_assignment(data, source))
            except (OSError, yaml.YAMLError) as exc:
                problems.append(f"{source}: cannot be read: {exc}")
            except InvalidInput as exc:
                problems.append(exc.message)
    known = {r.name for r in roles} | {"admin", "operator", "observer"}
    for a in assignments:
        for name in a.roles:
            if name not in known:
                problems.append(f"{a.source}: role {name!r} is not defined (assigned anyway)")
    return roles, assignments, problems


async def reload(db: Database, rbac_dir: Path | None, actor: str | None) -> dict[str, Any]:
    """Read the files and make them what the store holds (one transaction)."""
    if rbac_dir is None:
        return {"roles": 0, "assignments": 0, "problems": [], "directory": None}
    roles, assignments, problems = read_dir(rbac_dir)
    for problem in problems:
        log.warning("rbac: %s", problem)

    def apply(conn: Any) -> dict[str, int]:
        counts = store.replace_from_files(conn, roles, assignments)
        audit.record(
            conn,
            actor=actor or "system",
            kind="rbac",
            action="reload",
            details={**counts, "problems": problems},
        )
        return counts

    counts = await db.write(apply)
    return {**counts, "problems": problems, "directory": str(rbac_dir)}
