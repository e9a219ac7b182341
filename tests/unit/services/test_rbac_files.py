"""Reading StackStorm's rbac directory: good files apply, bad ones are reported."""

from __future__ import annotations

from pathlib import Path

from squall.services.rbac import read_dir


def test_good_files_apply_and_bad_ones_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "rbac"  # a checkout holding rbac/ is accepted as well
    (root / "roles").mkdir(parents=True)
    (root / "assignments").mkdir()
    (root / "roles" / "deployers.yaml").write_text(
        "name: deployers\npermission_grants:\n"
        "  - resource_uid: pack:deploy\n    permission_types: [action_execute]\n"
    )
    (root / "roles" / "typo.yaml").write_text(
        "name: typo\npermission_grants:\n  - permission_types: [action_run]\n"
    )
    (root / "roles" / "broken.yaml").write_text("name: [unclosed\n")
    (root / "assignments" / "alice.yaml").write_text(
        "username: alice\nroles: [deployers, nobody_defined_this]\n"
    )
    roles, assignments, problems = read_dir(tmp_path)
    assert [r.name for r in roles] == ["deployers"]
    assert roles[0].source == "roles/deployers.yaml"
    assert [(a.username, a.roles, a.source) for a in assignments] == [
        ("alice", ("deployers", "nobody_defined_this"), "assignments/alice.yaml")
    ]
    assert any(p.startswith("roles/typo.yaml") and "action_run" in p for p in problems)
    assert any(p.startswith("roles/broken.yaml: cannot be read") for p in problems)
    assert any("nobody_defined_this" in p for p in problems)
