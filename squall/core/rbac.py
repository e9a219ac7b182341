"""Role-based access control: which permissions exist, what the built-in
roles grant, how role and assignment files read, and the one question the
API asks: does a user holding these roles have permission P on resource R?

Permissions are named ``<resource type>_<verb>`` like StackStorm's
(``action_execute``, ``rule_modify``, ``key_value_pair_set``...). A grant
gives some permission types either everywhere (no ``resource_uid``), on one
resource (``action:examples:hello``) or on every resource of a pack
(``pack:examples``). ``<type>_all`` stands for every verb of its type.

A check without a resource (a list, a create with no pack) needs a grant
that holds everywhere; a check on a resource is satisfied by a grant
everywhere, on the resource, or on its pack. An execution is judged by
its action as well: ``action_view`` on the action lets a user view its
executions, ``action_execute`` lets them re-run and stop them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from squall.errors import InvalidInput

# The verbs of each resource type. The API's route table names its
# permissions from this list; a name not here is a typo.
VERBS: dict[str, tuple[str, ...]] = {
    "pack": ("list", "view", "install", "uninstall", "register"),
    "action": ("list", "view", "create", "modify", "delete", "execute"),
    "rule": ("list", "view", "create", "modify", "delete"),
    "rule_enforcement": ("list", "view"),
    "execution": ("list", "view", "re_run", "stop"),
    "trigger": ("list", "view", "re_emit"),
    "sensor_type": ("list", "view", "modify"),
    "runner_type": ("list", "view"),
    "key_value_pair": ("list", "view", "set", "delete", "decrypt", "rotate"),
    "inquiry": ("list", "view", "respond"),
    "webhook": ("list", "view", "send"),
    "rollout": ("list", "view", "start", "approve", "pause", "abort", "rollback"),
    "inventory": ("list", "view", "gather"),
    "stream": ("view",),
    "audit": ("view",),
    "api_key": ("list", "view", "create", "modify", "delete"),
    "user": ("list", "view", "create", "modify"),
    "role": ("list", "view", "assign", "reload"),
}

# Every permission, with its resource type (checked on every API request: a lookup).
_TYPE_OF: dict[str, str] = {f"{t}_{v}": t for t, verbs in VERBS.items() for v in (*verbs, "all")}
PERMISSIONS: frozenset[str] = frozenset(_TYPE_OF)

# Per resource type, the verb an execution check falls back to on its action.
_EXECUTION_VIA_ACTION = {
    "execution_view": "action_view",
    "execution_re_run": "action_execute",
    "execution_stop": "action_execute",
}


def resource_type_of(permission: str) -> str:
    """``action_execute`` -> ``action``; ``key_value_pair_set`` -> ``key_value_pair``."""
    try:
        return _TYPE_OF[permission]
    except KeyError:
        raise InvalidInput(f"unknown permission {permission!r}") from None


@dataclass(frozen=True)
class Resource:
    """What a request acts on: ``Resource("action", "examples.hello", "examples")``."""

    type: str
    ref: str
    pack: str | None = None

    @property
    def uid(self) -> str:
        # StackStorm's uids: type:pack:name for pack content, type:ref otherwise.
        if self.pack and self.ref.startswith(self.pack + "."):
            return f"{self.type}:{self.pack}:{self.ref[len(self.pack) + 1 :]}"
        return f"{self.type}:{self.ref}"


def resource_from_ref(rtype: str, ref: str) -> Resource:
    """A pack content resource named by its ``pack.name`` ref."""
    if rtype == "pack":
        return Resource("pack", ref, ref)
    pack, dot, _ = ref.partition(".")
    return Resource(rtype, ref, pack if dot else None)


@dataclass(frozen=True)
class Grant:
    permission_types: frozenset[str]
    resource_uid: str | None = None  # None: everywhere

    def covers(self, permission: str) -> bool:
        if permission in self.permission_types:
            return True
        return f"{resource_type_of(permission)}_all" in self.permission_types

    def applies_to(self, resource: Resource | None) -> bool:
        if self.resource_uid is None:
            return True
        if resource is None:
            return False
        return self.resource_uid in (resource.uid, f"pack:{resource.pack}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource_uid": self.resource_uid,
            "permission_types": sorted(self.permission_types),
        }


@dataclass(frozen=True)
class Role:
    name: str
    grants: tuple[Grant, ...] = ()
    description: str = ""
    source: str = "builtin"  # builtin | api | a file's path under the rbac directory
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "enabled": self.enabled,
            "permission_grants": [g.to_dict() for g in self.grants],
        }


@dataclass(frozen=True)
class Assignment:
    """``username`` holds ``roles``; ``source`` says where that was decided."""

    username: str
    roles: tuple[str, ...]
    description: str = ""
    source: str = "api"
    enabled: bool = True


def has_permission(
    roles: Iterable[Role], permission: str, resource: Resource | None = None
) -> bool:
    """Whether any of ``roles`` grants ``permission`` (on ``resource``, if given)."""
    roles = [r for r in roles if r.enabled]
    for role in roles:
        for grant in role.grants:
            if grant.covers(permission) and grant.applies_to(resource):
                return True
    via = _EXECUTION_VIA_ACTION.get(permission)
    if via and resource is not None and resource.type == "action":
        return has_permission(roles, via, resource)
    return False


def effective(roles: Iterable[Role]) -> dict[str, Any]:
    """What the UI needs to hide what it cannot do: the permissions held
    everywhere, and those held on particular resources or packs."""
    everywhere: set[str] = set()
    scoped: dict[str, set[str]] = {}
    for role in roles:
        if not role.enabled:
            continue
        for grant in role.grants:
            expanded = _expand(grant.permission_types)
            if grant.resource_uid is None:
                everywhere |= expanded
            else:
                scoped.setdefault(grant.resource_uid, set()).update(expanded)
    return {
        "permissions": sorted(everywhere),
        "scoped": {
            uid: sorted(p - everywhere) for uid, p in sorted(scoped.items()) if p - everywhere
        },
    }


def _expand(types: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in types:
        if p.endswith("_all") and p[: -len("_all")] in VERBS:
            rtype = p[: -len("_all")]
            out |= {f"{rtype}_{v}" for v in VERBS[rtype]}
        else:
            out.add(p)
    return out


# -- the built-in roles -------------------------------------------------------

_VIEWS = frozenset(p for p in PERMISSIONS if p.endswith(("_list", "_view")))
# Not for observers: who holds which key or role, the audit trail.
_ADMIN_VIEWS = frozenset(
    p for p in _VIEWS if resource_type_of(p) in ("user", "role", "api_key", "audit")
)
_OPERATOR = _VIEWS | {
    "action_execute",
    "execution_re_run",
    "execution_stop",
    "inquiry_respond",
    "rollout_start",
    "rollout_approve",
    "rollout_pause",
    "rollout_abort",
    "rollout_rollback",
    "webhook_send",
    "trigger_re_emit",
    "key_value_pair_set",
    "key_value_pair_delete",
    "inventory_gather",
}

BUILTIN_ROLES: dict[str, Role] = {
    "admin": Role(
        "admin",
        (Grant(frozenset(f"{t}_all" for t in VERBS)),),
        "Everything, including users, roles and decrypted secrets.",
    ),
    "operator": Role(
        "operator",
        (Grant(frozenset(_OPERATOR)),),
        "View everything, run actions, steer executions and rollouts, answer inquiries, "
        "read and write the datastore; no user or role management, no decrypted secrets.",
    ),
    "observer": Role(
        "observer",
        (Grant(_VIEWS - _ADMIN_VIEWS),),
        "View only: no changes, no secrets, no users, roles, API keys or audit trail.",
    ),
}


# -- StackStorm's files: rbac/roles/*.yaml and rbac/assignments/*.yaml ---------


def parse_role(data: Any, source: str) -> Role:
    """A role file: ``name``, ``description``, ``enabled``, ``permission_grants``
    (each with an optional ``resource_uid`` and ``permission_types``)."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source}: a role file must be a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{source}: 'name' must be the role's name")
    if name in BUILTIN_ROLES:
        raise InvalidInput(f"{source}: {name!r} is a built-in role and cannot be redefined")
    grants = []
    for i, item in enumerate(data.get("permission_grants") or []):
        where = f"{source}: permission_grants[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} must be a mapping")
        types = item.get("permission_types") or []
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise InvalidInput(f"{where}.permission_types must be a list of permission names")
        unknown = sorted(set(types) - PERMISSIONS)
        if unknown:
            raise InvalidInput(f"{where}.permission_types: unknown {', '.join(unknown)}")
        uid = item.get("resource_uid")
        if uid is not None and (not isinstance(uid, str) or ":" not in uid):
            raise InvalidInput(f"{where}.resource_uid must look like 'pack:examples'")
        grants.append(Grant(frozenset(types), uid))
    return Role(
        name,
        tuple(grants),
        str(data.get("description") or ""),
        source,
        bool(data.get("enabled", True)),
    )


def parse_assignment(data: Any, source: str) -> Assignment:
    """An assignment file: ``username``, ``roles``, ``description``, ``enabled``."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source}: an assignment file must be a mapping")
    user = data.get("username")
    if not isinstance(user, str) or not user:
        raise InvalidInput(f"{source}: 'username' must be a user name")
    roles = data.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise InvalidInput(f"{source}: 'roles' must be a list of role names")
    return Assignment(
        user,
        tuple(roles),
        str(data.get("description") or ""),
        source,
        bool(data.get("enabled", True)),
    )


@dataclass
class Snapshot:
    """Roles by name, to resolve a user's role names into roles."""

    roles: dict[str, Role] = field(default_factory=lambda: dict(BUILTIN_ROLES))

    def resolve(self, names: Iterable[str]) -> list[Role]:
        return [self.roles[n] for n in dict.fromkeys(names) if n in self.roles]
