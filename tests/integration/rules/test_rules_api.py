"""Rules, webhooks, enforcements and trigger instances through the API,
against a real server with the event test pack."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from tests.support.server import API_KEY, Server


def wait_for(fn: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def enforcements(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return client.get("/api/v1/ruleenforcements", params={"limit": 1000, **params}).json()


def test_pack_rules_are_registered_and_broken_ones_reported(client: httpx.Client) -> None:
    refs = {r["ref"] for r in client.get("/api/v1/rules").json()}
    assert {"epack.on_alert", "epack.storm", "epack.batch", "epack.ticker"} <= refs
    assert not refs & {"epack.unknown_action", "epack.bad_regex", "epack.bad_operator"}
    report = client.post("/api/v1/packs/register", json={"packs": ["epack"]}).json()
    errors = {e["path"].rsplit("/", 1)[-1]: e["faultstring"] for e in report["errors"]}
    assert "epack.does_not_exist" in errors["unknown_action.yaml"]
    assert "regex" in errors["bad_regex.yaml"].lower()
    assert "equalz" in errors["bad_operator.yaml"]
    # The line of the bad criterion is named.
    assert "bad_operator.yaml:" in errors["bad_operator.yaml"]


def test_webhook_rule_runs_its_action_with_trigger_data(
    client: httpx.Client, events_server: Server
) -> None:
    body = {"severity": "critical", "host": "web-7"}
    r = client.post("/api/v1/webhooks/hooks/alert", json=body, headers={"X-Origin": "pager"})
    assert r.status_code == 202 and r.json() == body
    found = wait_for(
        lambda: [
            e for e in enforcements(client, rule_ref="epack.on_alert") if e.get("execution_id")
        ],
        what="an enforcement",
    )
    execution = events_server.wait_final(client, found[0]["execution_id"])
    assert execution["status"] == "succeeded"
    assert execution["result"]["stdout"].strip() == "recorded web-7 pager"
    assert execution["context"]["rule"]["ref"] == "epack.on_alert"
    instance = client.get(f"/api/v1/triggerinstances/{found[0]['trigger_instance_id']}").json()
    assert instance["payload"]["body"] == body
    assert instance["status"] == "processed"
    assert "St2-Api-Key" not in instance["payload"]["headers"]  # credentials are not kept
    assert "st2-api-key" not in instance["payload"]["headers_lower"]


def test_criteria_that_do_not_hold_start_nothing(client: httpx.Client) -> None:
    before = len(enforcements(client, rule_ref="epack.on_alert"))
    client.post("/api/v1/webhooks/hooks/alert", json={"severity": "info", "host": "web-1"})
    client.post("/api/v1/webhooks/hooks/alert", json={"severity": "critical", "host": "db-1"})
    pending = lambda: client.get(  # noqa: E731
        "/api/v1/triggerinstances", params={"status": "pending"}
    ).json()
    wait_for(lambda: not pending(), what="instances to be processed")
    assert len(enforcements(client, rule_ref="epack.on_alert")) == before


def test_template_error_fails_only_that_enforcement(client: httpx.Client) -> None:
    client.post("/api/v1/webhooks/badtpl", json={"a": 1})
    failed = wait_for(lambda: enforcements(client, rule_ref="epack.bad_template"), what="failure")
    assert failed[0]["status"] == "failed"
    assert "nothing" in failed[0]["failure_reason"]
    assert "execution_id" not in failed[0]


def test_throttle_starts_one_action_per_host(client: httpx.Client) -> None:
    for _ in range(5):
        for host in ("a", "b"):
            assert client.post("/api/v1/webhooks/storm", json={"host": host}).status_code == 202
    rows = wait_for(
        lambda: (e := enforcements(client, rule_ref="epack.storm")) and len(e) == 10 and e,
        what="10 storm enforcements",
    )
    started = [e for e in rows if e["status"] == "succeeded"]
    assert len(started) == 2
    assert sum(e["status"] == "throttled" for e in rows) == 8


def test_accumulate_collects_three_events_into_one_action(
    client: httpx.Client, events_server: Server
) -> None:
    for n in (1, 2, 3):
        client.post("/api/v1/webhooks/batch", json={"n": n})
    fired = wait_for(
        lambda: [e for e in enforcements(client, rule_ref="epack.batch") if e.get("execution_id")],
        what="the accumulated action",
    )
    assert len(fired) == 1
    execution = events_server.wait_final(client, fired[0]["execution_id"])
    assert execution["result"]["stdout"].strip() == "recorded 3:123"


def test_unknown_webhook_is_404_and_bodies_are_checked(client: httpx.Client) -> None:
    assert client.post("/api/v1/webhooks/no/such/hook", json={}).status_code == 404
    deep: Any = 1
    for _ in range(100):
        deep = {"x": deep}
    r = client.post("/api/v1/webhooks/hooks/alert", json=deep)
    assert r.status_code == 400 and "deeper" in r.json()["faultstring"]
    r = client.post(
        "/api/v1/webhooks/hooks/alert",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    r = client.post("/api/v1/webhooks/hooks/alert", content=b"x" * 5_000_000)
    assert r.status_code == 413


def test_signed_webhooks(events_server: Server, client: httpx.Client) -> None:
    client.put(
        "/api/v1/keys/github_secret",
        json={"name": "github_secret", "value": "s3cret", "secret": True},
    )
    time.sleep(1.1)  # the webhook's secret is cached for a second
    raw = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=events_server.url, timeout=10) as anon:
        headers = {"Content-Type": "application/json"}
        assert anon.post("/api/v1/webhooks/github", content=raw, headers=headers).status_code == 401
        bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert anon.post("/api/v1/webhooks/github", content=raw, headers=bad).status_code == 403
        ok = anon.post(
            "/api/v1/webhooks/github", content=raw, headers={**headers, "X-Hub-Signature-256": good}
        )
        assert ok.status_code == 202
        generic = {**headers, "X-Squall-Signature": good}
        assert anon.post("/api/v1/webhooks/github", content=raw, headers=generic).status_code == 202
        # An unsigned webhook never accepts anonymous calls.
        assert anon.post("/api/v1/webhooks/storm", json={"host": "z"}).status_code == 401
    rejected = client.get(
        "/api/v1/triggerinstances", params={"status": "rejected", "trigger": "core.st2.webhook"}
    ).json()
    reasons = {r["payload"]["reason"] for r in rejected}
    assert any("signature does not match" in r for r in reasons)
    assert any("authentication required" in r for r in reasons)
    started = wait_for(
        lambda: [e for e in enforcements(client, rule_ref="epack.signed") if e.get("execution_id")],
        what="signed webhook runs",
    )
    execution = events_server.wait_final(client, started[0]["execution_id"])
    assert execution["result"]["stdout"].strip() == "recorded refs/heads/main"


def test_generic_st2_webhook_validates_the_payload(client: httpx.Client) -> None:
    r = client.post("/api/v1/webhooks/st2", json={"trigger": "epack.event", "payload": {"n": "x"}})
    assert r.status_code == 400 and "payload of trigger epack.event" in r.json()["faultstring"]
    r = client.post("/api/v1/webhooks/st2", json={"trigger": "nope.nope", "payload": {}})
    assert r.status_code == 400
    r = client.post("/api/v1/webhooks/st2", json={"trigger": "epack.event", "payload": {"n": 42}})
    assert r.status_code == 202
    found = wait_for(lambda: enforcements(client, rule_ref="epack.on_event"), what="event rule")
    assert found[0]["status"] == "succeeded"


def test_action_trigger_fires_on_finished_executions(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/executions", json={"action": "epack.record", "parameters": {"msg": "x"}}
    )
    execution_id = r.json()["id"]

    def chained() -> list[dict[str, Any]]:
        for e in enforcements(client, rule_ref="epack.on_record"):
            ti = client.get(f"/api/v1/triggerinstances/{e['trigger_instance_id']}").json()
            if ti["payload"]["execution_id"] == execution_id:
                return [e, ti]
        return []

    _, instance = wait_for(chained, what="the action trigger")
    assert instance["trigger"] == "core.st2.generic.actiontrigger"
    assert instance["payload"]["status"] == "succeeded"
    assert instance["payload"]["parameters"]["msg"] == "x"


def test_rule_crud_enable_disable_and_timer(client: httpx.Client) -> None:
    rule = {
        "name": "api_rule",
        "pack": "epack",
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "api-made"}},
        "criteria": {"trigger.body.go": {"type": "equals", "pattern": True}},
        "action": {"ref": "core.noop"},
    }
    r = client.post("/api/v1/rules", json=rule)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["enabled"] is False and created["context"]["user"] == "admin"
    assert client.post("/api/v1/rules", json=rule).status_code == 409
    full = client.get("/api/v1/rules/epack.api_rule").json()
    body = {k: v for k, v in full.items() if k != "ref"}
    r = client.put(f"/api/v1/rules/{full['id']}", json={**body, "enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True
    hooks = {h["parameters"]["url"] for h in client.get("/api/v1/webhooks").json()}
    assert "api-made" in hooks
    bad = {**rule, "name": "bad", "criteria": {"trigger.x": {"type": "nope", "pattern": 1}}}
    r = client.post("/api/v1/rules", json=bad)
    assert r.status_code == 400 and "nope" in r.json()["faultstring"]
    bad = {**rule, "name": "bad", "trigger": {"type": "core.st2.IntervalTimer", "parameters": {}}}
    assert client.post("/api/v1/rules", json=bad).status_code == 400
    assert client.delete(f"/api/v1/rules/{full['id']}").status_code == 204
    assert client.get("/api/v1/rules/epack.api_rule").status_code == 404

    # A timer fires only while its rule is enabled.
    ticker = client.get("/api/v1/rules/epack.ticker").json()
    client.put("/api/v1/rules/epack.ticker", json={**ticker, "enabled": True})
    ticks = wait_for(
        lambda: len(e := enforcements(client, rule_ref="epack.ticker")) >= 2 and e,
        timeout=10,
        what="two ticks",
    )
    client.put("/api/v1/rules/epack.ticker", json={**ticker, "enabled": False})
    timers = client.get("/api/v1/timers").json()
    assert any(t["type"] == "core.st2.IntervalTimer" for t in timers)
    assert ticks[0]["status"] == "succeeded"
    time.sleep(1.5)
    count = len(enforcements(client, rule_ref="epack.ticker"))
    time.sleep(1.5)
    assert len(enforcements(client, rule_ref="epack.ticker")) == count


def test_re_emit_runs_the_rules_again(client: httpx.Client) -> None:
    client.post("/api/v1/webhooks/hooks/alert", json={"severity": "critical", "host": "web-9"})
    first = wait_for(
        lambda: [
            e
            for e in enforcements(client, rule_ref="epack.on_alert")
            if client.get(f"/api/v1/triggerinstances/{e['trigger_instance_id']}")
            .json()["payload"]["body"]
            .get("host")
            == "web-9"
        ],
        what="the first run",
    )
    ti = first[0]["trigger_instance_id"]
    r = client.post(f"/api/v1/triggerinstances/{ti}/re_emit")
    assert r.status_code == 200 and "re-sent" in r.json()["message"]
    new_id = r.json()["trigger_instance"]["id"]
    wait_for(lambda: enforcements(client, trigger_instance=new_id), what="re-emitted enforcement")


def test_trigger_types_and_sensors_listed(client: httpx.Client) -> None:
    types = {t["ref"] for t in client.get("/api/v1/triggertypes").json()}
    assert {"core.st2.webhook", "core.st2.CronTimer", "epack.event"} <= types
    assert client.get("/api/v1/triggertypes/core.st2.webhook").json()["parameters_schema"]
    assert client.get("/api/v1/triggertypes/nope.nope").status_code == 404


def test_events_and_enforcements_appear_on_the_stream(
    client: httpx.Client, events_server: Server
) -> None:
    wanted = "st2.trigger_instance__create,st2.rule_enforcement__create"
    instance: dict[str, Any] = {}
    enforcement: dict[str, Any] = {}
    params = {"events": wanted, "st2-api-key": API_KEY}
    with (
        httpx.Client(base_url=events_server.url, timeout=20) as s,
        s.stream("GET", "/stream/v1/stream", params=params) as response,
    ):
        lines = response.iter_lines()
        next(lines)  # the stream opens with an empty line once subscribed
        client.post("/api/v1/webhooks/hooks/alert", json={"severity": "critical", "host": "web-s"})
        name = ""
        for line in lines:
            if line.startswith("event: "):
                name = line[7:]
                continue
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            if name == "st2.trigger_instance__create":
                if (data["payload"].get("body") or {}).get("host") == "web-s":
                    instance = data
            elif instance and data["trigger_instance_id"] == instance["id"]:
                enforcement = data
                break
    assert instance["occurrence_time"].endswith("Z") and instance["status"] == "pending"
    assert enforcement["rule"]["ref"] == "epack.on_alert"
