"""Rollouts in the browser: the list, a rollout's page live through its
gates (a metric analysis, an approval), steering it, and planning then
starting one from a spec.

The hosts are inventory entries only: the per-host action runs on the Squall
host (a local command given the host's name), so no fleet is needed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.integration.ui.conftest import screenshot
from tests.support.server import Server

HOSTS = 6
BULK = 250  # hosts of another role, for paging
DASH = "\N{EN DASH}"  # in "1-100 of 249"


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, with an inventory and a per-host action."""
    base = tmp_path_factory.mktemp("ui-rollouts")
    pack = base / "packs" / "uiroll"
    write(pack / "pack.yaml", "name: uiroll\nversion: 0.1.0\ndescription: ui\nauthor: tests\n")
    write(
        pack / "actions" / "host_step.yaml",
        """
        name: host_step
        runner_type: local-shell-cmd
        parameters:
          host:
            type: string
            required: true
          cmd:
            type: string
            default: "echo ok"
        """,
    )
    hosts = "".join(
        f"  h{i:02d}: {{address: 192.0.2.{i}, facts: {{role: web}}}}\n" for i in range(1, HOSTS + 1)
    )
    hosts += "".join(
        f"  b{i:03d}: {{address: 198.51.100.9, facts: {{role: bulk}}}}\n"
        for i in range(1, BULK + 1)
    )
    inventory = write(base / "inventory.yaml", "hosts:\n" + hosts)
    srv = Server(
        base / "data", packs_dirs=[base / "packs"], env={"SQUALL_INVENTORY": str(inventory)}
    ).start()
    yield srv
    srv.stop()


def spec(name: str, cmd: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "target": "role=web",
        "action": "uiroll.host_step",
        "parameters": {"cmd": cmd},
        "batches": [1, "100%"],
        **extra,
    }


def start(client: httpx.Client, body: dict[str, Any]) -> str:
    answer = client.post("/api/v1/rollouts", json={"spec": body})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_for(client: httpx.Client, rid: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = client.get(f"/api/v1/rollouts/{rid}").json()
        if check(view):
            return view
        time.sleep(0.1)
    raise AssertionError(f"rollout {rid}: {view}")


def test_a_rollout_passes_its_gates_from_the_page_and_fills_up_live(
    page: Any, ui_server: Server
) -> None:
    body = spec(
        "canary-then-rest",
        "sleep 0.3; echo patched",
        concurrency=2,
        max_failures=2,
        analysis=[
            {
                "name": "error-rate",
                "provider": "command",
                "command": "echo 0.01",
                "interval": "1s",
                "count": 3,
                "success": "result < 0.05",
            }
        ],
        gates=[{"after": 0, "analysis": "error-rate"}, {"after": 0, "approval": {}}],
    )
    with ui_server.client() as client:
        rid = start(client, body)
    page.goto(f"/ui/#/rollouts/{rid}")
    page.get_by_role("heading", name="canary-then-rest", exact=True).wait_for()
    # The analysis after the canary batch: its measurements as a chart, live.
    chart = page.locator('.analysis[data-name="error-rate"]')
    chart.locator('circle.pt[data-outcome="successful"]').nth(2).wait_for()
    assert chart.locator("svg.chart circle.pt").count() == 3
    assert "3 of 3 measurements successful" in chart.inner_text()
    # Then the approval gate, with its buttons.
    gate = page.locator('.rollout-gate .gate[data-kind="approval"]')
    gate.filter(has_text="Waiting for approval after batch 0").wait_for()
    page.locator(".budget").filter(has_text="0 of 2 failures").wait_for()
    batch0 = page.locator('details.batch[data-batch="0"]')
    batch0.locator('.bar span.succeeded[data-count="1"]').wait_for()
    batch1 = page.locator('details.batch[data-batch="1"]')
    batch1.locator('.bar span.pending[data-count="5"]').wait_for()
    # The plan: every host, in its batch.
    batch1.locator("summary").click()
    assert batch1.locator("table.hosts tbody tr").count() == HOSTS - 1
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "rollout")

    page.evaluate("window.stillTheSamePage = true")
    gate.get_by_role("button", name="Approve").click()
    # The bars fill up as hosts finish, without a reload.
    batch1.locator('.bar span.succeeded[data-count="5"]').wait_for()
    page.locator('.rollout-head [data-status="succeeded"]').wait_for()
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator(".rollout-gate .gate").count() == 0
    assert page.locator('.bar[aria-label^="all hosts"] span.succeeded[data-count="6"]').count() == 1
    # Identical outputs are folded; the log tells who approved.
    page.locator(".outputs summary").filter(has_text="6 hosts").wait_for()
    page.locator(".log").filter(has_text="approved by admin").wait_for()
    # A host's output, inline.
    row = batch1.locator('tr[data-host="h03"]')
    row.get_by_role("button", name="Output").click()
    batch1.locator("tr.host-output pre").filter(has_text="patched").wait_for()
    execution = row.get_by_role("link").get_attribute("href")
    assert execution and execution.startswith("#/executions/")
    # No steering is left for a rollout that succeeded without a rollback.
    assert page.locator(".rollout-actions button").count() == 0


