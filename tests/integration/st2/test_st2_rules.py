"""The real StackStorm CLI (PyPI st2client) on rules, triggers, trigger
instances, rule enforcements, webhooks, sensors and timers, against a live
Squall server with the event test pack."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.rules.conftest import make_event_pack
from tests.integration.st2.conftest import St2, st2_binary, st2_env, st2run
from tests.support.server import Server

pytestmark = pytest.mark.st2client

OBJECT_ID = re.compile(r"[0-9a-f]{24}")
PACK_RULES = {
    "epack.on_alert",
    "epack.storm",
    "epack.batch",
    "epack.signed",
    "epack.bad_template",
    "epack.on_record",
    "epack.on_event",
    "epack.ticker",
}
BROKEN_RULES = {"epack.unknown_action", "epack.bad_regex", "epack.bad_operator"}
MISSING_ID = "0" * 24


@pytest.fixture(scope="module")
def st2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[St2]:
    binary = st2_binary()
    packs = tmp_path_factory.mktemp("packs")
    make_event_pack(packs)
    srv = Server(tmp_path_factory.mktemp("st2data"), packs_dirs=[packs]).start()
    # Wide enough that no table cell is wrapped.
    env = {**st2_env(srv, tmp_path_factory.mktemp("st2home")), "COLUMNS": "400"}
    yield srv, env, binary
    srv.stop()


@pytest.fixture(scope="module")
def api(st2: St2) -> Iterator[httpx.Client]:
    with st2[0].client() as client:
        yield client


def st2many(st2: St2, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Several CLI calls at once (each one spends most of its time starting up)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: st2run(st2, *args), commands))


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def table(out: str) -> list[dict[str, str]]:
    """The rows of a table the CLI printed, as {column: cell}; the column
    bounds are read from the ``+----+----+`` border."""
    border = next(line for line in out.splitlines() if line.startswith("+-"))
    bounds = [i for i, c in enumerate(border) if c == "+"]
    lines = [line for line in out.splitlines() if line.startswith("|")]
    cells = [[line[a + 1 : b].strip() for a, b in itertools.pairwise(bounds)] for line in lines]
    header, rows = cells[0], []
    for row in cells[1:]:
        if row[0] or not rows:
            rows.append(row)
        else:  # a wrapped cell goes on below
            rows[-1] = [f"{old}{new}" for old, new in zip(rows[-1], row, strict=True)]
    return [dict(zip(header, row, strict=True)) for row in rows]


def properties(out: str) -> dict[str, str]:
    """A ``Property | Value`` table as {property: value} (wrapped lines joined)."""
    props: dict[str, str] = {}
    key = ""
    for line in out.splitlines():
        if not line.startswith("|"):
            continue
        name, _, value = line.strip()[1:-1].partition("|")
        if name.strip():
            key = name.strip()
            props[key] = value.strip()
        else:
            props[key] += "\n" + value.strip()
    props.pop("Property", None)
    return props


def rule_of(api: httpx.Client, ref: str) -> dict[str, Any]:
    r = api.get(f"/api/v1/rules/{ref}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def instances_of(api: httpx.Client, trigger: str) -> list[dict[str, Any]]:
    params = {"trigger": trigger, "limit": 1000}
    return list(api.get("/api/v1/triggerinstances", params=params).json())


def enforcements_of(api: httpx.Client, instance_id: str) -> list[dict[str, Any]]:
    params = {"trigger_instance": instance_id}
    return list(api.get("/api/v1/ruleenforcements", params=params).json())


@pytest.fixture(scope="module")
def alert(api: httpx.Client) -> dict[str, Any]:
    """One webhook call that fired epack.on_alert: its trigger instance and enforcement."""
    body = {"severity": "critical", "host": f"web-{uuid.uuid4().hex[:8]}"}
    r = api.post("/api/v1/webhooks/hooks/alert", json=body)
    assert r.status_code == 202 and r.json() == body
    trigger = rule_of(api, "epack.on_alert")["trigger"]["ref"]
    instance = wait_for(
        lambda: [
            i
            for i in instances_of(api, trigger)
            if i["payload"]["body"] == body and i["status"] == "processed"
        ],
        "the webhook's trigger instance",
    )[0]
    enforcement = wait_for(
        lambda: enforcements_of(api, instance["id"]), "the enforcement of epack.on_alert"
    )[0]
    assert enforcement["rule"]["ref"] == "epack.on_alert"
    return {"body": body, "trigger": trigger, "instance": instance, "enforcement": enforcement}


# --------------------------------------------------------------------------
# Rules


def test_rule_list(st2: St2, api: httpx.Client) -> None:
    plain, iftt, in_pack, other_pack, enabled, disabled, one = st2many(
        st2,
        ("rule", "list"),
        ("rule", "list", "--iftt"),
        ("rule", "list", "-p", "epack"),
        ("rule", "list", "-p", "core"),
        ("rule", "list", "-p", "epack", "--enabled"),
        ("rule", "list", "--disabled"),
        ("rule", "list", "-n", "1"),
    )
    rows = table(ok(plain))
    assert list(rows[0]) == ["ref", "pack", "description", "enabled"]
    by_ref = {r["ref"]: r for r in rows}
    assert set(by_ref) >= PACK_RULES
    assert not BROKEN_RULES & set(by_ref)  # rules that failed to load are not registered
    assert by_ref["epack.on_alert"]["pack"] == "epack"
    assert by_ref["epack.on_alert"]["enabled"] == "True"
    assert by_ref["epack.ticker"]["enabled"] == "False"

    iftt_rows = {r["ref"]: r for r in table(ok(iftt))}
    assert list(iftt_rows["epack.on_alert"]) == ["ref", "trigger.ref", "action.ref", "enabled"]
    on_alert = rule_of(api, "epack.on_alert")
    assert iftt_rows["epack.on_alert"]["trigger.ref"] == on_alert["trigger"]["ref"]
    assert iftt_rows["epack.on_alert"]["trigger.ref"].startswith("core.")
    assert iftt_rows["epack.on_alert"]["action.ref"] == "epack.record"
    assert iftt_rows["epack.on_event"]["trigger.ref"] == "epack.event"
    assert iftt_rows["epack.on_record"]["trigger.ref"] == "core.st2.generic.actiontrigger"
    assert iftt_rows["epack.storm"]["action.ref"] == "core.noop"

    pack_rows = table(ok(in_pack))
    assert {r["ref"] for r in pack_rows} >= PACK_RULES
    assert {r["pack"] for r in pack_rows} == {"epack"}
    assert "epack." not in ok(other_pack) and "No matching items found" in other_pack.stdout

    enabled_refs = {r["ref"] for r in table(ok(enabled))}
    assert "epack.on_alert" in enabled_refs and "epack.ticker" not in enabled_refs
    disabled_refs = {r["ref"] for r in table(ok(disabled))}
    assert "epack.ticker" in disabled_refs and "epack.on_alert" not in disabled_refs

    assert len(table(ok(one))) == 1
    assert "Note: Only one rule is displayed." in one.stderr  # from X-Total-Count


def test_rule_get(st2: St2, api: httpx.Client) -> None:
    rule = rule_of(api, "epack.on_alert")
    by_ref, by_id, missing = st2many(
        st2,
        ("rule", "get", "epack.on_alert"),
        ("rule", "get", rule["id"], "-j"),
        ("rule", "get", "epack.no_such_rule"),
    )
    props = properties(ok(by_ref))
    assert list(props)[:7] == ["id", "uid", "ref", "pack", "name", "description", "enabled"]
    assert props["id"] == rule["id"] and OBJECT_ID.fullmatch(props["id"])
    assert props["uid"] == "rule:epack:on_alert"
    assert props["ref"] == "epack.on_alert" and props["name"] == "on_alert"
    assert props["enabled"] == "True"
    assert json.loads(props["trigger"]) == rule["trigger"]
    assert rule["trigger"]["parameters"] == {"url": "hooks/alert"}
    assert json.loads(props["criteria"])["trigger.body.host"] == {
        "type": "startswith",
        "pattern": "web",
    }
    assert '"ref": "epack.record"' in props["action"]  # (its long template is wrapped)

    got = json.loads(ok(by_id))
    assert got["ref"] == "epack.on_alert"
    assert got["trigger"] == rule["trigger"] and got["criteria"] == rule["criteria"]

    assert missing.returncode == 1
    assert 'Rule "epack.no_such_rule" is not found.' in missing.stdout + missing.stderr


RULE_YAML = """\
name: cli_rule
pack: epack
description: made by the st2 CLI
enabled: true
trigger:
  type: core.st2.webhook
  parameters: {{url: {url}}}
