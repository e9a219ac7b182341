"""The rules, triggers and sensors pages, against a real server: searching
rules, enabling and disabling them, a webhook rule's enforcement with its
execution, why an event did not fire a rule, and trigger instances arriving
live."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.ui.conftest import screenshot
from tests.support.server import Server

RULE = "uitest.on_alert"
HOOK_TOKEN = "hook-token-never-shown-9d1e"
# Whether the list shows exactly these rules (the first cells, sorted).
SHOWN = """refs => JSON.stringify([...document.querySelectorAll('table.list tbody tr')]
  .map(tr => tr.cells[0].innerText.trim()).sort()) === JSON.stringify(refs)"""


def wait_for(fn: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ui-rules") / "data").start()
    with srv.client() as client:
        rules = [
            {
                "name": "on_alert",
                "pack": "uitest",
                "description": "Page someone on a critical alert",
                "enabled": True,
                "trigger": {"type": "core.st2.webhook", "parameters": {"url": "uitest/alert"}},
                "criteria": {"trigger.body.severity": {"type": "equals", "pattern": "critical"}},
                "action": {
                    "ref": "core.local",
                    "parameters": {"cmd": "echo paging for {{ trigger.body.host }}"},
                },
            },
            {
                "name": "hourly_report",
                "pack": "uitest",
                "enabled": False,
                "trigger": {
                    "type": "core.st2.IntervalTimer",
                    "parameters": {"unit": "hours", "delta": 1},
                },
                "action": {"ref": "core.noop"},
            },
            {
                "name": "guarded",
                "pack": "ops",
                "enabled": True,
                "trigger": {"type": "core.st2.webhook", "parameters": {"url": "ops/guarded"}},
                "criteria": {
                    "trigger.body.token": {
                        "type": "equals",
                        "pattern": "{{ st2kv.system.hook_token | decrypt_kv }}",
                    }
                },
                "action": {"ref": "core.noop"},
            },
            {
                "name": "deploys",
                "pack": "ops",
                "enabled": True,
                "trigger": {"type": "core.st2.webhook", "parameters": {"url": "ops/deploy"}},
                "throttle": {"once_within": "1 hour", "group_by": ["trigger.body.app"]},
                "action": {"ref": "core.echo", "parameters": {"message": "{{ trigger.body.app }}"}},
            },
        ]
        body = {"value": HOOK_TOKEN, "secret": True}
        assert client.put("/api/v1/keys/hook_token", json=body).status_code == 200
        for rule in rules:
            r = client.post("/api/v1/rules", json=rule)
            assert r.status_code == 201, r.text
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(ui_server: Server) -> Iterator[httpx.Client]:
    with ui_server.client() as c:
        yield c


def enforcements(client: httpx.Client) -> list[dict[str, Any]]:
    return client.get("/api/v1/ruleenforcements", params={"rule_ref": RULE}).json()


def test_a_webhook_rule_shows_its_enforcement_and_why_others_did_not_fire(
    page: Any, client: httpx.Client
) -> None:
    r = client.post("/api/v1/webhooks/uitest/alert", json={"severity": "critical", "host": "web-7"})
    assert r.status_code == 202
    fired = wait_for(
        lambda: [e for e in enforcements(client) if e.get("execution_id")], what="an enforcement"
    )
    execution_id = fired[0]["execution_id"]
    client.post("/api/v1/webhooks/uitest/alert", json={"severity": "info", "host": "web-8"})
    wait_for(
        lambda: not client.get("/api/v1/triggerinstances", params={"status": "pending"}).json(),
        what="the events to be processed",
    )

    page.evaluate(f"location.hash = '#/rules/{RULE}'")
    page.get_by_role("heading", name=RULE).wait_for()
    when = page.locator("section", has=page.get_by_role("heading", name="When"))
    assert "POST /api/v1/webhooks/uitest/alert" in when.inner_text()
    assert "trigger.body.severity" in when.inner_text()
    assert "echo paging for {{ trigger.body.host }}" in page.locator("main").inner_text()
    # The enforcement links to the execution it started.
    link = page.locator(f'a[href="#/executions/{execution_id}"]').first
    link.wait_for()
    # The event that did not match: ask why.
    page.get_by_role("button", name=re.compile("^Why did event")).first.click()
    why = page.locator(".explain").first
    why.wait_for()
    text = why.inner_text()
    assert "criteria do not match" in text and "'info' does not equal 'critical'" in text
    # The picture: what it did, and why it did not.
    page.locator("#rule-enforcements").evaluate("e => e.scrollIntoView()")
    screenshot(page, "rule")
    # An event arriving while the page is open shows up with its outcome.
    client.post("/api/v1/webhooks/uitest/alert", json={"severity": "critical", "host": "web-9"})
    page.locator('#rule-enforcements ~ div a[href^="#/executions/"]').nth(1).wait_for()


def test_search_rules(page: Any) -> None:
    page.evaluate("location.hash = '#/rules'")
    rows = page.locator("table.list tbody tr")
    rows.first.wait_for()
    assert rows.count() == 4
    search = page.get_by_label("Search")
    for words, expected in [
        ("alert", {RULE}),  # the ref
        ("ops", {"ops.deploys", "ops.guarded"}),  # the pack
        ("IntervalTimer", {"uitest.hourly_report"}),  # the trigger type
        ("core.echo", {"ops.deploys"}),  # the action
        ("webhook uitest", {RULE}),
    ]:
        search.fill(words)
        page.wait_for_function(SHOWN, arg=sorted(expected))
    search.fill("nothing-like-this")
    page.get_by_text("No rule matches.").wait_for()
    search.fill("")
    page.get_by_label("State").select_option("false")
    page.wait_for_function("document.querySelectorAll('table.list tbody tr').length === 1")
    assert "enabled=false" in page.url  # the filter is in the URL
    page.get_by_label("State").select_option("")
    rows.nth(3).wait_for()
    screenshot(page, "rules")


def test_disable_and_enable_a_rule(page: Any, client: httpx.Client) -> None:
    page.evaluate("location.hash = '#/rules'")
    page.get_by_role("button", name=f"Disable {RULE}").click()
    page.get_by_role("button", name=f"Enable {RULE}").wait_for()
    wait_for(
        lambda: client.get(f"/api/v1/rules/{RULE}").json()["enabled"] is False, what="disabled"
    )
    rule = client.get(f"/api/v1/rules/{RULE}").json()
    # Only `enabled` changed.
    assert rule["criteria"] == {"trigger.body.severity": {"type": "equals", "pattern": "critical"}}
    assert rule["action"]["parameters"] == {"cmd": "echo paging for {{ trigger.body.host }}"}
    # And back, from the rule's page.
    page.get_by_role("link", name=RULE).click()
    page.get_by_role("heading", name=RULE).wait_for()
    assert page.locator("h1 .badge").inner_text() == "disabled"
    page.get_by_role("button", name=f"Enable {RULE}").click()
    page.get_by_role("button", name=f"Disable {RULE}").wait_for()
    assert page.locator("h1 .badge").inner_text() == "enabled"
    assert client.get(f"/api/v1/rules/{RULE}").json()["enabled"] is True


def test_trigger_instances_show_payloads_live(page: Any, client: httpx.Client) -> None:
    trigger = client.get(f"/api/v1/rules/{RULE}").json()["trigger"]["ref"]
    page.evaluate(f"location.hash = '#/triggerinstances?trigger={trigger}'")
    page.get_by_role("heading", name="Trigger instances").wait_for()
    page.locator("table.instances").wait_for()
    before = page.locator("table.instances tbody tr").count()
    # A new event shows up without reloading, its payload readable.
    client.post("/api/v1/webhooks/uitest/alert", json={"severity": "minor", "host": "marker-42"})
    page.wait_for_function(
        "n => document.querySelectorAll('table.instances tbody tr').length === n", arg=before + 1
    )
    row = page.locator("table.instances tbody tr").first
    assert "marker-42" in row.inner_text()
    row.locator("summary").click()
    assert '"host": "marker-42"' in row.locator("pre.json").inner_text()
    assert "core.st2.webhook uitest/alert" in row.inner_text()
    screenshot(page, "trigger-instances")
    # Its own page: the payload, and what the rule made of it.
    row.locator("td").first.get_by_role("link").click()
    payload = page.locator("section", has=page.get_by_role("heading", name="Payload"))
    assert '"host": "marker-42"' in payload.locator("pre").inner_text()
    page.locator(".explain").first.wait_for()
    assert "'minor' does not equal 'critical'" in page.locator(".explain").first.inner_text()
    # Re-emit it: a new instance, linked to the original.
    original = page.url.rsplit("/", 1)[-1]
    page.get_by_role("button", name="Re-emit").click()
    page.wait_for_function("o => !location.hash.endsWith(o)", arg=original)
    page.get_by_text("Re-emitted from").wait_for()
    assert page.locator(f'a[href="#/triggerinstances/{original}"]').count() == 1


def test_trigger_types_and_sensors(page: Any) -> None:
    page.evaluate("location.hash = '#/triggers'")
    page.get_by_label("Search").fill("webhook")
    # Filtered: the timers have gone.
    types = page.locator("table.list").first
    types.locator("tbody tr", has_text="IntervalTimer").wait_for(state="detached")
    row = types.locator("tbody tr", has_text="core.st2.webhook")
    row.locator("details").nth(1).locator("summary").click()
    assert '"body"' in row.locator("details").nth(1).locator("pre").inner_text()
    # The triggers in use, with their webhook URL.
    assert "uitest/alert" in page.locator("table.list").nth(1).inner_text()
    page.get_by_role("link", name="Sensors").click()
    page.get_by_role("heading", name="Sensors").wait_for()
    page.get_by_text("No sensors").wait_for()


def test_explain_says_why_and_never_shows_a_secret_pattern(client: httpx.Client) -> None:
    client.post("/api/v1/webhooks/ops/guarded", json={"token": "a-guess"})
    instance = wait_for(
        lambda: [
            i
            for i in client.get("/api/v1/triggerinstances", params={"status": "processed"}).json()
            if i["payload"].get("body") == {"token": "a-guess"}
        ],
        what="the event",
    )[0]
    r = client.get("/api/v1/rules/ops.guarded/explain", params={"trigger_instance": instance["id"]})
    assert r.status_code == 200
    body = r.json()
    assert body["trigger_matches"] is True and body["criteria_match"] is False
    assert body["summary"] == "the criteria do not match (trigger.body.token)"
    [verdict] = body["verdicts"]
    assert verdict["passed"] is False and verdict["value"] == "a-guess"
    assert verdict["pattern"] == "********"
    assert HOOK_TOKEN not in r.text
    # Another rule's trigger: said so, not a verdict on criteria.
    other = client.get(f"/api/v1/rules/{RULE}/explain", params={"trigger_instance": instance["id"]})
    assert other.json()["trigger_matches"] is False
    assert "the rule listens to" in other.json()["summary"]
    missing = client.get(f"/api/v1/rules/{RULE}/explain", params={"trigger_instance": "nope"})
    assert missing.status_code == 404
