"""The workflow graph: tasks and transitions drawn from the workflow view,
coloured live as tasks run, each task opening its execution."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.integration.ui.conftest import screenshot
from tests.support.server import Server

FLOW = """
version: 1.0
input:
  - who
tasks:
  start:
    action: core.noop
    next:
      - do: [left, right]
  left:
    action: core.echo message="left"
    next:
      - when: <% succeeded() %>
        do: meet
  right:
    action: core.local
    input:
      cmd: "while [ ! -e '{gate}' ]; do sleep 0.1; done; echo right"
    next:
      - when: <% succeeded() %>
        do: meet
      - when: <% failed() %>
        do: cleanup
  meet:
    join: all
    action: core.noop
    next:
      - when: <% succeeded() and ctx().who != "nobody at all" %>
        do: finish
  finish:
    action: core.echo message="done"
  cleanup:
    action: core.noop
"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate") / "open"


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, gate: Path) -> Iterator[Server]:
    """A server of this module's own, with a pack holding the workflow."""
    base = tmp_path_factory.mktemp("ui-workflow")
    pack = base / "packs" / "uiflow"
    write(pack / "pack.yaml", "name: uiflow\nversion: 0.1.0\ndescription: ui\nauthor: tests\n")
    write(
        pack / "actions" / "branches.yaml",
        "name: branches\nrunner_type: orquesta\nentry_point: workflows/branches.yaml\n"
        "parameters:\n  who:\n    type: string\n    default: ops\n",
    )
    write(pack / "actions" / "workflows" / "branches.yaml", FLOW.replace("{gate}", str(gate)))
    srv = Server(base / "data", packs_dirs=[base / "packs"]).start()
    yield srv
    srv.stop()


def task_executions(client: httpx.Client, eid: str, *names: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        tasks = client.get(f"/api/v1/executions/{eid}/workflow").json()["tasks"]
        found = {t["task"]: t["execution_id"] for t in tasks if t["execution_id"]}
        if all(n in found for n in names):
            return found
        time.sleep(0.1)
    raise AssertionError(f"tasks {names} of {eid} did not start")


def test_the_graph_is_drawn_coloured_live_and_opens_task_executions(
    page: Any, ui_server: Server, gate: Path
) -> None:
    with ui_server.client() as client:
        answer = client.post("/api/v1/executions", json={"action": "uiflow.branches"})
        assert answer.status_code == 201, answer.text
        eid = answer.json()["id"]

        page.goto(f"/ui/#/executions/{eid}/workflow")
        graph = page.locator("section.wf")
        page.get_by_role("heading", name="Workflow uiflow.branches").wait_for()
        nodes = graph.locator(".wf-node")
        nodes.first.wait_for()
        assert nodes.count() == 6
        assert graph.locator(".wf-edge").count() == 6
        assert graph.get_attribute("data-nodes") == "6" and graph.get_attribute("data-edges") == "6"
        # Layers: start above left and right, above meet, above finish.
        ys = {
            n: graph.locator(f'.wf-node[data-task="{n}"] rect').bounding_box()["y"]
            for n in ("start", "left", "right", "meet", "finish", "cleanup")
        }
        # (a running task's thicker outline moves its box by a fraction of a pixel)
        assert abs(ys["left"] - ys["right"]) < 2
        assert ys["start"] < ys["left"] < ys["meet"] < ys["finish"]
        assert ys["right"] < ys["cleanup"]
        # Conditions label the arrows, shortened; the whole text is in a tooltip.
        labels = graph.locator("text.wf-label").all_text_contents()
        assert labels.count("succeeded()") == 2 and labels.count("failed()") == 1
        (long,) = [text for text in labels if text.startswith("succeeded() and")]
        assert long.endswith("…") and len(long) <= 24
        tips = graph.locator(".wf-label-g title").all_text_contents()
        assert '<% succeeded() and ctx().who != "nobody at all" %>' in tips

        # The tasks are coloured as they run: right waits on the gate file.
        graph.locator('.wf-node.succeeded[data-task="left"]').wait_for()
        graph.locator('.wf-node.running[data-task="right"]').wait_for()
        assert "none" in (graph.locator('[data-task="finish"]').get_attribute("class") or "")
        screenshot(page, "workflow")

        gate.write_text("open")
        # Live: no reload, the colours follow the tasks.
        graph.locator('.wf-node.succeeded[data-task="right"]').wait_for()
        graph.locator('.wf-node.succeeded[data-task="finish"]').wait_for()
        graph.locator('.wf-overall [data-status="succeeded"]').wait_for()
        assert "none" in (graph.locator('[data-task="cleanup"]').get_attribute("class") or "")
        # The task instances as a table too.
        rows = graph.locator("table.list tbody tr")
        assert rows.count() == 5
        assert graph.locator("table.list").get_by_text("finish").count() == 1

        found = task_executions(client, eid, "left", "finish")
        # A click opens the task's execution...
        graph.locator('.wf-node[data-task="left"]').click()
        page.wait_for_function(f"location.hash === '#/executions/{found['left']}'")
        # ...and so does Enter on a node reached with the keyboard.
        page.go_back()
        page.wait_for_function(f"location.hash === '#/executions/{eid}/workflow'")
        node = page.locator('section.wf .wf-node.succeeded[data-task="finish"]')
        node.focus()
        page.keyboard.press("Enter")
        page.wait_for_function(f"location.hash === '#/executions/{found['finish']}'")

        # The execution page embeds the same graph through workflowGraph().
        page.evaluate(
            """async (id) => {
                const m = await import('/ui/pages/workflow.js');
                const el = m.workflowGraph(id, {});
                el.id = 'embedded';
                document.querySelector('main').append(el);
            }""",
            eid,
        )
        page.locator('#embedded .wf-node.succeeded[data-task="meet"]').wait_for()
        assert page.locator("#embedded .wf-edge").count() == 6

        # An action that is not a workflow has no graph: the page says so.
        plain = client.post("/api/v1/executions", json={"action": "core.noop"}).json()["id"]
        page.goto(f"/ui/#/executions/{plain}/workflow")
        page.get_by_role("alert").filter(has_text="not a workflow").wait_for()