def test_abort_from_the_page_and_failures_grouped(page: Any, ui_server: Server) -> None:
    cmd = 'test "{{ rollout.host }}" != h02 || { echo broken >&2; exit 3; }; echo ok'
    body = spec(
        "stopped-by-hand",
        cmd,
        batches=[2, "100%"],
        max_failures=1,
        gates=[{"after": 0, "approval": {}}],
        rollback={"action": "uiroll.host_step", "parameters": {"cmd": "echo undone"}},
    )
    with ui_server.client() as client:
        rid = start(client, body)
        wait_for(client, rid, lambda v: (v["gate"] or {}).get("kind") == "approval")
    page.goto(f"/ui/#/rollouts/{rid}")
    page.locator('.rollout-gate .gate[data-kind="approval"]').wait_for()
    page.locator(".budget").filter(has_text="1 of 1 failure").wait_for()
    # Paused while it waits: the gate is still there, and resume goes on.
    actions = page.locator(".rollout-actions")
    actions.get_by_role("button", name="Pause").click()
    page.locator('.rollout-head [data-status="paused"]').wait_for()
    page.locator('.rollout-gate .gate[data-kind="paused"]').wait_for()
    assert page.locator('.rollout-gate .gate[data-kind="approval"]').count() == 1
    actions.get_by_role("button", name="Resume").click()
    page.locator('.rollout-head [data-status="running"]').wait_for()
    assert page.locator('.rollout-gate .gate[data-kind="paused"]').count() == 0
    failures = page.locator(".failures")
    failures.locator("li").filter(has_text="1 host").filter(has_text="h02").wait_for()

    actions.get_by_role("button", name="Abort").click()
    confirm = page.get_by_role("alertdialog", name="Abort this rollout?")
    confirm.get_by_role("button", name="Abort now").click()
    page.locator('.rollout-head [data-status="aborted"]').wait_for()
    page.locator('details.batch[data-batch="1"] .bar span.skipped[data-count="4"]').wait_for()
    page.locator(".rollout-error").filter(has_text="aborted by admin").wait_for()
    # An ended rollout with a failed host offers to retry it, or to undo it.
    actions.get_by_role("button", name="Retry 1 failed host").wait_for()
    actions.get_by_role("button", name="Roll back").click()
    confirm = page.get_by_role("alertdialog", name="Roll this rollout back?")
    confirm.get_by_role("button", name="Roll back now").click()
    page.locator('.rollout-head [data-status="rolled_back"]').wait_for()
    page.locator('details.batch[data-batch="0"] .bar span.rolled_back[data-count="2"]').wait_for()
    page.locator("section.rollback").filter(has_text="requested by admin").wait_for()
    assert actions.locator("button").count() == 0


