"""The executions list (server-side pages, filters kept in the address,
live) and the page of one execution (secrets masked, output, cancel,
re-run, pause and resume, a workflow's inquiry answered in place).

One server serves this module and the actions and inquiries pages' tests
(``shared_ui_server``): starting one takes seconds."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.integration.ui.conftest import screenshot, sign_in
from tests.support.server import Server

SECRET = "s3cr3t-ui-value"
DASH = "\u2013"  # the pager shows "1, en dash, 50 of 120"

APPROVE_FLOW = """
version: 1.0
input:
  - who
tasks:
  ask:
    action: core.ask
    input:
      route: ui
      schema:
        type: object
        properties:
          approve:
            type: boolean
            description: Go ahead with the change?
            required: true
    next:
      - when: <% succeeded() and result().response.approve %>
        do: done
  done:
    action: core.echo
    input:
      message: approved for <% ctx().who %>
"""

TWO_STEPS_FLOW = """
version: 1.0
input:
  - gate
tasks:
  first:
    action: core.local
    input:
      cmd: while [ ! -e "<% ctx().gate %>" ]; do sleep 0.1; done
    next:
      - when: <% succeeded() %>
        do: second
  second:
    action: core.echo
    input:
      message: second step
"""


def _start_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    """A server with a pack of its own: a secret parameter, typed
    parameters, and a workflow that asks a question."""
    base = tmp_path_factory.mktemp("ui-executions")
    pack = base / "packs" / "uitest"
    write(pack / "pack.yaml", "name: uitest\nversion: 0.1.0\ndescription: ui\nauthor: tests\n")
    write(
        pack / "actions" / "secret_echo.yaml",
        """
        name: secret_echo
        runner_type: local-shell-cmd
        description: Echo with a secret token.
        parameters:
          token:
            type: string
            secret: true
            required: true
          cmd:
            default: "echo token=$TOKEN"
          env:
            default:
              TOKEN: "{{ token }}"
        """,
    )
    write(
        pack / "actions" / "typed.yaml",
        """
        name: typed
        runner_type: local-shell-cmd
        description: Parameters of every kind.
        parameters:
          count:
            type: integer
            required: true
            minimum: 1
            description: How many times.
          mode:
            type: string
            enum: [fast, slow]
            default: fast
          loud:
            type: boolean
            default: false
          cmd:
            default: "echo {{ count }} {{ mode }} {{ loud }}"
        """,
    )
    write(
        pack / "actions" / "approve.yaml",
        "name: approve\nrunner_type: orquesta\nentry_point: workflows/approve.yaml\n"
        "description: Ask before a change.\n"
        "parameters:\n  who:\n    type: string\n    default: ops\n",
    )
    write(pack / "actions" / "workflows" / "approve.yaml", APPROVE_FLOW)
    write(
        pack / "actions" / "two_steps.yaml",
        "name: two_steps\nrunner_type: orquesta\nentry_point: workflows/two_steps.yaml\n"
        "parameters:\n  gate:\n    type: string\n    required: true\n",
    )
    write(pack / "actions" / "workflows" / "two_steps.yaml", TWO_STEPS_FLOW)
    return Server(base / "data", packs_dirs=[base / "packs"]).start()


_shared: dict[str, Server] = {}


def shared_ui_server(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The server of the executions, actions and inquiries pages' tests: one
    for the three modules (a start takes seconds), stopped when the session ends."""
    if "server" not in _shared:
        _shared["server"] = _start_server(tmp_path_factory)
        config.add_cleanup(_stop_shared)
    return _shared["server"]


def _stop_shared() -> None:
    srv = _shared.pop("server", None)
    if srv is not None:
        srv.stop()


