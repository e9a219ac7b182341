"""Users, API keys and roles through the CLI, against a real server: keys
shown once, expiring and revoked; disabled users shut out at once; roles from
the API and from files kept in git; a rule running with its owner's
permissions."""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from squall.cli.main import cli
from tests.integration.cli.conftest import CliServer

Squall = Callable[..., Any]


@pytest.fixture()
def squall(cli_server: CliServer) -> Squall:
    """``squall ARGS...`` in this process (the server is real; starting a
    Python per command would cost more than the whole test)."""

    def run(*args: str, input: str | None = None) -> Any:
        result = CliRunner().invoke(cli, list(args), env=cli_server.env(), input=input)
        result.returncode = result.exit_code
        return result

    return run


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


def line(out: str, prefix: str) -> str:
    return next(x for x in out.splitlines() if x.startswith(prefix)).split(":", 1)[1].strip()


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := fn():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def as_key(server: CliServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"St2-Api-Key": key}, timeout=30)


def test_users_and_api_keys(squall: Squall, cli_server: CliServer) -> None:
    name = f"carol-{uuid.uuid4().hex[:6]}"
    out = ok(squall("user", "add", name, "--role", "operator"))
    password = line(out, "password")
    assert len(password) >= 12
    listed = ok(squall("user", "list"))
    assert name in listed and "operator" in listed

    out = ok(squall("apikey", "create", "--user", name, "--expires", "30d", "--description", "ci"))
    key, key_id = line(out, "key"), out.split()[2]
    with as_key(cli_server, key) as carol:
        me = carol.get("/api/v1/rbac/me").json()
        assert me["username"] == name and me["roles"] == ["operator"]
        assert "action_execute" in me["permissions"] and "user_create" not in me["permissions"]
        # An operator sees every key, but makes keys only for herself.
        assert carol.post("/api/v1/apikeys", json={"user": "admin"}).status_code == 403
        token = httpx.post(
            f"{cli_server.url}/auth/v1/tokens", auth=(name, password), json={}
        ).json()["token"]
        assert carol.get("/api/v1/executions", headers={"X-Auth-Token": token}).status_code == 200

        listed = ok(squall("apikey", "list"))
        assert key_id in listed and "ci" in listed and key not in listed

        # Disabled: the token and the key stop at once; enabled again, they work.
        ok(squall("user", "disable", name))
        assert carol.get("/api/v1/executions").status_code == 401
        with_token = {"X-Auth-Token": token}
        assert httpx.get(f"{cli_server.url}/api/v1/user", headers=with_token).status_code == 401
        signed_in = httpx.post(f"{cli_server.url}/auth/v1/tokens", auth=(name, password), json={})
        assert signed_in.status_code == 401
        ok(squall("user", "enable", name))
        assert carol.get("/api/v1/executions").status_code == 200

        ok(squall("apikey", "revoke", key_id))
        assert carol.get("/api/v1/executions").status_code == 401
        assert "revoked" in ok(squall("apikey", "list"))

    # A key past its expiry is refused.
    out = ok(squall("apikey", "create", "--expires", "1s"))
    time.sleep(1.1)  # the clock is the condition
    with as_key(cli_server, line(out, "key")) as short:
        assert short.get("/api/v1/user").status_code == 401
    bad = squall("apikey", "create", "--expires", "soon")
    assert bad.returncode != 0 and "--expires" in bad.stderr

    # A password of one's choosing, from stdin: never printed.
    other = f"erin-{uuid.uuid4().hex[:6]}"
    out = ok(squall("user", "add", other, "--password-stdin", input="erin's passphrase\n"))
    assert "password" not in out
    signed_in = httpx.post(
        f"{cli_server.url}/auth/v1/tokens", auth=(other, "erin's passphrase"), json={}
    )
    assert signed_in.status_code == 201
    with as_key(cli_server, "") as nobody:
        token = {"X-Auth-Token": signed_in.json()["token"]}
        r = nobody.post("/api/v1/executions", json={"action": "core.noop"}, headers=token)
        assert r.status_code == 403  # no role: signed in, allowed nothing

    audit = httpx.get(
        f"{cli_server.url}/api/v1/audit",
        params={"kind": "identity", "target": name},
        headers={"St2-Api-Key": cli_server.api_key},
    ).json()
    assert {"create user", "disable user", "enable user"} <= {r["action"] for r in audit}


