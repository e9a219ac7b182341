"""The example pack's workflows (docs/workflows.md) on a real server.

Remediation down each of its paths (a restart fixes the service; a person
approves or declines the evacuation; nobody answers in time), the CI/CD
action chain (success, and a failing step), the Orquesta release with a
subworkflow, a join and with-items, its re-run from the failed items, and
``squall workflow test`` on the pack's rehearsal specs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.workflows.conftest import children, run, wait_status
from tests.support.server import ROOT, Server

EXAMPLES = ROOT / "examples" / "packs"
SPECS = EXAMPLES / "examples" / "tests"
FINAL = ("succeeded", "failed", "timeout", "canceled", "abandoned")


@pytest.fixture(scope="module")
def examples_server() -> Iterator[Server]:
    server = Server(packs_dirs=[EXAMPLES]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def ex_api(examples_server: Server) -> Iterator[httpx.Client]:
    with examples_server.client() as client:
        yield client


def task_names(api: httpx.Client, execution_id: str) -> list[str]:
    kids = children(api, execution_id)
    return [k["context"]["orquesta"]["task_name"] for k in kids]


def pending_inquiry(api: httpx.Client, workflow_id: str) -> dict:
    """The workflow waits for a person: it is pending, and so is its ask task."""
    wait_status(api, workflow_id, "pending", timeout=20)
    asks = [k for k in children(api, workflow_id) if k["action"]["ref"] == "core.ask"]
    assert len(asks) == 1
    assert asks[0]["status"] == "pending"
    return asks[0]


def test_remediation_restart_fixes_the_service(ex_api: httpx.Client, tmp_path: Path) -> None:
    eid = run(ex_api, "examples.remediate_host", host="web-1", state_dir=str(tmp_path))
    body = wait_status(ex_api, eid, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"host": "web-1", "outcome": "restarted", "note": ""}
    assert task_names(ex_api, eid) == ["probe", "restart", "verify"]
    assert (tmp_path / "web-1.service").read_text().strip() == "running"

    # Healthy now: the probe passes and nothing else runs.
    again = run(ex_api, "examples.remediate_host", host="web-1", state_dir=str(tmp_path))
    body = wait_status(ex_api, again, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"]["outcome"] == "healthy"
    assert task_names(ex_api, again) == ["probe"]


def test_remediation_asks_a_person(ex_api: httpx.Client, tmp_path: Path) -> None:
    # Three hosts a restart cannot fix, run side by side (each spends ~3 s in retries).
    for host in ("db-1", "db-2", "db-3"):
        (tmp_path / f"{host}.broken").touch()
    common = {"state_dir": str(tmp_path)}
    approve = run(ex_api, "examples.remediate_host", host="db-1", **common)
    decline = run(ex_api, "examples.remediate_host", host="db-2", **common)
    # approval_ttl is in minutes: 0.02 is 1.2 s.
    silent = run(ex_api, "examples.remediate_host", host="db-3", approval_ttl=0.02, **common)

    ask = pending_inquiry(ex_api, approve)
    assert ask["parameters"]["route"] == "ops"
    question = ex_api.get(f"/api/v1/inquiries/{ask['id']}").json()
    assert question["parent"] == approve
    assert "db-1" in question["schema"]["properties"]["approve_evacuation"]["description"]
    # The verify task ran four times (a check and three retries) before asking.
    assert task_names(ex_api, approve).count("verify") == 4

    answer = {"approve_evacuation": True, "note": "ticket OPS-42"}
    put = ex_api.put(f"/api/v1/inquiries/{ask['id']}", json={"id": ask["id"], "response": answer})
    assert put.status_code == 200, put.text
    body = wait_status(ex_api, approve, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {
        "host": "db-1",
        "outcome": "evacuated",
        "note": "ticket OPS-42",
    }
    assert task_names(ex_api, approve)[-2:] == ["ask_operator", "evacuate"]
    assert (tmp_path / "db-1.evacuated").exists()

    ask = pending_inquiry(ex_api, decline)
    put = ex_api.put(
        f"/api/v1/inquiries/{ask['id']}",
        json={"id": ask["id"], "response": {"approve_evacuation": False}},
    )
    assert put.status_code == 200, put.text
    body = wait_status(ex_api, decline, *FINAL)
    assert body["status"] == "failed"
    assert body["result"]["output"] == {"host": "db-2", "outcome": "declined", "note": ""}
    assert task_names(ex_api, decline)[-2:] == ["ask_operator", "abort"]
    assert not (tmp_path / "db-2.evacuated").exists()

    # Nobody answers: the inquiry times out, the ask task fails, the workflow says so.
    body = wait_status(ex_api, silent, *FINAL, timeout=30)
    assert body["status"] == "failed"
    assert body["result"]["output"] == {"host": "db-3", "outcome": "unanswered", "note": ""}
    kids = children(ex_api, silent)
    (ask,) = [k for k in kids if k["action"]["ref"] == "core.ask"]
    assert ask["status"] == "timeout"
    assert kids[-1]["context"]["orquesta"]["task_name"] == "abort"
    assert "nobody answered in time" in kids[-1]["result"]["stdout"]


def test_ci_pipeline_chain(ex_api: httpx.Client, tmp_path: Path) -> None:
    eid = run(ex_api, "examples.ci_pipeline", repo="acme/shop", ref="v2", workdir=str(tmp_path))
    body = wait_status(ex_api, eid, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    result = body["result"]
    steps = ["build", "test", "package", "deploy_staging", "smoke_test"]
    assert [t["name"] for t in result["tasks"]] == steps
    published = result["published"]
    assert re.fullmatch(r"1\.4\.\d{14}", published["version"]), published
    assert published["stage"] == "smoke_test"
    artifact = Path(published["artifact"])
    assert artifact == tmp_path / f"acme-shop-{published['version']}.tar"
    assert artifact.read_text().strip() == "acme/shop@v2"

    failing = run(ex_api, "examples.ci_pipeline", fail_at="test", workdir=str(tmp_path))
    body = wait_status(ex_api, failing, *FINAL)
    assert body["status"] == "failed"
    tasks = body["result"]["tasks"]
    assert [(t["name"], t["state"]) for t in tasks] == [
        ("build", "succeeded"),
        ("test", "failed"),
        ("report_failure", "failed"),
    ]
    assert body["result"]["published"]["stage"] == "test"
    report = tasks[-1]["result"]["stderr"]
    assert report == (
        "pipeline for acme/shop@main failed at test: 1 of 42 tests failed: test_checkout"
    )


def test_release_subworkflow_join_items_and_rerun(ex_api: httpx.Client, tmp_path: Path) -> None:
    freeze = tmp_path / "freeze-production-eu"
    freeze.touch()
    eid = run(ex_api, "examples.release", ref="v3", workdir=str(tmp_path))
    body = wait_status(ex_api, eid, *FINAL)
    assert body["status"] == "failed"
    version = body["result"]["output"]["version"]
    assert body["result"]["output"]["deployed"] == []
    names = task_names(ex_api, eid)
    assert names[0] == "pipeline"
    assert sorted(names[1:3]) == ["release_notes", "security_scan"]
    # One environment at a time: the frozen one failed and the next never started.
    assert names[3:] == ["deploy", "deploy"]
    (pipeline,) = [k for k in children(ex_api, eid) if k["action"]["ref"] == "examples.ci_pipeline"]
    assert pipeline["status"] == "succeeded"
    assert len(children(ex_api, pipeline["id"])) == 5

    view = ex_api.get(f"/api/v1/executions/{eid}/workflow").json()
    ready = [t for t in view["graph"]["tasks"] if t["id"] == "ready"]
    assert ready[0]["join"] == "all"
    assert any(t["task"] == "build" and t["depth"] == 1 for t in view["tasks"])

    freeze.unlink()
    answer = ex_api.post(f"/api/v1/executions/{eid}/re_run", json={"tasks": ["deploy"]})
    assert answer.status_code == 201, answer.text
    again = answer.json()["id"]
    body = wait_status(ex_api, again, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {
        "version": version,
        "notes": f"acme/shop {version} from v3",
        "deployed": [
            f"deployed {version} to qa",
            f"deployed {version} to production-eu",
            f"deployed {version} to production-us",
        ],
    }
    # Only the failed item and the one that never ran went again.
    items = [k["context"]["orquesta"]["item_id"] for k in children(ex_api, again)]
    assert sorted(items) == [1, 2]


def test_rehearsal_specs_pass() -> None:
    specs = sorted(SPECS.glob("*.yaml"))
    assert len(specs) >= 4
    done = subprocess.run(
        [sys.executable, "-m", "squall.cli.main", "workflow", "test", *map(str, specs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASS ") == len(specs)
