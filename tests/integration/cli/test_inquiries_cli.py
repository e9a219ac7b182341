"""squall inquiry list / get / respond, with -r and interactively."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.cli.conftest import Squall
from tests.integration.cli.test_cli import execution_id, no_traceback, ok, wait_status


def ask(squall: Squall, *params: str) -> str:
    eid = execution_id(ok(squall("run", "core.ask", *params, "--async", "--json")))
    assert wait_status(squall, eid, {"pending"})["status"] == "pending"
    return eid


def test_list_get_and_respond_with_json(squall: Squall) -> None:
    eid = ask(squall, "route=cli-room", "ttl=30")
    listed = ok(squall("inquiry", "list"))
    line = next(line for line in listed.stdout.splitlines() if eid in line)
    assert "cli-room" in line and "30 min" in line
    as_json = json.loads(ok(squall("inquiry", "list", "--json")).stdout)
    assert any(i["id"] == eid and i["route"] == "cli-room" for i in as_json)

    shown = ok(squall("inquiry", "get", eid))
    assert "continue" in shown.stdout and "Would you like to continue" in shown.stdout
    assert "boolean" in shown.stdout
    one = json.loads(ok(squall("inquiry", "get", eid, "--json")).stdout)
    assert one["id"] == eid and one["schema"]["properties"]["continue"]["type"] == "boolean"

    bad = squall("inquiry", "respond", eid, "-r", '{"continue": "sure"}')
    assert bad.returncode == 1
    assert "field 'continue' expected boolean" in bad.stderr
    no_traceback(bad)
    bad = squall("inquiry", "respond", eid, "-r", "{not json")
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr

    done = ok(squall("inquiry", "respond", eid, "-r", '{"continue": true}'))
    assert done.stdout.strip() == f"response accepted for inquiry {eid}"
    final = wait_status(squall, eid, {"succeeded"})
    assert final["result"]["response"] == {"continue": True}

    again = squall("inquiry", "respond", eid, "--response", '{"continue": true}', "--json")
    assert again.returncode == 1 and "already been answered" in again.stderr
    assert eid not in ok(squall("inquiry", "list")).stdout


def test_respond_asks_for_each_field_typed_by_the_schema(squall: Squall) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "approve": {"type": "boolean", "description": "Ship it?", "required": True},
            "replicas": {"type": "integer", "description": "How many", "default": 2},
            "env": {"type": "string", "enum": ["staging", "prod"], "required": True},
            "hosts": {"type": "array", "description": "Which hosts"},
            "note": {"type": "string"},
        },
    }
    eid = ask(squall, f"schema={json.dumps(schema)}")
    # "maybe" is not a yes/no answer and "many" not a number: both are asked again.
    answers = "maybe\nyes\nmany\n5\nprod\nweb1, web2\n\n"
    done = ok(squall("inquiry", "respond", eid, "--json", input=answers))
    assert "Ship it?" in done.stderr or "Ship it?" in done.stdout
    accepted = json.loads(done.stdout[done.stdout.index("{") :])
    expected = {"approve": True, "replicas": 5, "env": "prod", "hosts": ["web1", "web2"]}
    assert accepted == {"id": eid, "response": expected}
    assert wait_status(squall, eid, {"succeeded"})["result"]["response"] == expected


def test_defaults_are_offered_and_optional_fields_skipped(squall: Squall) -> None:
    schema = {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer", "default": 3},
            "note": {"type": "string"},
        },
    }
    eid = ask(squall, f"schema={json.dumps(schema)}")
    ok(squall("inquiry", "respond", eid, input="\n\n"))
    assert wait_status(squall, eid, {"succeeded"})["result"]["response"] == {"replicas": 3}


def test_errors_are_one_line(squall: Squall) -> None:
    noop = execution_id(ok(squall("run", "core.noop", "--json")))
    for args in (("get", noop), ("respond", noop, "-r", "{}"), ("get", "0" * 24)):
        done = squall("inquiry", *args)
        assert done.returncode == 1, done.stdout
        assert done.stderr.startswith("error: ") and "inquiry" in done.stderr
        no_traceback(done)


def test_an_expired_inquiry_is_gone(squall: Squall) -> None:
    eid = execution_id(ok(squall("run", "core.ask", "ttl=0.01", "--async", "--json")))
    final = wait_status(squall, eid, {"timeout"})
    assert final["status"] == "timeout"
    assert "expired after 0.01 minutes" in final["result"]["error"]
    done = squall("inquiry", "respond", eid, "-r", '{"continue": true}')
    assert done.returncode == 1 and "timed out" in done.stderr


def test_run_core_ask_returns_once_it_waits_for_a_person(squall: Squall) -> None:
    done = squall("run", "core.ask", "ttl=30", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "pending" in done.stderr
    assert "squall inquiry respond" in done.stderr