def test_roles_from_the_cli_and_from_files(squall: Squall, cli_server: CliServer) -> None:
    rbac = cli_server.data_dir.parent / "rbac"
    (rbac / "roles").mkdir(parents=True, exist_ok=True)
    (rbac / "assignments").mkdir(parents=True, exist_ok=True)
    (rbac / "roles" / "local_runner.yaml").write_text(
        textwrap.dedent("""
        name: local_runner
        description: runs core.local and nothing else
        permission_grants:
          - resource_uid: action:core:local
            permission_types: [action_execute, action_view]
          - permission_types: [execution_list, rule_create, rule_view]
        """)
    )
    dave = f"dave-{uuid.uuid4().hex[:6]}"
    (rbac / "assignments" / "dave.yaml").write_text(f"username: {dave}\nroles: [local_runner]\n")
    out = ok(squall("rbac", "reload"))
    assert "1 roles, 1 assignments" in out
    assert "local_runner" in ok(squall("role", "list"))
    got = ok(squall("role", "get", "local_runner"))
    assert "action:core:local" in got and dave in got and "assignments/dave.yaml" in got

    key = line(ok(squall("apikey", "create", "--user", dave)), "key")
    with as_key(cli_server, key) as client:
        r = client.post("/api/v1/executions", json={"action": "core.local", "parameters": {}})
        assert r.status_code != 403, r.text
        r = client.post("/api/v1/executions", json={"action": "core.noop"})
        assert r.status_code == 403
        assert "'action_execute' on action:core:noop" in r.json()["faultstring"]

        # A file's assignment is changed in the file, not from the CLI.
        refused = squall("role", "revoke", dave, "local_runner")
        assert refused.returncode != 0 and "assignments/dave.yaml" in refused.stderr
        ok(squall("role", "assign", dave, "observer"))
        assert sorted(client.get("/api/v1/rbac/me").json()["roles"]) == ["local_runner", "observer"]
        ok(squall("role", "revoke", dave, "observer"))
        assert client.get("/api/v1/rbac/me").json()["roles"] == ["local_runner"]

        # dave's rule may not run core.noop: the enforcement fails, saying why.
        admin = as_key(cli_server, cli_server.api_key)
        url = f"rbac-owner-{dave}"
        rule = {
            "name": f"owned_{dave.replace('-', '_')}",
            "pack": "default",
            "enabled": True,
            "trigger": {"type": "core.st2.webhook", "parameters": {"url": url}},
            "action": {"ref": "core.noop"},
        }
        r = client.post("/api/v1/rules", json=rule)
        assert r.status_code == 201, r.text
        assert r.json()["context"]["user"] == dave
        admin.post("/api/v1/rules", json={**rule, "name": rule["name"] + "_admin"})
        wait_for(
            lambda: admin.post(f"/api/v1/webhooks/{url}", json={}).status_code == 202,
            "the webhook",
        )

        def enforcements() -> list[dict[str, Any]]:
            found = admin.get("/api/v1/ruleenforcements", params={"limit": 100}).json()
            return [e for e in found if e["rule"]["ref"].startswith(f"default.{rule['name']}")]

        done = wait_for(lambda: len(enforcements()) == 2 and enforcements(), "enforcements")
        by_rule = {e["rule"]["ref"]: e for e in done}
        mine = by_rule[f"default.{rule['name']}"]
        assert mine["status"] == "failed" and "execution_id" not in mine
        assert "'action_execute'" in mine["failure_reason"] and dave in mine["failure_reason"]
        theirs = by_rule[f"default.{rule['name']}_admin"]
        execution = admin.get(f"/api/v1/executions/{theirs['execution_id']}").json()
        assert execution["context"]["user"] == "admin"
        admin.close()
