"""The real StackStorm CLI (PyPI st2client) on workflows: st2 run shows the
tasks, st2 execution pause / resume / re-run --tasks work against Squall."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.st2.conftest import St2, st2_binary, st2_env, st2run
from tests.integration.workflows.conftest import make_workflow_pack, wait_status
from tests.support.server import Server

pytestmark = pytest.mark.st2client


@pytest.fixture(scope="module")
def st2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[St2]:
    binary = st2_binary()
    packs = tmp_path_factory.mktemp("packs")
    make_workflow_pack(packs)
    srv = Server(tmp_path_factory.mktemp("st2wf"), packs_dirs=[packs]).start()
    env = {**st2_env(srv, tmp_path_factory.mktemp("st2home")), "COLUMNS": "400"}
    yield srv, env, binary
    srv.stop()


@pytest.fixture(scope="module")
def api(st2: St2) -> Iterator[httpx.Client]:
    with st2[0].client() as client:
        yield client


def started_id(done: subprocess.CompletedProcess[str]) -> str:
    """The execution id from ``st2 run -a`` (it prints how to get the results)."""
    assert done.returncode == 0, done.stderr + done.stdout
    found = re.search(r"st2 execution get (\w+)", done.stdout)
    assert found, done.stdout
    return found.group(1)


def test_st2_run_workflow_shows_its_tasks(st2: St2) -> None:
    done = st2run(st2, "run", "wpack.greet", "name=Ada")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "succeeded" in done.stdout
    assert "ADA!" in done.stdout
    # st2 lists a workflow's tasks under it.
    assert "hello" in done.stdout and "shout" in done.stdout


def test_st2_pause_and_resume(st2: St2, api: httpx.Client) -> None:
    eid = started_id(st2run(st2, "run", "wpack.slow", "seconds=2", "-a"))
    wait_status(api, eid, "running")
    paused = st2run(st2, "execution", "pause", eid)
    assert paused.returncode == 0, paused.stderr + paused.stdout
    wait_status(api, eid, "paused", timeout=15)
    resumed = st2run(st2, "execution", "resume", eid)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    body = wait_status(api, eid, "succeeded", "failed", timeout=30)
    assert body["status"] == "succeeded"


def test_st2_rerun_from_a_task(st2: St2, api: httpx.Client) -> None:
    api.put("/api/v1/keys/wf_gate", json={"name": "wf_gate", "value": "closed"})
    eid = started_id(st2run(st2, "run", "wpack.fails", "-a"))
    assert wait_status(api, eid, "succeeded", "failed")["status"] == "failed"
    api.put("/api/v1/keys/wf_gate", json={"name": "wf_gate", "value": "open"})
    new = started_id(st2run(st2, "execution", "re-run", eid, "--tasks", "gate", "-a"))
    body = wait_status(api, new, "succeeded", "failed")
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"reached": "last"}
