"""squall rule / trigger / trigger-instance / rule-enforcement / webhook / sensor."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.integration.cli.conftest import ROOT, CliServer, Squall
from tests.integration.cli.test_cli import no_traceback, ok

EXAMPLES = ROOT / "examples"
RULES = EXAMPLES / "packs" / "examples" / "rules"
EVENTS = EXAMPLES / "events"

RULE = """
name: cli_echo
pack: clitest
enabled: true
trigger: {type: core.st2.webhook, parameters: {url: cli}}
criteria:
  trigger.body.level: {type: gt, pattern: 3}
action:
  ref: core.echo
  parameters: {message: "level {{ trigger.body.level }}"}
"""


def test_rule_test_matches_offline(squall: Squall) -> None:
    done = ok(
        squall("rule", "test", str(RULES / "github_push.yaml"), str(EVENTS / "github_push.json"))
    )
    assert "matches" in done.stdout
    assert "message: ada pushed 2 commit(s) to ops/infra" in done.stdout
    assert done.stdout.count("pass") == 2


def test_rule_test_exits_1_and_names_the_failing_criterion(squall: Squall) -> None:
    done = squall(
        "rule", "test", str(RULES / "disk_alert_storm.yaml"), str(EVENTS / "cpu_alert.json")
    )
    assert done.returncode == 1, done.stderr
    assert "does NOT match" in done.stdout
    failing = [line for line in done.stdout.splitlines() if "FAIL" in line]
    assert len(failing) == 1 and "trigger.body.check" in failing[0]


def test_rule_test_reports_a_broken_rule_file(squall: Squall, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULE.replace("type: gt", "type: greater"))
    done = squall("rule", "test", str(bad), str(EVENTS / "disk_alert.json"))
    assert done.returncode == 2
    assert "greater" in done.stderr
    no_traceback(done)


def test_rule_lifecycle_and_events(squall: Squall, cli_server: CliServer, tmp_path: Path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(RULE)
    assert "clitest.cli_echo created (enabled)" in ok(squall("rule", "create", str(path))).stdout
    listed = ok(squall("rule", "list")).stdout
    assert "clitest.cli_echo" in listed and "core.st2.webhook(url=cli)" in listed
    assert json.loads(ok(squall("rule", "get", "clitest.cli_echo", "--json")).stdout)["enabled"]
    assert "cli" in ok(squall("webhook", "list")).stdout

    with httpx.Client(base_url=cli_server.url, headers={"St2-Api-Key": cli_server.api_key}) as c:
        assert c.post("/api/v1/webhooks/cli", json={"level": 5}).status_code == 202
        deadline = time.time() + 20
        rows: list[dict] = []
        while time.time() < deadline and not rows:
            rows = c.get("/api/v1/ruleenforcements", params={"rule_ref": "clitest.cli_echo"}).json()
            time.sleep(0.1)
    assert rows and rows[0]["status"] == "succeeded"
    instance_id = rows[0]["trigger_instance_id"]

    enforcements = ok(squall("rule-enforcement", "list", "--rule", "clitest.cli_echo")).stdout
    assert instance_id in enforcements and rows[0]["execution_id"] in enforcements
    assert instance_id in ok(squall("trigger-instance", "list")).stdout
    shown = ok(squall("trigger-instance", "get", instance_id)).stdout
    assert "level: 5" in shown and rows[0]["execution_id"] in shown

    # The stored rule against the stored event, as the rule tester sees them.
    tested = ok(
        squall("rule", "test", "--rule", "clitest.cli_echo", "--trigger-instance", instance_id)
    )
    assert "message: level 5" in tested.stdout

    assert "re-emitted as" in ok(squall("trigger-instance", "re-emit", instance_id)).stdout
    assert "disabled" in ok(squall("rule", "disable", "clitest.cli_echo")).stdout
    assert "clitest.cli_echo" in ok(squall("rule", "list", "--disabled")).stdout
    assert "clitest.cli_echo" not in ok(squall("rule", "list", "--enabled")).stdout
    ok(squall("rule", "delete", "clitest.cli_echo"))
    missing = squall("rule", "get", "clitest.cli_echo")
    assert missing.returncode == 1 and "no rule" in missing.stderr


def test_trigger_and_sensor_lists(squall: Squall) -> None:
    triggers = ok(squall("trigger", "list")).stdout
    assert "core.st2.CronTimer" in triggers and "core.st2.generic.actiontrigger" in triggers
    assert "parameters_schema" in ok(squall("trigger", "get", "core.st2.webhook")).stdout
    assert ok(squall("sensor", "list", "--json")).stdout.strip() == "[]"
