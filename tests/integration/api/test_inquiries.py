"""Inquiries end to end through a live server: core.ask becomes pending, is
listed, answered (or refused), expires, is canceled, and announces itself
with core.st2.generic.inquiry."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.server import Server

INQUIRY_FIELDS = {"id", "route", "ttl", "users", "roles", "schema"}


def ask(client: httpx.Client, **params: Any) -> str:
    r = client.post("/api/v1/executions", json={"action": "core.ask", "parameters": params})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_pending(client: httpx.Client, execution_id: str) -> dict[str, Any]:
    def pending() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/executions/{execution_id}").json()
        return body if body["status"] == "pending" else None

    result: dict[str, Any] = wait_for(pending, f"execution {execution_id} to be pending")
    return result


def answer(client: httpx.Client, inquiry_id: str, response: Any) -> httpx.Response:
    return client.put(
        f"/api/v1/inquiries/{inquiry_id}", json={"id": inquiry_id, "response": response}
    )


def test_ask_waits_pending_and_an_answer_makes_it_succeed(
    server: Server, client: httpx.Client
) -> None:
    eid = ask(client, route="ops-room")
    pending = wait_pending(client, eid)
    assert [e["status"] for e in pending["log"]] == ["requested", "scheduled", "running", "pending"]
    assert pending["end_timestamp"] is None
    # The question, as StackStorm's inquirer leaves it in the result.
    question = pending["result"]
    assert question["route"] == "ops-room" and question["ttl"] == 1440
    assert question["users"] == [] and question["roles"] == []
    assert question["schema"]["properties"]["continue"]["type"] == "boolean"

    r = client.get("/api/v1/inquiries")
    assert r.status_code == 200
    listed = {i["id"]: i for i in r.json()}
    assert set(listed[eid]) == INQUIRY_FIELDS
    assert int(r.headers["X-Total-Count"]) >= 1
    one = client.get(f"/api/v1/inquiries/{eid}").json()
    assert one == listed[eid]
    assert one["schema"] == question["schema"]

    # Refused answers leave the inquiry pending.
    r = answer(client, eid, {"continue": "maybe"})
    assert r.status_code == 400
    assert "'continue'" in r.json()["faultstring"] and "boolean" in r.json()["faultstring"]
    r = answer(client, eid, {})
    assert r.status_code == 400
    assert "field 'continue' is required" in r.json()["faultstring"]
    r = answer(client, eid, "yes")
    assert r.status_code == 400 and "JSON object" in r.json()["faultstring"]
    r = client.put(f"/api/v1/inquiries/{eid}", json={"id": eid})
    assert r.status_code == 400 and "'response' is required" in r.json()["faultstring"]
    assert client.get(f"/api/v1/executions/{eid}").json()["status"] == "pending"

    r = answer(client, eid, {"continue": True})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": eid, "response": {"continue": True}}
    done = server.wait_final(client, eid)
    assert done["status"] == "succeeded"
    assert done["result"]["response"] == {"continue": True}
    assert done["result"]["route"] == "ops-room"
    assert done["context"]["responded_by"] == "admin"
    assert [e["status"] for e in done["log"]][-2:] == ["pending", "succeeded"]

    # Answered once and for all.
    r = answer(client, eid, {"continue": False})
    assert r.status_code == 409 and "already been answered" in r.json()["faultstring"]
    assert client.get(f"/api/v1/inquiries/{eid}").status_code == 409
    assert eid not in {i["id"] for i in client.get("/api/v1/inquiries").json()}


def test_only_the_listed_users_may_answer(server: Server, client: httpx.Client) -> None:
    user = f"bob-{uuid.uuid4().hex[:6]}"
    r = client.post("/api/v1/apikeys", json={"user": user})
    assert r.status_code == 201, r.text
    grant = client.post("/api/v1/rbac/assignments", json={"user": user, "role": "operator"})
    assert grant.status_code == 201, grant.text
    bob = httpx.Client(base_url=server.url, headers={"St2-Api-Key": r.json()["key"]}, timeout=30)
    with bob:
        eid = ask(client, users=[user], roles=["approvers"])
        wait_pending(client, eid)
        inquiry = bob.get(f"/api/v1/inquiries/{eid}").json()
        assert inquiry["users"] == [user] and inquiry["roles"] == ["approvers"]
        r = answer(client, eid, {"continue": True})
        assert r.status_code == 403
        assert "'admin'" in r.json()["faultstring"] and user in r.json()["faultstring"]
        r = answer(bob, eid, {"continue": False})
        assert r.status_code == 200, r.text
    done = server.wait_final(client, eid)
    assert done["result"]["response"] == {"continue": False}
    assert done["context"]["responded_by"] == user


def test_a_custom_schema_is_enforced_with_its_defaults(
    server: Server, client: httpx.Client
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "approver": {"type": "string", "required": True},
            "replicas": {"type": "integer", "minimum": 1, "default": 2},
            "env": {"type": "string", "enum": ["staging", "prod"]},
        },
        "additionalProperties": False,
    }
    eid = ask(client, schema=schema)
    wait_pending(client, eid)
    for response, words in (
        ({"replicas": 3}, ["field 'approver' is required"]),
        ({"approver": "kim", "replicas": 0}, ["'replicas'", "at least 1"]),
        ({"approver": "kim", "env": "dev"}, ["'env'", "one of"]),
        ({"approver": "kim", "colour": "red"}, ["unexpected", "'colour'"]),
    ):
        r = answer(client, eid, response)
        assert r.status_code == 400, r.text
        assert all(w in r.json()["faultstring"] for w in words), r.json()["faultstring"]
    r = answer(client, eid, {"approver": "kim", "env": "prod"})
    assert r.status_code == 200, r.text
    filled = {"approver": "kim", "env": "prod", "replicas": 2}
    assert r.json()["response"] == filled
    assert server.wait_final(client, eid)["result"]["response"] == filled


def test_an_unanswered_inquiry_times_out(server: Server, client: httpx.Client) -> None:
    # ttl is in minutes; fractions are accepted, so 0.01 is 0.6 s.
    eid = ask(client, ttl=0.01)
    done = server.wait_final(client, eid)
    assert done["status"] == "timeout"
    assert done["result"]["error"] == "inquiry expired after 0.01 minutes without a response"
    assert [e["status"] for e in done["log"]][-2:] == ["pending", "timeout"]
    r = answer(client, eid, {"continue": True})
    assert r.status_code == 409 and "timed out" in r.json()["faultstring"]


def test_a_pending_inquiry_can_be_canceled(server: Server, client: httpx.Client) -> None:
    eid = ask(client)
    wait_pending(client, eid)
    assert client.delete(f"/api/v1/executions/{eid}").status_code == 200
    done = server.wait_final(client, eid)
    assert done["status"] == "canceled"
    assert done["result"]["error"] == "canceled by admin"
    r = answer(client, eid, {"continue": True})
    assert r.status_code == 409 and "canceled" in r.json()["faultstring"]


def test_other_executions_are_not_inquiries(server: Server, client: httpx.Client) -> None:
    r = client.post("/api/v1/executions", json={"action": "core.noop"})
    eid = r.json()["id"]
    server.wait_final(client, eid)
    for r in (client.get(f"/api/v1/inquiries/{eid}"), answer(client, eid, {"continue": True})):
        assert r.status_code == 404
        assert "not an inquiry" in r.json()["faultstring"]
    missing = "0" * 24
    r = client.get(f"/api/v1/inquiries/{missing}")
    assert r.status_code == 404 and "no inquiry" in r.json()["faultstring"]
    assert answer(client, missing, {"continue": True}).status_code == 404
    r = client.put(f"/api/v1/inquiries/{eid}", json={"id": "other", "response": {}})
    assert r.status_code == 400


def test_list_pages_with_limit_and_offset(server: Server, client: httpx.Client) -> None:
    ids = [ask(client) for _ in range(3)]
    for eid in ids:
        wait_pending(client, eid)
    r = client.get("/api/v1/inquiries", params={"limit": 2})
    assert len(r.json()) == 2
    assert r.headers["X-Limit"] == "2"
    total = int(r.headers["X-Total-Count"])
    assert total >= 3
    rest = client.get("/api/v1/inquiries", params={"limit": 2, "offset": 2}).json()
    assert len(rest) == min(2, total - 2)
    seen = {i["id"] for i in r.json()} | {i["id"] for i in rest}
    assert len(seen) == len(r.json()) + len(rest)  # pages do not overlap
    assert client.get("/api/v1/inquiries", params={"limit": -5}).status_code == 400
    for eid in ids:
        client.delete(f"/api/v1/executions/{eid}")


def test_a_pending_inquiry_fires_the_inquiry_trigger(server: Server, client: httpx.Client) -> None:
    route = f"route-{uuid.uuid4().hex[:8]}"
    rule = {
        "name": f"notify_{route.replace('-', '_')}",
        "pack": "tpack",
        "enabled": True,
        "trigger": {"type": "core.st2.generic.inquiry"},
        "criteria": {"trigger.route": {"type": "equals", "pattern": route}},
        "action": {
            "ref": "core.echo",
            "parameters": {"message": "asked {{ trigger.id }} on {{ trigger.route }}"},
        },
    }
    r = client.post("/api/v1/rules", json=rule)
    assert r.status_code == 201, r.text
    try:
        eid = ask(client, route=route)
        wait_pending(client, eid)

        def echoed() -> list[dict[str, Any]]:
            rows = client.get(
                "/api/v1/executions", params={"action": "core.echo", "limit": 20}
            ).json()
            return [e for e in rows if e["parameters"].get("message", "").endswith(route)]

        notified = wait_for(echoed, "the rule on core.st2.generic.inquiry")
        done = server.wait_final(client, notified[0]["id"])
        assert done["result"]["stdout"] == f"asked {eid} on {route}"
        client.delete(f"/api/v1/executions/{eid}")
    finally:
        client.delete(f"/api/v1/rules/{r.json()['id']}")
