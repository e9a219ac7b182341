"""Workflows through the API of a real server: the language, control, re-run."""

from __future__ import annotations

import time

import httpx

from tests.integration.workflows.conftest import children, run, wait_status
from tests.support.server import Server

FINAL = ("succeeded", "failed", "timeout", "canceled", "abandoned")


def test_sequential_workflow_publishes_and_renders_output(api: httpx.Client) -> None:
    eid = run(api, "wpack.greet", name="Ada")
    body = wait_status(api, eid, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"greeting": "ADA!", "user": "admin"}
    kids = children(api, eid)
    assert [k["context"]["orquesta"]["task_name"] for k in kids] == ["hello", "shout"]
    assert all(k["parent"] == eid for k in kids)


def test_split_join_and_with_items(api: httpx.Client) -> None:
    eid = run(api, "wpack.fan", hosts=["h1", "h2", "h3", "h4", "h5"])
    body = wait_status(api, eid, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    out = body["result"]["output"]
    assert out["checked"] == ["h1", "h2", "h3", "h4", "h5"]  # item order, not finish order
    assert out["both"] == "left-right"
    items = [k for k in children(api, eid) if k["context"]["orquesta"]["task_name"] == "check"]
    assert sorted(k["context"]["orquesta"]["item_id"] for k in items) == [0, 1, 2, 3, 4]


def test_retry_then_error_transition(api: httpx.Client) -> None:
    eid = run(api, "wpack.handle")
    body = wait_status(api, eid, *FINAL)
    # The failure is handled by a transition, so the workflow succeeds.
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"handled": True}
    broken = [k for k in children(api, eid) if k["context"]["orquesta"]["task_name"] == "broken"]
    assert len(broken) == 3  # the first run and two retries
    assert all(k["status"] == "failed" for k in broken)


def test_subworkflow(api: httpx.Client) -> None:
    eid = run(api, "wpack.parent")
    body = wait_status(api, eid, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"child": "CHILD!"}
    (call,) = children(api, eid)
    assert call["action"]["ref"] == "wpack.greet"
    assert len(children(api, call["id"])) == 2


def test_invalid_workflow_is_refused_listing_every_problem(api: httpx.Client) -> None:
    answer = api.post("/api/v1/executions", json={"action": "wpack.bad"})
    assert answer.status_code == 400, answer.text
    text = answer.json()["faultstring"]
    assert "tasks.one.next[0].when" in text
    assert "nowhere" in text
    listed = api.get("/api/v1/executions", params={"action": "wpack.bad"}).json()
    assert listed == []  # nothing ran


def test_missing_action_is_refused(api: httpx.Client) -> None:
    answer = api.post("/api/v1/executions", json={"action": "wpack.missing_action"})
    assert answer.status_code == 400, answer.text
    assert "tasks.go.action: no action 'wpack.nope' is registered" in answer.json()["faultstring"]


def test_action_chain(api: httpx.Client) -> None:
    eid = run(api, "wpack.chain", who="squall")
    body = wait_status(api, eid, *FINAL)
    names = [t["name"] for t in body["result"]["tasks"]]
    assert names == ["build", "test", "report"]
    assert body["result"]["published"]["built"] == "hello squall"
    report = next(k for k in children(api, eid) if k["context"]["chain"]["name"] == "report")
    assert report["result"]["stdout"].strip() == "tests failed for hello squall"


def test_pause_resume(api: httpx.Client) -> None:
    eid = run(api, "wpack.slow", seconds=0.5)
    wait_status(api, eid, "running")
    answer = api.put(f"/api/v1/executions/{eid}", json={"status": "pausing"})
    assert answer.status_code == 200, answer.text
    body = wait_status(api, eid, "paused", timeout=15)
    done_before = len(children(api, eid))
    assert all(k["status"] in FINAL for k in children(api, eid))
    api.put(f"/api/v1/executions/{eid}", json={"status": "resuming"})
    body = wait_status(api, eid, *FINAL, timeout=30)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"done": 3}
    assert len(children(api, eid)) == 3 >= done_before


def test_cancel_reaches_subworkflows_and_running_children(api: httpx.Client) -> None:
    eid = run(api, "wpack.nested_slow")
    wait_status(api, eid, "running")
    inner = None
    for _ in range(100):
        kids = children(api, eid)
        if kids and children(api, kids[0]["id"]):
            inner = kids[0]
            break
        time.sleep(0.05)
    assert inner is not None
    answer = api.delete(f"/api/v1/executions/{eid}")
    assert answer.status_code == 200, answer.text
    body = wait_status(api, eid, *FINAL, timeout=20)
    assert body["status"] == "canceled"
    inner_body = wait_status(api, inner["id"], *FINAL)
    assert inner_body["status"] == "canceled"
    assert all(k["status"] in FINAL for k in children(api, inner["id"]))
    assert len(children(api, inner["id"])) < 3  # it stopped; the rest never started


