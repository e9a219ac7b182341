"""The real StackStorm CLI (PyPI st2client) on inquiries: st2 run core.ask,
st2 inquiry list / get / respond, against a live Squall server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.st2.conftest import St2, st2_binary, st2_env, st2run
from tests.support.server import Server

pytestmark = pytest.mark.st2client


@pytest.fixture(scope="module")
def st2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[St2]:
    binary = st2_binary()
    srv = Server(tmp_path_factory.mktemp("st2inquiries")).start()
    env = {**st2_env(srv, tmp_path_factory.mktemp("st2home")), "COLUMNS": "400"}
    yield srv, env, binary
    srv.stop()


@pytest.fixture(scope="module")
def api(st2: St2) -> Iterator[httpx.Client]:
    with st2[0].client() as client:
        yield client


def wait_status(api: httpx.Client, execution_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.time() + 20
    while time.time() < deadline:
        body: dict[str, Any] = api.get(f"/api/v1/executions/{execution_id}").json()
        if body["status"] == wanted:
            return body
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not become {wanted}")


def ask(st2: St2, *params: str) -> dict[str, Any]:
    """``st2 run core.ask``: it returns once the inquiry is pending, as with StackStorm."""
    done = st2run(st2, "run", "core.ask", *params, "-j")
    assert done.returncode == 0, done.stderr + done.stdout
    execution: dict[str, Any] = json.loads(done.stdout)
    return execution


def test_run_list_get_and_respond(st2: St2, api: httpx.Client) -> None:
    route = f"st2-{uuid.uuid4().hex[:6]}"
    execution = ask(st2, f"route={route}", "ttl=60")
    eid = execution["id"]
    assert execution["status"] == "pending"
    assert execution["result"]["route"] == route and execution["result"]["ttl"] == 60

    listed = st2run(st2, "inquiry", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if eid in line)
    assert route in line and "60" in line
    as_json = json.loads(st2run(st2, "inquiry", "list", "-j").stdout)
    mine = next(i for i in as_json if i["id"] == eid)
    assert mine == {"id": eid, "roles": [], "users": [], "route": route, "ttl": 60}

    shown = st2run(st2, "inquiry", "get", eid)
    assert shown.returncode == 0, shown.stderr
    assert "Would you like to continue" in shown.stdout and route in shown.stdout
    got = json.loads(st2run(st2, "inquiry", "get", eid, "-j").stdout)
    assert got["schema"]["properties"]["continue"]["type"] == "boolean"

    bad = st2run(st2, "inquiry", "respond", eid, "-r", '{"continue": "perhaps"}')
    assert bad.returncode != 0
    assert "400" in bad.stdout + bad.stderr
    assert "field 'continue' expected boolean" in bad.stdout + bad.stderr

    done = st2run(st2, "inquiry", "respond", eid, "-r", '{"continue": true}')
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"Response accepted for inquiry {eid}" in done.stdout

    final = json.loads(st2run(st2, "execution", "get", eid, "-j").stdout)
    assert final["status"] == "succeeded"
    assert final["result"]["response"] == {"continue": True}
    assert eid not in st2run(st2, "inquiry", "list").stdout
    # An answered inquiry cannot be answered again.
    again = st2run(st2, "inquiry", "respond", eid, "-r", '{"continue": false}')
    assert again.returncode != 0


def test_only_listed_users_may_respond(st2: St2, api: httpx.Client) -> None:
    user = f"carol-{uuid.uuid4().hex[:6]}"
    r = api.post("/api/v1/apikeys", json={"user": user})
    assert r.status_code == 201, r.text
    grant = api.post("/api/v1/rbac/assignments", json={"user": user, "role": "operator"})
    assert grant.status_code == 201, grant.text
    as_carol = {"ST2_API_KEY": r.json()["key"]}
    eid = ask(st2, f"users={user}")["id"]
    refused = st2run(st2, "inquiry", "respond", eid, "-r", '{"continue": true}')
    assert refused.returncode != 0
    assert "403" in refused.stdout + refused.stderr
    done = st2run(st2, "inquiry", "respond", eid, "-r", '{"continue": true}', env=as_carol)
    assert done.returncode == 0, done.stderr + done.stdout
    assert wait_status(api, eid, "succeeded")["context"]["responded_by"] == user


def test_custom_schema_and_list_limit(st2: St2, api: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"replicas": {"type": "integer", "minimum": 1, "required": True}},
    }
    first = ask(st2, f"schema={json.dumps(schema)}")["id"]
    second = ask(st2)["id"]
    limited = st2run(st2, "inquiry", "list", "-n", "1", "-j")
    assert limited.returncode == 0, limited.stderr
    assert len(json.loads(limited.stdout)) == 1
    bad = st2run(st2, "inquiry", "respond", first, "-r", '{"replicas": 0}')
    assert bad.returncode != 0 and "'replicas'" in bad.stdout + bad.stderr
    ok = st2run(st2, "inquiry", "respond", first, "-r", '{"replicas": 3}')
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert wait_status(api, first, "succeeded")["result"]["response"] == {"replicas": 3}
    canceled = st2run(st2, "execution", "cancel", second)
    assert canceled.returncode == 0, canceled.stderr + canceled.stdout
    assert wait_status(api, second, "canceled")["status"] == "canceled"


def test_unknown_inquiry(st2: St2) -> None:
    missing = st2run(st2, "inquiry", "get", "0" * 24)
    assert missing.returncode != 0
    assert "not found" in (missing.stdout + missing.stderr).lower()
