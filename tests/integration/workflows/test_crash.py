"""kill -9 the server while workflows run: after a restart they finish with
the result they would have had, no task forgotten and none started twice."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.api.conftest import write
from tests.integration.workflows.conftest import children, run, wait_status
from tests.support.server import Server

STEPS = 6
ITEMS = 10


def make_crash_pack(packs: Path) -> None:
    pack = packs / "cpack"
    write(pack / "pack.yaml", "name: cpack\nversion: 0.1.0\ndescription: crash\nauthor: tests\n")
    write(
        pack / "actions" / "step.yaml",
        """
        name: step
        runner_type: local-shell-cmd
        idempotent: true
        parameters:
          mark:
            type: string
            required: true
          log:
            type: string
            required: true
          cmd:
            default: "sleep 0.2; echo {{ mark }} >> {{ log }}; echo {{ mark }}"
        """,
    )
    write(
        pack / "actions" / "long.yaml",
        "name: long\nrunner_type: orquesta\nentry_point: workflows/long.yaml\n"
        "parameters:\n  log:\n    type: string\n    required: true\n",
    )
    tasks = []
    for i in range(STEPS):
        nxt = f"s{i + 1}" if i + 1 < STEPS else "fan"
        tasks.append(
            f"""
  s{i}:
    action: cpack.step mark="s{i}" log=<% ctx().log %>
    next:
      - when: <% succeeded() %>
        publish:
          - trail: <% ctx().trail + [result().stdout.trim()] %>
        do: {nxt}"""
        )
    tasks.append(
        f"""
  fan:
    with:
      items: n in <% range({ITEMS}) %>
      concurrency: 3
    action: cpack.step mark="i<% item(n) %>" log=<% ctx().log %>
    next:
      - when: <% succeeded() %>
        publish:
          - items: <% result().select($.stdout.trim()) %>"""
    )
    text = (
        "version: 1.0\ninput:\n  - log\nvars:\n  - trail: []\n  - items: []\n"
        "output:\n  - trail: <% ctx().trail %>\n  - items: <% ctx().items %>\n"
        "tasks:" + "".join(tasks) + "\n"
    )
    (pack / "actions" / "workflows").mkdir(parents=True, exist_ok=True)
    (pack / "actions" / "workflows" / "long.yaml").write_text(text)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_during_workflows(tmp_path: Path, seed: int) -> None:
    packs = tmp_path / "packs"
    make_crash_pack(packs)
    server = Server(packs_dirs=[packs]).start()
    logs = [tmp_path / f"run{i}.log" for i in range(2)]
    try:
        with server.client() as api:
            ids = [run(api, "cpack.long", log=str(log)) for log in logs]
            time.sleep(random.Random(seed).uniform(0.8, 1.8))
            before = [api.get(f"/api/v1/executions/{e}").json()["status"] for e in ids]
            server.kill()
        # The kill must land mid-run, or the test proves nothing.
        assert "running" in before, before
        server.start()
        with server.client() as api:
            for eid, log in zip(ids, logs, strict=True):
                body = wait_status(api, eid, "succeeded", "failed", "canceled", timeout=90)
                assert body["status"] == "succeeded", body["result"]
                assert body["result"]["output"] == {
                    "trail": [f"s{i}" for i in range(STEPS)],
                    "items": [f"i{n}" for n in range(ITEMS)],
                }
                kids = children(api, eid)
                per_task = Counter(
                    (k["context"]["orquesta"]["task_name"], k["context"]["orquesta"]["item_id"])
                    for k in kids
                )
                # One execution per task and per item: nothing started twice...
                assert all(n == 1 for n in per_task.values()), per_task
                assert len(per_task) == STEPS + ITEMS  # ...and nothing forgotten.
                marks = Counter(log.read_text().split())
                assert set(marks) == {f"s{i}" for i in range(STEPS)} | {
                    f"i{n}" for n in range(ITEMS)
                }
                # Only what was running at the kill ran again (the action is idempotent).
                assert sum(n - 1 for n in marks.values()) <= 3
    finally:
        server.stop()