criteria:
  trigger.body.go: {{type: equals, pattern: "{pattern}"}}
action:
  ref: epack.record
  parameters: {{msg: "cli {{{{ trigger.body.go }}}}"}}
"""


def webhook_urls(api: httpx.Client) -> set[str]:
    return {w["parameters"]["url"] for w in api.get("/api/v1/webhooks").json()}


def test_rule_create_update_enable_disable_delete(
    st2: St2, api: httpx.Client, tmp_path: Path
) -> None:
    first, second = (f"cli/{uuid.uuid4().hex[:8]}" for _ in range(2))
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(RULE_YAML.format(url=first, pattern="one"))

    created = properties(ok(st2run(st2, "rule", "create", str(rule_file))))
    assert OBJECT_ID.fullmatch(created["id"])
    assert created["ref"] == "epack.cli_rule" and created["enabled"] == "True"
    assert created["description"] == "made by the st2 CLI"
    stored = rule_of(api, "epack.cli_rule")
    assert stored["id"] == created["id"]
    assert stored["trigger"]["parameters"] == {"url": first}
    assert stored["criteria"] == {"trigger.body.go": {"type": "equals", "pattern": "one"}}
    assert stored["context"]["user"] == "admin"
    assert first in webhook_urls(api)

    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text(
        RULE_YAML.format(url=first, pattern="x")
        .replace("cli_rule", "cli_broken")
        .replace("equals", "equalz")
    )
    again, broken = st2many(
        st2, ("rule", "create", str(rule_file)), ("rule", "create", str(broken_file))
    )
    assert again.returncode == 2 and "409 Client Error" in again.stdout + again.stderr
    assert broken.returncode == 2 and "400 Client Error" in broken.stdout + broken.stderr
    assert "equalz" in broken.stdout + broken.stderr
    assert api.get("/api/v1/rules/epack.cli_broken").status_code == 404

    updated_file = tmp_path / "updated.yaml"
    updated_file.write_text(
        RULE_YAML.format(url=second, pattern="two").replace("made by", "updated by")
    )
    updated = properties(ok(st2run(st2, "rule", "update", "epack.cli_rule", str(updated_file))))
    assert updated["id"] == created["id"]
    assert updated["description"] == "updated by the st2 CLI"
    stored = rule_of(api, "epack.cli_rule")
    assert stored["id"] == created["id"]
    assert stored["description"] == "updated by the st2 CLI"
    assert stored["trigger"]["parameters"] == {"url": second}
    assert stored["criteria"]["trigger.body.go"]["pattern"] == "two"
    urls = webhook_urls(api)
    assert second in urls and first not in urls  # the old URL is unregistered

    disabled = properties(ok(st2run(st2, "rule", "disable", "epack.cli_rule")))
    assert disabled["enabled"] == "False"
    stored = rule_of(api, "epack.cli_rule")
    assert stored["enabled"] is False
    assert stored["description"] == "updated by the st2 CLI"  # the rest is kept
    assert stored["trigger"]["parameters"] == {"url": second}
    assert "epack.cli_rule" in ok(st2run(st2, "rule", "list", "--disabled"))

    enabled = properties(ok(st2run(st2, "rule", "enable", "epack.cli_rule")))
    assert enabled["enabled"] == "True"
    assert rule_of(api, "epack.cli_rule")["enabled"] is True

    deleted = ok(st2run(st2, "rule", "delete", "epack.cli_rule"))
    assert 'Resource with id "epack.cli_rule" has been successfully deleted.' in deleted
    assert api.get("/api/v1/rules/epack.cli_rule").status_code == 404
    assert api.get(f"/api/v1/rules/{created['id']}").status_code == 404
    assert second not in webhook_urls(api)  # no rule listens there any more
    gone = st2run(st2, "rule", "delete", "epack.cli_rule")
    assert gone.returncode == 2 and 'Rule "epack.cli_rule" is not found.' in gone.stdout


# --------------------------------------------------------------------------
# Trigger types


def test_trigger_list_and_get(st2: St2, api: httpx.Client) -> None:
    listed, in_pack, got, missing = st2many(
        st2,
        ("trigger", "list"),
        ("trigger", "list", "-p", "epack"),
        ("trigger", "get", "core.st2.webhook"),
        ("trigger", "get", "epack.no_such_trigger"),
    )
    rows = table(ok(listed))
    assert list(rows[0]) == ["ref", "pack", "description"]
    by_ref = {r["ref"]: r for r in rows}
    for ref in ("core.st2.webhook", "core.st2.IntervalTimer", "core.st2.CronTimer"):
        assert by_ref[ref]["pack"] == "core"
    assert by_ref["epack.event"] == {
        "ref": "epack.event",
        "pack": "epack",
        "description": "an event of the test pack",
    }
    assert [r["ref"] for r in table(ok(in_pack))] == ["epack.event"]

    webhook = api.get("/api/v1/triggertypes/core.st2.webhook").json()
    props = properties(ok(got))
    assert list(props)[:4] == ["id", "ref", "pack", "name"]
    assert props["id"] == webhook["id"]
    assert props["ref"] == "core.st2.webhook" and props["pack"] == "core"
    assert props["name"] == "st2.webhook"
    assert json.loads(props["parameters_schema"]) == webhook["parameters_schema"]
    assert "url" in webhook["parameters_schema"]["properties"]
    assert json.loads(props["payload_schema"]) == webhook["payload_schema"]
    assert missing.returncode == 1 and "not found" in missing.stdout + missing.stderr


# --------------------------------------------------------------------------
# Trigger instances


def test_trigger_instance_list(st2: St2, alert: dict[str, Any]) -> None:
    instance_id = alert["instance"]["id"]
    listed, by_trigger, by_type, nothing = st2many(
        st2,
        ("trigger-instance", "list", "-n", "200"),
        ("trigger-instance", "list", "--trigger", alert["trigger"]),
        ("trigger-instance", "list", "--trigger", "core.st2.webhook"),
        ("trigger-instance", "list", "--trigger", "epack.no_such_trigger"),
    )
    rows = table(ok(listed))
    assert list(rows[0]) == ["id", "trigger", "occurrence_time", "status"]
    row = next(r for r in rows if r["id"] == instance_id)
    assert row["trigger"] == alert["trigger"] and row["status"] == "processed"
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d UTC", row["occurrence_time"])

    trigger_rows = table(ok(by_trigger))
    assert instance_id in {r["id"] for r in trigger_rows}
    assert {r["trigger"] for r in trigger_rows} == {alert["trigger"]}

    # Squall also takes a trigger type: the instances of all its triggers.
    type_rows = table(ok(by_type))
    assert instance_id in {r["id"] for r in type_rows}
    assert not {r["trigger"] for r in type_rows} & {"epack.event", "core.st2.generic.actiontrigger"}

    assert table(ok(nothing)) == []


def test_trigger_instance_get(st2: St2, alert: dict[str, Any]) -> None:
    instance_id = alert["instance"]["id"]
    got, missing = st2many(
        st2, ("trigger-instance", "get", instance_id), ("trigger-instance", "get", MISSING_ID)
    )
    props = properties(ok(got))
    assert list(props)[:4] == ["id", "trigger", "occurrence_time", "payload"]
    assert props["id"] == instance_id
    assert props["trigger"] == alert["trigger"]
    assert props["occurrence_time"] == alert["instance"]["occurrence_time"]
    assert props["status"] == "processed"
    payload = json.loads(props["payload"])
    assert payload["body"] == alert["body"]
    assert "st2-api-key" not in payload["headers_lower"]  # credentials are not kept
    assert missing.returncode == 1 and "is not found" in missing.stdout + missing.stderr


def test_trigger_instance_re_emit(st2: St2, api: httpx.Client, alert: dict[str, Any]) -> None:
    instance_id = alert["instance"]["id"]
    out = ok(st2run(st2, "trigger-instance", "re-emit", instance_id))
    assert f"Trigger instance {instance_id} succesfully re-sent." in out
    new = wait_for(
        lambda: [
            i
            for i in instances_of(api, alert["trigger"])
            if i["payload"].get("__context", {}).get("original_id") == instance_id
        ],
        "the re-emitted trigger instance",
    )[0]
    assert new["id"] != instance_id
    assert new["trigger"] == alert["trigger"] and new["payload"]["body"] == alert["body"]
    # The copy goes through the rules again.
    enforcement = wait_for(lambda: enforcements_of(api, new["id"]), "a new enforcement")[0]
    assert enforcement["rule"]["ref"] == "epack.on_alert"

    missing = st2run(st2, "trigger-instance", "re-emit", MISSING_ID)
    assert missing.returncode == 1 and "404 Client Error" in missing.stdout + missing.stderr


# --------------------------------------------------------------------------
# Rule enforcements


def test_rule_enforcement_list_and_get(st2: St2, alert: dict[str, Any]) -> None:
    enforcement = alert["enforcement"]
    listed, by_rule, other_rule, got, missing = st2many(
        st2,
        ("rule-enforcement", "list", "-n", "200"),
        ("rule-enforcement", "list", "--rule", "epack.on_alert"),
        ("rule-enforcement", "list", "--rule", "epack.storm"),
        ("rule-enforcement", "get", enforcement["id"]),
        ("rule-enforcement", "get", MISSING_ID),
    )
    rows = table(ok(listed))
    assert list(rows[0]) == ["id", "rule.ref", "trigger_instance_id", "execution_id", "enforced_at"]
    row = next(r for r in rows if r["id"] == enforcement["id"])
    assert row["rule.ref"] == "epack.on_alert"
    assert row["trigger_instance_id"] == alert["instance"]["id"]
    assert row["execution_id"] == enforcement["execution_id"]
    assert OBJECT_ID.fullmatch(row["execution_id"])
    assert row["enforced_at"] == enforcement["enforced_at"]

    rule_rows = table(ok(by_rule))
    assert enforcement["id"] in {r["id"] for r in rule_rows}
    assert {r["rule.ref"] for r in rule_rows} == {"epack.on_alert"}
    assert enforcement["id"] not in ok(other_rule)

    props = properties(ok(got))
    assert props["id"] == enforcement["id"]
    assert props["rule.ref"] == "epack.on_alert"
    assert props["trigger_instance_id"] == alert["instance"]["id"]
    assert props["execution_id"] == enforcement["execution_id"]
    assert props["failure_reason"] == ""
    assert props["enforced_at"] == enforcement["enforced_at"]
    assert missing.returncode == 1 and "is not found" in missing.stdout + missing.stderr


# --------------------------------------------------------------------------
# Webhooks, sensors, timers


def test_webhook_list(st2: St2) -> None:
    listed, as_json = st2many(st2, ("webhook", "list"), ("webhook", "list", "-j"))
    rows = table(ok(listed))
    assert list(rows[0]) == ["url", "type", "description"]
    urls = [r["url"] for r in rows]
    assert set(urls) >= {"hooks/alert", "storm", "batch", "github", "badtpl"}
    assert "nowhere" not in urls  # only the broken rules named it
    assert urls == sorted(urls)
    assert {r["type"] for r in rows} == {"core.st2.webhook"}
    assert {"type": "core.st2.webhook", "url": "hooks/alert"} in json.loads(ok(as_json))


def test_sensor_list(st2: St2, api: httpx.Client) -> None:
    sensors = {s["ref"]: s for s in api.get("/api/v1/sensortypes").json()}
    in_epack = {ref for ref, s in sensors.items() if s["pack"] == "epack"}
    assert in_epack
    listed, in_pack = st2many(st2, ("sensor", "list"), ("sensor", "list", "-p", "epack"))
    rows = table(ok(listed))
    assert list(rows[0]) == ["ref", "pack", "description", "enabled"]
    assert {r["ref"] for r in rows} == set(sensors)
    for row in rows:
        assert row["pack"] == sensors[row["ref"]]["pack"]
        assert row["enabled"] == str(sensors[row["ref"]]["enabled"])
    assert {r["ref"] for r in table(ok(in_pack))} == in_epack


def test_timer_list(st2: St2, api: httpx.Client) -> None:
    ticker = rule_of(api, "epack.ticker")["trigger"]
    trigger = api.get(f"/api/v1/triggers/{ticker['ref']}").json()
    listed, interval, cron = st2many(
        st2,
        ("timer", "list"),
        ("timer", "list", "-ty", "core.st2.IntervalTimer"),
        ("timer", "list", "-ty", "core.st2.CronTimer"),
    )
    rows = table(ok(listed))
    assert list(rows[0]) == ["id", "uid", "pack", "name", "type", "parameters"]
    row = next(r for r in rows if r["id"] == trigger["id"])
    assert row["type"] == "core.st2.IntervalTimer" and row["pack"] == "core"
    assert row["name"] == ticker["ref"].split(".", 1)[1]
    assert "'unit': 'seconds'" in row["parameters"] and "'delta': 1" in row["parameters"]
    # Webhook triggers are not timers.
    assert {r["type"] for r in rows} <= {
        "core.st2.IntervalTimer",
        "core.st2.DateTimer",
        "core.st2.CronTimer",
    }
    assert trigger["id"] in {r["id"] for r in table(ok(interval))}
    assert trigger["id"] not in ok(cron)
