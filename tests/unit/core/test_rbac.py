from __future__ import annotations

import pytest

from squall.core.rbac import (
    BUILTIN_ROLES,
    Resource,
    Role,
    effective,
    has_permission,
    parse_assignment,
    parse_role,
    resource_from_ref,
)
from squall.errors import InvalidInput

HELLO = resource_from_ref("action", "examples.hello")
OTHER = resource_from_ref("action", "ops.restart")


def role(grants: list[dict[str, object]]) -> list[Role]:
    return [parse_role({"name": "r", "permission_grants": grants}, "roles/r.yaml")]


def test_uids_follow_stackstorm() -> None:
    assert HELLO.uid == "action:examples:hello"
    assert resource_from_ref("pack", "examples").uid == "pack:examples"
    assert Resource("key_value_pair", "system:db_pass").uid == "key_value_pair:system:db_pass"


def test_a_global_grant_covers_every_resource_and_lists() -> None:
    roles = role([{"permission_types": ["action_execute", "action_list"]}])
    assert has_permission(roles, "action_execute", HELLO)
    assert has_permission(roles, "action_execute")
    assert has_permission(roles, "action_list")
    assert not has_permission(roles, "action_delete", HELLO)


def test_a_pack_grant_covers_the_pack_content_only() -> None:
    roles = role([{"resource_uid": "pack:examples", "permission_types": ["action_execute"]}])
    assert has_permission(roles, "action_execute", HELLO)
    assert not has_permission(roles, "action_execute", OTHER)
    assert not has_permission(roles, "action_execute")  # no resource: needs a global grant


def test_a_resource_grant_and_all() -> None:
    roles = role([{"resource_uid": "action:ops:restart", "permission_types": ["action_all"]}])
    assert has_permission(roles, "action_execute", OTHER)
    assert has_permission(roles, "action_view", OTHER)
    assert not has_permission(roles, "action_view", HELLO)


def test_executions_are_judged_by_their_action() -> None:
    roles = role([{"resource_uid": "pack:examples", "permission_types": ["action_execute"]}])
    assert has_permission(roles, "execution_stop", HELLO)
    assert has_permission(roles, "execution_re_run", HELLO)
    assert not has_permission(roles, "execution_view", HELLO)
    assert not has_permission(roles, "execution_stop", OTHER)


def test_builtin_roles() -> None:
    admin, operator, observer = ([BUILTIN_ROLES[n]] for n in ("admin", "operator", "observer"))
    assert has_permission(admin, "role_assign") and has_permission(admin, "key_value_pair_decrypt")
    assert has_permission(operator, "action_execute", HELLO)
    assert has_permission(operator, "rollout_approve") and has_permission(
        operator, "inquiry_respond"
    )
    assert has_permission(operator, "key_value_pair_set")
    assert not has_permission(operator, "user_create") and not has_permission(
        operator, "role_assign"
    )
    assert not has_permission(operator, "key_value_pair_decrypt")
    assert has_permission(observer, "execution_view") and has_permission(observer, "rule_list")
    assert not has_permission(observer, "action_execute", HELLO)
    assert not has_permission(observer, "key_value_pair_decrypt")
    assert not has_permission(observer, "user_list") and not has_permission(observer, "audit_view")


def test_a_disabled_role_grants_nothing() -> None:
    r = parse_role({"name": "x", "enabled": False, "permission_grants": [
        {"permission_types": ["action_all"]}]}, "roles/x.yaml")  # fmt: skip
    assert not has_permission([r], "action_view")


def test_effective_permissions_for_the_ui() -> None:
    roles = [
        *role([{"resource_uid": "pack:examples", "permission_types": ["action_all"]}]),
        BUILTIN_ROLES["observer"],
    ]
    got = effective(roles)
    assert "action_view" in got["permissions"] and "action_execute" not in got["permissions"]
    assert "action_execute" in got["scoped"]["pack:examples"]
    assert "action_view" not in got["scoped"]["pack:examples"]  # held everywhere already


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"permission_grants": []}, "'name'"),
        ({"name": "admin"}, "built-in role"),
        ({"name": "x", "permission_grants": [{"permission_types": ["action_run"]}]}, "action_run"),
        (
            {
                "name": "x",
                "permission_grants": [{"resource_uid": "examples", "permission_types": []}],
            },
            "resource_uid",
        ),
        ([], "mapping"),
    ],
)
def test_role_files_are_checked(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        parse_role(data, "roles/x.yaml")
    assert "roles/x.yaml" in str(err.value)


def test_assignment_files() -> None:
    a = parse_assignment(
        {"username": "alice", "roles": ["operator", "deployers"], "description": "on call"},
        "assignments/alice.yaml",
    )
    assert a.username == "alice" and a.roles == ("operator", "deployers")
    assert a.source == "assignments/alice.yaml"
    with pytest.raises(InvalidInput, match="'roles'"):
        parse_assignment({"username": "bob", "roles": "admin"}, "assignments/bob.yaml")
