"""The audit trail through the API and the CLI: changes, executions, sign-ins
and refusals recorded, secrets masked, the chain verified and exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.support.server import API_KEY, PASSWORD, ROOT, Server


def records(client: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/audit", params={"limit": 200, **filters})
    assert r.status_code == 200, r.text
    return list(r.json())


def wait_sealed(client: httpx.Client, timeout: float = 15) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        result = client.get("/api/v1/audit/verify").json()
        if result["unsealed"] == 0 or time.time() > deadline:
            return dict(result)
        time.sleep(0.3)


def test_changes_executions_and_sign_ins_are_recorded(client: httpx.Client, server: Server) -> None:
    key = f"audit-{time.time_ns()}"
    assert client.put(f"/api/v1/keys/{key}", json={"name": key, "value": "v"}).status_code == 200
    r = client.post(
        "/api/v1/executions",
        json={"action": "tpack.secret_echo", "parameters": {"token": "hunter2-audit"}},
    )
    assert r.status_code == 201, r.text
    execution = r.json()["id"]
    with httpx.Client(base_url=server.url) as anonymous:
        bad = anonymous.post("/auth/v1/tokens", auth=("admin", "wrong"), json={})
        assert bad.status_code == 401
        good = anonymous.post("/auth/v1/tokens", auth=("admin", PASSWORD), json={})
        assert good.status_code == 201
        assert anonymous.delete("/api/v1/keys/nope").status_code == 401

    # Other tests share the server: filter down to this test's records.
    change = records(client, kind="api", target=key)[0]
    assert change["actor"] == "admin" and change["action"] == f"PUT /api/v1/keys/{key}"
    assert change["outcome"] == "ok" and change["source"] == "127.0.0.1"

    run = records(client, kind="execution", target=execution)
    assert len(run) == 1 and run[0]["actor"] == "admin" and run[0]["source"] == "127.0.0.1"
    # That record is the call's: no second one of kind api.
    calls = records(client, kind="api", search="POST /api/v1/executions")
    assert not [r for r in calls if r["seq"] > change["seq"]]
    assert run[0]["details"]["action"] == "tpack.secret_echo"
    assert run[0]["details"]["parameters"]["token"] == "********"

    signs = records(client, kind="sign_in", actor="admin")
    assert any(
        s["outcome"] == "denied" and s["details"]["reason"] == "wrong password" for s in signs
    )
    assert any(s["outcome"] == "ok" and s["action"] == "sign in" for s in signs)
    denied = records(client, kind="denied", search="keys/nope")
    assert any(
        d["action"] == "DELETE /api/v1/keys/nope" and d["actor"] == "anonymous" for d in denied
    )

    # Nothing anywhere in the trail holds the secret.
    export = client.get("/api/v1/audit/export")
    assert export.status_code == 200 and "hunter2-audit" not in export.text
    lines = [json.loads(line) for line in export.text.split("\n") if line]
    assert [r["seq"] for r in lines] == sorted(r["seq"] for r in lines)

    result = wait_sealed(client)
    assert result["ok"] and result["unsealed"] == 0 and result["records"] >= len(lines)


def test_filters_and_bad_input(client: httpx.Client) -> None:
    assert client.get("/api/v1/audit", params={"after": "yesterday"}).status_code == 400
    assert client.get("/api/v1/audit", params={"limit": 5000}).status_code == 400
    future = records(client, after="2999-01-01T00:00:00Z")
    assert future == []
    # A change of its own, so the test holds when it runs first on its server.
    client.put("/api/v1/keys/audit_probe", json={"name": "audit_probe", "value": "x"})
    r = client.get("/api/v1/audit", params={"limit": 1})
    assert int(r.headers["X-Total-Count"]) >= 1 and len(r.json()) == 1


def test_cli_verify_and_list(server: Server, client: httpx.Client) -> None:
    wait_sealed(client)
    env = {**os.environ, "SQUALL_API_URL": server.url, "SQUALL_API_KEY": API_KEY}

    def squall(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "squall.cli.main", "audit", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    verified = squall("verify")
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stdout and "head: position" in verified.stdout
    listed = squall("list", "--kind", "sign_in", "--user", "admin", "--json")
    assert listed.returncode == 0 and all(r["kind"] == "sign_in" for r in json.loads(listed.stdout))