def test_plan_then_start_from_a_spec(page: Any, ui_server: Server) -> None:
    page.goto("/ui/#/rollouts")
    page.get_by_role("link", name="New rollout").click()
    page.get_by_role("heading", name="New rollout").wait_for()
    text = page.get_by_label("Spec (YAML)")
    # A bad spec: every problem, with its path.
    text.fill("name: bad\ntarget: role=web\nbatches: [1, '150%']\norder: random\n")
    page.get_by_role("button", name="Plan").click()
    problems = page.locator(".problems")
    problems.locator('li[data-path="batches[1]"]').filter(has_text="over 100%").wait_for()
    assert problems.locator('li[data-path="action"]').filter(has_text="is required").count() == 1
    assert problems.locator('li[data-path="order"]').count() == 1
    assert page.get_by_role("button", name="Start").is_disabled()

    text.fill(
        "name: from-the-page\n"
        "target: role=web\n"
        "action: uiroll.host_step\n"
        "parameters: {cmd: 'echo ok'}\n"
        "batches: [1, '50%', '100%']\n"
        "max_failures: 1\n"
        "gates:\n"
        "  - after: 0\n"
        "    pause: 1s\n"
    )
    page.get_by_role("button", name="Plan").click()
    plan = page.locator("section.plan")
    plan.get_by_role("heading", name="Plan: from-the-page — 6 hosts in 3 batches").wait_for()
    assert plan.locator("table.plan-batches tbody tr").count() == 3
    assert "soak 1.0 s" in plan.locator('tr[data-batch="0"]').inner_text()
    assert "1 failure tolerated" in plan.inner_text()
    screenshot(page, "rollout-plan")

    page.get_by_role("button", name="Start").click()
    page.get_by_role("heading", name="from-the-page", exact=True).wait_for()
    assert page.evaluate("location.hash").startswith("#/rollouts/")
    rid = page.evaluate("location.hash").split("/")[-1]
    page.locator('.rollout-head [data-status="succeeded"]').wait_for()

    # The list: every rollout, live.
    page.locator(".side nav").get_by_role("link", name="Rollouts").click()
    row = page.locator(f'table.rollouts tr[data-id="{rid}"]')
    row.wait_for()
    assert row.locator('.badge[data-status="succeeded"]').count() == 1
    with ui_server.client() as client:
        other = start(client, spec("started-elsewhere", "sleep 0.5; echo ok"))
    # A rollout started elsewhere shows up and runs to the end, live.
    page.locator(f'table.rollouts tr[data-id="{other}"][data-status="succeeded"]').wait_for()
    row.locator("a").click()
    page.get_by_role("heading", name="from-the-page", exact=True).wait_for()


def test_many_hosts_are_paged_and_filtered(page: Any, ui_server: Server) -> None:
    body = spec("many", "echo ok", target="role=bulk", gates=[{"after": 0, "hold": True}])
    with ui_server.client() as client:
        rid = start(client, body)
        try:
            wait_for(client, rid, lambda v: v["status"] == "paused")
            page.goto(f"/ui/#/rollouts/{rid}")
            page.locator('.rollout-gate .gate[data-kind="hold"]').wait_for()
            batch = page.locator('details.batch[data-batch="1"]')
            batch.locator("summary").click()
            rows = batch.locator("table.hosts tbody tr")
            pages = batch.locator(".pager")
            pages.filter(has_text=f"1{DASH}100 of {BULK - 1}").wait_for()
            assert rows.count() == 100
            pages.get_by_role("button", name="Next").click()
            pages.filter(has_text=f"101{DASH}200 of {BULK - 1}").wait_for()
            assert rows.first.get_attribute("data-host") == "b102"
            pages.get_by_role("button", name="Next").click()
            pages.filter(has_text=f"201{DASH}{BULK - 1} of {BULK - 1}").wait_for()
            assert rows.count() == BULK - 201
            # A filter by name narrows every batch (b120 to b129 here).
            page.get_by_label("Host", exact=True).fill("b12")
            batch.locator('tr[data-host="b129"]').wait_for()
            assert rows.count() == 10
            assert batch.locator(".pager").count() == 0
        finally:
            client.post(f"/api/v1/rollouts/{rid}/abort", json={})