def test_rerun_from_failed_task_keeps_what_succeeded(api: httpx.Client) -> None:
    api.put("/api/v1/keys/wf_gate", json={"name": "wf_gate", "value": "closed"})
    eid = run(api, "wpack.fails")
    body = wait_status(api, eid, *FINAL)
    assert body["status"] == "failed"
    assert body["result"]["output"] == {"reached": "first"}
    api.put("/api/v1/keys/wf_gate", json={"name": "wf_gate", "value": "open"})
    answer = api.post(f"/api/v1/executions/{eid}/re_run", json={"tasks": ["gate"]})
    assert answer.status_code == 201, answer.text
    again = answer.json()["id"]
    body = wait_status(api, again, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"reached": "last"}
    names = [k["context"]["orquesta"]["task_name"] for k in children(api, again)]
    assert names == ["gate", "last"]  # "first" was kept, not run again


def test_rerun_with_items_reruns_failed_items_or_all_with_reset(api: httpx.Client) -> None:
    api.put("/api/v1/keys/wf_items", json={"name": "wf_items", "value": "no"})
    eid = run(api, "wpack.items_gate")
    assert wait_status(api, eid, *FINAL)["status"] == "failed"
    assert len(children(api, eid)) == 3
    api.put("/api/v1/keys/wf_items", json={"name": "wf_items", "value": "ok"})
    again = api.post(f"/api/v1/executions/{eid}/re_run", json={"tasks": ["check"]}).json()["id"]
    body = wait_status(api, again, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"seen": [0, 0, 0]}
    # Only the failed item ran again.
    assert [k["context"]["orquesta"]["item_id"] for k in children(api, again)] == [1]
    reset = api.post(
        f"/api/v1/executions/{eid}/re_run", json={"tasks": ["check"], "reset": ["check"]}
    ).json()["id"]
    assert wait_status(api, reset, *FINAL)["status"] == "succeeded"
    assert sorted(k["context"]["orquesta"]["item_id"] for k in children(api, reset)) == [0, 1, 2]


def test_rerun_errors_are_clear(api: httpx.Client) -> None:
    eid = run(api, "core.noop")
    wait_status(api, eid, *FINAL)
    answer = api.post(f"/api/v1/executions/{eid}/re_run", json={"tasks": ["x"]})
    assert answer.status_code == 400
    assert "workflows only" in answer.json()["faultstring"]
    answer = api.put(f"/api/v1/executions/{eid}", json={"status": "pausing"})
    assert answer.status_code == 400
    flow = run(api, "wpack.greet")
    wait_status(api, flow, *FINAL)
    answer = api.post(f"/api/v1/executions/{flow}/re_run", json={"tasks": ["nosuch"]})
    assert answer.status_code == 400
    assert "no such task ran" in answer.json()["faultstring"]
    assert "hello" in answer.json()["faultstring"]
    answer = api.post(
        f"/api/v1/executions/{flow}/re_run",
        json={"tasks": ["shout"], "parameters": {"name": "Bob"}},
    )
    assert answer.status_code == 400
    assert "run the workflow again" in answer.json()["faultstring"]


def test_inquiry_puts_workflow_in_pending_and_response_resumes(api: httpx.Client) -> None:
    eid = run(api, "wpack.approve")
    wait_status(api, eid, "pending", timeout=20)
    (ask,) = children(api, eid)
    assert ask["status"] == "pending"
    bad = api.put(f"/api/v1/inquiries/{ask['id']}", json={"id": ask["id"], "response": {}})
    assert bad.status_code == 400
    good = api.put(
        f"/api/v1/inquiries/{ask['id']}", json={"id": ask["id"], "response": {"approved": True}}
    )
    assert good.status_code == 200, good.text
    body = wait_status(api, eid, *FINAL)
    assert body["status"] == "succeeded", body["result"]
    assert body["result"]["output"] == {"approved": True}


def test_workflow_view(api: httpx.Client, wf_server: Server) -> None:
    eid = run(api, "wpack.greet")
    wait_status(api, eid, *FINAL)
    view = api.get(f"/api/v1/executions/{eid}/workflow")
    assert view.status_code == 200, view.text
    body = view.json()
    assert {t["id"] for t in body["graph"]["tasks"]} == {"hello", "shout"}
    assert {"from": "hello", "to": "shout"}.items() <= body["graph"]["transitions"][0].items()
    states = {t["task"]: t for t in body["tasks"]}
    assert states["hello"]["status"] == "succeeded"
    assert states["shout"]["execution_id"]


def test_broken_workflow_is_reported_when_its_pack_registers(api: httpx.Client) -> None:
    answer = api.post("/api/v1/packs/register", json={"packs": ["wpack"]})
    assert answer.status_code == 200, answer.text
    errors = " ".join(str(e) for e in answer.json().get("errors", []))
    assert "tasks.one.next[0].when" in errors
    # The rest of the pack is registered and runs.
    assert api.get("/api/v1/actions/wpack.greet").status_code == 200