@pytest.fixture(scope="module")
def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_ui_server(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def client(ui_server: Server) -> Iterator[httpx.Client]:
    with ui_server.client() as c:
        yield c


def start(client: httpx.Client, action: str, **params: Any) -> str:
    r = client.post("/api/v1/executions", json={"action": action, "parameters": params})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_status(client: httpx.Client, eid: str, *statuses: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body: dict = client.get(f"/api/v1/executions/{eid}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"execution {eid} is {body['status']}, not {statuses}")


def row(page: Any, eid: str) -> Any:
    return page.locator(f'table.list tbody tr[data-id="{eid}"]')


def test_the_list_is_live_and_its_filters_survive_a_reload(
    page: Any, client: httpx.Client, ui_server: Server
) -> None:
    first = start(client, "core.noop")
    wait_status(client, first, "succeeded")
    page.goto("/ui/#/executions")
    row(page, first).wait_for()
    assert "execution" in page.locator("#executions-count").inner_text()

    # Started through the API: it appears, then finishes, without a reload.
    eid = start(client, "core.local", cmd="sleep 0.8; echo live")
    row(page, eid).wait_for()
    page.locator(f'tr[data-id="{eid}"][data-status="succeeded"]').wait_for()
    assert page.locator("table.list tbody tr").first.get_attribute("data-id") == eid

    # Filters narrow the list, are kept in the address, and survive a reload.
    page.get_by_label("Action").fill("core.noop")
    row(page, eid).wait_for(state="detached")
    row(page, first).wait_for()
    assert "action=core.noop" in page.url
    page.get_by_label("Status").select_option("succeeded")
    page.wait_for_function("() => location.hash.includes('status=succeeded')")
    page.reload()
    row(page, first).wait_for()
    assert page.get_by_label("Action").input_value() == "core.noop"
    assert page.get_by_label("Status").input_value() == "succeeded"
    assert row(page, eid).count() == 0
    statuses = page.locator("table.list tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    assert statuses and set(statuses) == {"succeeded"}
    # A live execution that does not match the filters stays out.
    other = start(client, "core.echo", message="not a noop")
    wait_status(client, other, "succeeded")
    time.sleep(1.2)
    assert row(page, other).count() == 0

    # The search box finds an execution by the beginning of its id.
    page.get_by_role("button", name="Clear").click()
    row(page, other).wait_for()
    page.get_by_label("Search").fill(eid[:12])
    row(page, eid).wait_for()
    page.wait_for_function("() => document.querySelectorAll('table.list tbody tr').length === 1")
    # ... and by a part of an action's ref.
    page.get_by_label("Search").fill("ECHO")
    row(page, other).wait_for()
    assert row(page, eid).count() == 0

    # Time range: nothing started before the first execution.
    page.get_by_role("button", name="Clear").click()
    row(page, eid).wait_for()
    page.get_by_label("Before").fill("2001-01-01T00:00")
    page.get_by_text("No execution matches these filters.").wait_for()
    assert "before=2001-01-01T00%3A00" in page.url or "before=2001-01-01T00:00" in page.url
    page.get_by_role("button", name="Clear").click()
    row(page, eid).wait_for()
    screenshot(page, "executions")


def test_server_side_pages(page: Any, client: httpx.Client) -> None:
    ids = [start(client, "core.noop") for _ in range(55)]
    wait_status(client, ids[-1], "succeeded")
    total = int(
        client.get("/api/v1/executions", params={"limit": 1, "parent": "null"}).headers[
            "X-Total-Count"
        ]
    )
    page.goto("/ui/#/executions")
    pager = page.locator(".pager")
    pager.get_by_text(f"1{DASH}50 of {total}").wait_for()
    assert page.locator("table.list tbody tr").count() == 50
    oldest_shown = page.locator("table.list tbody tr").last.get_attribute("data-id")
    page.get_by_role("button", name="Older").click()
    pager.get_by_text(f"51{DASH}{min(100, total)} of {total}").wait_for()
    assert "offset=50" in page.url
    assert row(page, oldest_shown).count() == 0
    page.reload()
    pager.get_by_text(f"51{DASH}{min(100, total)} of {total}").wait_for()
    page.get_by_role("button", name="Newer").click()
    row(page, ids[-1]).wait_for()
    assert "offset" not in page.url
    # A page past the end shows the last one.
    page.goto("/ui/#/executions?offset=5000")
    page.wait_for_function(
        "() => /offset=[1-9]/.test(location.hash) && !/offset=5000/.test(location.hash)"
    )
    pager.get_by_text(f"of {total}").wait_for()
    assert page.locator("table.list tbody tr").count() > 0


def test_the_execution_page_masks_secrets_and_reruns_with_an_edited_parameter(
    page: Any, client: httpx.Client
) -> None:
    sid = start(client, "uitest.secret_echo", token=SECRET)
    wait_status(client, sid, "succeeded")
    page.goto(f"/ui/#/executions/{sid}")
    page.locator("#output").filter(has_text="token=").wait_for()
    params = page.get_by_role("region", name="parameters")
    params.get_by_text("********").first.wait_for()
    assert SECRET not in page.content()

    eid = start(client, "core.local", cmd="echo one")
    wait_status(client, eid, "succeeded")
    page.goto(f"/ui/#/executions/{eid}")
    page.get_by_role("region", name="result").get_by_text('"stdout": "one"').wait_for()
    details = page.get_by_role("region", name="details")
    assert "Duration" in details.inner_text() and "Started" in details.inner_text()
    page.get_by_role("button", name="Re-run…").click()
    cmd = page.locator("#rerun #f-cmd")
    cmd.wait_for()
    assert cmd.input_value() == "echo one"
    cmd.fill("echo two")
    page.locator("#rerun").get_by_role("button", name="Re-run").click()
    page.wait_for_function(
        f"() => location.hash.startsWith('#/executions/') && !location.hash.endsWith('{eid}')"
    )
    page.get_by_role("region", name="result").get_by_text('"stdout": "two"').wait_for()
    page.get_by_role("region", name="details").get_by_text(eid).wait_for()  # "Re-run of"
    new_id = page.evaluate("location.hash.split('/').pop()")
    done = client.get(f"/api/v1/executions/{new_id}").json()
    assert done["parameters"]["cmd"] == "echo two"
    assert done["context"]["re-run"]["ref"] == eid
    screenshot(page, "execution")


def test_cancel_a_running_execution(page: Any, client: httpx.Client) -> None:
    eid = start(client, "core.local", cmd="sleep 30")
    wait_status(client, eid, "running")
    page.goto(f"/ui/#/executions/{eid}")
    page.locator("h1 .badge", has_text="running").wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.locator("h1 .badge", has_text="canceled").wait_for()
    page.get_by_role("button", name="Cancel").wait_for(state="hidden", timeout=5000)
    assert page.locator("h1 .badge").inner_text() == "canceled"
    assert client.get(f"/api/v1/executions/{eid}").json()["status"] == "canceled"


def test_an_observer_is_offered_no_run_or_cancel(anonymous_page: Any, client: httpx.Client) -> None:
    name = f"observer-{time.time_ns()}"
    body = {"name": name, "password": "observer-password", "roles": ["observer"]}
    assert client.post("/api/v1/users", json=body).status_code == 201
    eid = start(client, "core.local", cmd="sleep 30")
    wait_status(client, eid, "running")
    page = anonymous_page
    sign_in(page, name, "observer-password")
    page.goto(f"/ui/#/executions/{eid}")
    page.locator("h1 .badge", has_text="running").wait_for()
    for button in ("#cancel", "#rerun-toggle", "#run-again"):
        assert page.locator(button).is_hidden(), button
    page.goto("/ui/#/executions")
    row(page, eid).wait_for()
    assert page.get_by_role("link", name="Run an action").count() == 0
    page.goto("/ui/#/actions/core.local")
    page.locator("#not-allowed").wait_for()
    assert page.get_by_role("button", name="Run").count() == 0
    assert client.delete(f"/api/v1/executions/{eid}").status_code == 200


def test_a_workflow_shows_its_tasks_and_its_question_is_answered_in_place(
    page: Any, client: httpx.Client
) -> None:
    wid = start(client, "uitest.approve", who="the ui")
    page.goto(f"/ui/#/executions/{wid}")
    waiting = page.get_by_role("region", name="waiting for an answer")
    waiting.get_by_text("Go ahead with the change?").first.wait_for()
    page.get_by_role("region", name="children").get_by_text("core.ask").wait_for()
    waiting.get_by_label("approve").check()
    waiting.get_by_role("button", name="Send the answer").click()
    waiting.get_by_text("Answered").wait_for()
    page.locator("h1 .badge", has_text="succeeded").wait_for(timeout=20_000)
    page.get_by_role("region", name="children").get_by_text("core.echo").wait_for()
    assert wait_status(client, wid, "succeeded")["status"] == "succeeded"


def test_pause_and_resume_a_workflow(page: Any, client: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "open"  # the first task runs until this file exists
    wid = start(client, "uitest.two_steps", gate=str(gate))
    wait_status(client, wid, "running")
    page.goto(f"/ui/#/executions/{wid}")
    page.get_by_role("button", name="Pause").click()
    # Pausing waits for the running task; then the workflow is paused.
    page.locator("h1 .badge", has_text="pausing").wait_for()
    assert page.get_by_role("button", name="Pause").is_hidden()
    gate.touch()
    page.locator("h1 .badge", has_text="paused").wait_for()
    assert client.get(f"/api/v1/executions/{wid}").json()["status"] == "paused"
    assert page.get_by_role("region", name="children").get_by_text("second").count() == 0
    page.get_by_role("button", name="Resume").click()
    page.locator("h1 .badge", has_text="succeeded").wait_for(timeout=20_000)
    page.get_by_role("region", name="children").get_by_text("second").first.wait_for()


def test_executions_started_by_a_rule(page: Any, client: httpx.Client) -> None:
    rule = {
        "name": "on_hook",
        "pack": "uitest",
        "enabled": True,
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "uitest/hook"}},
        "action": {"ref": "core.echo", "parameters": {"message": "{{ trigger.body.msg }}"}},
    }
    assert client.post("/api/v1/rules", json=rule).status_code == 201
    other = start(client, "core.echo", message="by hand")
    assert client.post("/api/v1/webhooks/uitest/hook", json={"msg": "hooked"}).status_code == 202
    deadline = time.time() + 20
    while not (found := client.get("/api/v1/executions", params={"rule": "uitest.on_hook"}).json()):
        assert time.time() < deadline, "the rule did not fire"
        time.sleep(0.1)
    [fired] = found
    # By the rule's name too (StackStorm's filter), and by the trigger instance.
    assert [e["id"] for e in client.get("/api/v1/executions?rule=on_hook").json()] == [fired["id"]]
    instance = fired["context"]["trigger_instance"]["id"]
    r = client.get("/api/v1/executions", params={"trigger_instance": instance})
    assert [e["id"] for e in r.json()] == [fired["id"]] and r.headers["X-Total-Count"] == "1"
    # The stored output with its streams and times, for the page that follows the stream.
    wait_status(client, fired["id"], "succeeded")
    chunks = client.get(f"/api/v1/executions/{fired['id']}/output?output_format=json").json()
    assert "".join(c["data"] for c in chunks).strip() == "hooked"
    assert {c["output_type"] for c in chunks} == {"stdout"} and chunks[0]["timestamp"]

    page.goto("/ui/#/executions?rule=uitest.on_hook")
    page.locator("#executions-count", has_text=re.compile(r"^1 execution$")).wait_for()
    row(page, fired["id"]).wait_for()
    assert row(page, other).count() == 0
    assert "rule uitest.on_hook" in row(page, fired["id"]).inner_text()
    assert page.get_by_label("Rule").input_value() == "uitest.on_hook"
