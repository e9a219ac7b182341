"""The squall CLI on workflows: the task tree, pause/resume, re-run from a task."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.cli.conftest import SQUALL, base_env
from tests.integration.workflows.conftest import run, wait_status
from tests.support.server import API_KEY, ROOT, Server


@pytest.fixture()
def squall(wf_server: Server, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {**base_env(tmp_path), "SQUALL_API_URL": wf_server.url, "SQUALL_API_KEY": API_KEY}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SQUALL, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )

    return call


def test_execution_get_shows_the_task_tree(api: httpx.Client, squall) -> None:  # type: ignore[no-untyped-def]
    eid = run(api, "wpack.parent")
    wait_status(api, eid, "succeeded", "failed")
    shown = squall("execution", "get", eid)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.strip().startswith("call") and "succeeded" in line for line in lines)
    # The subworkflow's tasks appear under it, indented.
    assert any(
        line.startswith("  hello") or "│   hello" in line or "  hello " in line for line in lines
    )
    assert "shout" in shown.stdout


def test_pause_resume_and_rerun_from_the_cli(api: httpx.Client, squall) -> None:  # type: ignore[no-untyped-def]
    eid = run(api, "wpack.slow", seconds=2)  # the pause must arrive before the end, under load too
    wait_status(api, eid, "running")
    paused = squall("execution", "pause", eid)
    assert paused.returncode == 0, paused.stderr
    assert "pausing" in paused.stdout or "paused" in paused.stdout
    wait_status(api, eid, "paused", timeout=15)
    resumed = squall("execution", "resume", eid)
    assert resumed.returncode == 0, resumed.stderr
    assert wait_status(api, eid, "succeeded", "failed", timeout=30)["status"] == "succeeded"

    api.put("/api/v1/keys/wf_gate", json={"name": "wf_gate", "value": "closed"})
    failed = run(api, "wpack.fails")
    assert wait_status(api, failed, "succeeded", "failed")["status"] == "failed"
    api.put("/api/v1/keys/wf_gate", json={"name": "wf_gate", "value": "open"})
    again = squall("execution", "rerun", failed, "--tasks", "gate", "--json")
    assert again.returncode == 0, again.stderr + again.stdout
    body = json.loads(again.stdout)
    assert body["status"] == "succeeded"
    assert body["result"]["output"] == {"reached": "last"}
    usage = squall("execution", "rerun", failed, "--reset", "gate")
    assert usage.returncode == 2
    assert "--reset needs --tasks" in usage.stderr
