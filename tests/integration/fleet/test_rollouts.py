"""Rollouts through the whole of Squall against the real SSH fleet: plan,
batches, failure budgets, gates, control, a crash mid-rollout, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.api.conftest import write
from tests.support.fleet import Fleet
from tests.support.server import API_KEY, ROOT, Server

HOSTS = 12
RUN = os.getpid()  # marker files of this test run only
FINAL = ("succeeded", "failed", "aborted", "rolled_back")


def _name(i: int) -> str:
    return f"r{i:02d}"


def make_inventory(fleet: Fleet, path: Path) -> Path:
    lines = ["defaults:", f"  user: {fleet.user}", f"  key_file: {fleet.key_file}", "hosts:"]
    for i in range(1, HOSTS + 1):
        facts = {"role": "web", "hagroup": "abc"[(i - 1) // 4], "pool": f"p{i % 2}"}
        lines.append(
            f"  {_name(i)}: {{address: {fleet.addresses[i - 1]}, facts: {json.dumps(facts)}}}"
        )
    return write(path, "\n".join(lines) + "\n")


def touch_cmd(tag: str, fail_at: str | None = None, sleep: float = 0) -> str:
    """Record that the host ran (a line in a file named after the tag and the
    address, in the fleet user's home); fail on one address if asked."""
    cmd = f'set -- $SSH_CONNECTION; echo run >> ~/.rollout-{RUN}-{tag}-"$3"'
    if sleep:
        cmd += f"; sleep {sleep}"
    if fail_at:
        cmd += f'; [ "$3" = {fail_at} ] && exit 3'
    return cmd + "; echo ok"


def runs(fleet: Fleet, tag: str, address: str) -> int:
    path = Path(os.path.expanduser(f"~{fleet.user}")) / f".rollout-{RUN}-{tag}-{address}"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module", autouse=True)
def _forget_markers(fleet: Fleet) -> Iterator[None]:
    yield
    for path in Path(os.path.expanduser(f"~{fleet.user}")).glob(f".rollout-{RUN}-*"):
        path.unlink()


@pytest.fixture(scope="module")
def server(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("rollouts")
    inventory = make_inventory(fleet, base / "inventory.yaml")
    srv = Server(
        base / "data",
        env={
            "SQUALL_INVENTORY": str(inventory),
            "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
            "SQUALL_LEASE_SECONDS": "3",
        },
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def spec(tag: str, cmd: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": tag,
        "target": "role=web",
        "action": "core.remote",
        "host_parameter": "hosts",
        "parameters": {"cmd": cmd},
        "batches": [1, "25%", "100%"],
        **extra,
    }


def start(api: httpx.Client, body: dict[str, Any]) -> str:
    r = api.post("/api/v1/rollouts", json={"spec": body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait(api: httpx.Client, rid: str, until: Any = FINAL, timeout: float = 90) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = api.get(f"/api/v1/rollouts/{rid}").json()
        if (view["status"] in until) if isinstance(until, tuple) else until(view):
            return view
        time.sleep(0.2)
    raise AssertionError(f"rollout {rid} is still {view['status']}: {view}")


def statuses(view: dict[str, Any]) -> dict[str, str]:
    return {h["name"]: h["status"] for b in view["batches"] for h in b["hosts"]}


def test_plan_lays_out_batches_without_touching_anything(api: httpx.Client, fleet: Fleet) -> None:
    body = spec("plan-only", touch_cmd("plan-only"), group_by="hagroup")
    r = api.post("/api/v1/rollouts/plan", json={"spec": body})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["count"] == HOSTS
    assert [len(b) for b in plan["batches"]] == [1, 3, 8]
    assert plan["hosts"] == [h for b in plan["batches"] for h in b]
    # group_by: all of hagroup a, then b, then c.
    groups = ["abc"[(int(h[1:]) - 1) // 4] for h in plan["hosts"]]
    assert groups == sorted(groups)
    assert all(runs(fleet, "plan-only", a) == 0 for a in fleet.addresses[:HOSTS])


def test_a_bad_spec_is_refused_with_every_problem(api: httpx.Client) -> None:
    body = {
        "name": "bad one",
        "target": "role=nothing",
        "action": "nosuch.action",
        "batches": [0, "150%"],
        "group_by": "rack",
    }
    r = api.post("/api/v1/rollouts/plan", json={"spec": body})
    assert r.status_code == 400
    paths = {p["path"] for p in r.json()["problems"]}
    assert {"name", "batches[0]", "batches[1]"} <= paths, r.json()
    # The spec's own problems come first; once they are fixed, the system's.
    body = {
        "name": "x",
        "target": "role=nothing",
        "action": "nosuch.action",
        "batches": 1,
        "group_by": "rack",
    }
    r = api.post("/api/v1/rollouts/plan", json={"spec": body})
    assert r.status_code == 400
    problems = {p["path"]: p["message"] for p in r.json()["problems"]}
    assert "action" in problems and "target" in problems and "group_by" in problems, problems
    assert "matches no host" in problems["target"]


def test_a_failure_stops_the_rollout_before_any_later_host(api: httpx.Client, fleet: Fleet) -> None:
    fail_at = fleet.addresses[4]  # r05: in the second batch
    body = spec(
        "stop", touch_cmd("stop", fail_at=fail_at), stop_on_first_failure=True, concurrency=1
    )
    view = wait(api, start(api, body))
    assert view["status"] == "failed" and "first failure" in view["error"]
    hosts = statuses(view)
    order = [h["name"] for b in view["batches"] for h in b["hosts"]]
    failed_at = order.index("r05")
    assert hosts["r05"] == "failed"
    assert all(hosts[h] == "succeeded" for h in order[:failed_at])
    assert all(hosts[h] == "skipped" for h in order[failed_at + 1 :])
    # Nothing after the failed host was touched, and nothing ran twice.
    for i, name in enumerate(order):
        address = fleet.addresses[int(name[1:]) - 1]
        assert runs(fleet, "stop", address) == (1 if i <= failed_at else 0), name
    assert view["budget"] == {"max_failures": 0, "failures": 1, "on_breach": "finish"}
    assert view["failures"] == [{"error": "exit code 3", "count": 1, "hosts": ["r05"]}]
    stats = view["durations"]
    assert stats["count"] == failed_at + 1 and 0 < stats["median"] <= stats["p95"] <= stats["max"]


def test_hold_gate_waits_for_resume_and_abort_skips_the_rest(api: httpx.Client) -> None:
    body = spec("hold", "true", gates=[{"after": 0, "hold": True}])
    rid = start(api, body)
    view = wait(api, rid, lambda v: v["status"] == "paused")
    assert view["gate"]["kind"] == "hold" and view["counts"]["succeeded"] == 1
    assert api.post(f"/api/v1/rollouts/{rid}/resume").status_code == 200
    view = wait(api, rid)
    assert view["status"] == "succeeded" and view["counts"]["succeeded"] == HOSTS

    rid = start(api, spec("abort", "sleep 1", gates=[{"after": 0, "hold": True}]))
    wait(api, rid, lambda v: v["status"] == "paused")
    r = api.post(f"/api/v1/rollouts/{rid}/abort")
    assert r.status_code == 200, r.text
    view = wait(api, rid)
    assert view["status"] == "aborted" and "aborted by admin" in view["error"]
    assert view["counts"] == {"succeeded": 1, "skipped": HOSTS - 1, "total": HOSTS}
    assert api.post(f"/api/v1/rollouts/{rid}/resume").status_code == 409


def test_approval_gate_is_an_inquiry(api: httpx.Client) -> None:
    gate = {"after": 0, "approval": {"timeout": "1h"}}
    rid = start(api, spec("approve", "true", gates=[gate]))
    view = wait(api, rid, lambda v: (v["gate"] or {}).get("kind") == "approval")
    inquiry = view["gate"]["inquiry"]
    r = api.put(f"/api/v1/inquiries/{inquiry}", json={"id": inquiry, "response": {"approve": True}})
    assert r.status_code == 200, r.text
    assert wait(api, rid)["status"] == "succeeded"

    rid = start(api, spec("reject", "true", gates=[gate]))
    view = wait(api, rid, lambda v: (v["gate"] or {}).get("kind") == "approval")
    inquiry = view["gate"]["inquiry"]
    api.put(f"/api/v1/inquiries/{inquiry}", json={"id": inquiry, "response": {"approve": False}})
    view = wait(api, rid)
    assert view["status"] == "aborted" and "not approved" in view["error"]
    assert view["counts"]["skipped"] == HOSTS - 1


def test_pause_lets_hosts_in_flight_finish(api: httpx.Client) -> None:
    rid = start(api, spec("pause", "sleep 1", batches=[4]))
    wait(api, rid, lambda v: v["counts"].get("running", 0) > 0)
    assert api.post(f"/api/v1/rollouts/{rid}/pause").status_code == 200
    view = wait(api, rid, lambda v: v["status"] == "paused" and not v["counts"].get("running"))
    time.sleep(1.5)
    view = api.get(f"/api/v1/rollouts/{rid}").json()
    assert view["status"] == "paused" and view["counts"]["pending"] > 0
    assert view["counts"].get("running", 0) == 0
    api.post(f"/api/v1/rollouts/{rid}/resume")
    assert wait(api, rid)["status"] == "succeeded"


def _cli(server: Server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SQUALL_API_URL": server.url, "SQUALL_API_KEY": API_KEY}
    return subprocess.run(
        [sys.executable, "-m", "squall.cli.main", "rollout", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_plan_start_status(server: Server, fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(spec("cli", touch_cmd("cli"))))
    plan = _cli(server, "plan", str(path), "--json")
    assert plan.returncode == 0, plan.stderr
    laid_out = json.loads(plan.stdout)
    assert [len(b) for b in laid_out["batches"]] == [1, 3, 8]
    shown = _cli(server, "plan", str(path))
    assert shown.returncode == 0 and "12 hosts" in shown.stdout + shown.stderr

    started = _cli(server, "start", str(path), "--json", "--wait")
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["id"]
    status = json.loads(_cli(server, "status", rid, "--json").stdout)
    assert status["status"] == "succeeded"
    assert status["batches"][0]["hosts"][0]["status"] == "succeeded"
    assert all(runs(fleet, "cli", a) == 1 for a in fleet.addresses[:HOSTS])

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget: role=web\naction: core.remote\nbatches: ['150%']\n")
    refused = _cli(server, "plan", str(bad))
    assert refused.returncode == 1 and "batches[0]" in refused.stderr


def test_cli_skip_retry_and_rollback(
    server: Server, api: httpx.Client, fleet: Fleet, tmp_path: Path
) -> None:
    home = Path(os.path.expanduser(f"~{fleet.user}"))
    flag = home / f".rollout-{RUN}-cli-steer-flag"
    flag.write_text("fail\n")
    fail_at = fleet.addresses[2]  # r03, in the second batch
    cmd = (
        f'set -- $SSH_CONNECTION; echo run >> ~/.rollout-{RUN}-cli-steer-"$3"; '
        f'[ "$3" = {fail_at} ] && [ -e {flag} ] && exit 3; echo ok'
    )
    undo = {"action": "core.remote", "parameters": {"cmd": "echo undone"}}
    body = spec("cli-steer", cmd, max_failures=0, gates=[{"after": 0, "hold": True}], rollback=undo)
    path = tmp_path / "steer.yaml"
    path.write_text(yaml.safe_dump(body))
    started = _cli(server, "start", str(path), "--json")
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["id"]

    # Held after the canary: leave a host of the last batch out.
    view = wait(api, rid, lambda v: v["status"] == "paused")
    last = view["batches"][2]["hosts"][0]["name"]
    skipped = _cli(server, "skip", rid, last, "--json")
    assert skipped.returncode == 0, skipped.stderr
    assert statuses(json.loads(skipped.stdout))[last] == "skipped"
    assert _cli(server, "skip", rid, "nope").returncode == 1
    assert _cli(server, "resume", rid).returncode == 0

    # r03 fails: stopped; status says how to retry and how to roll back.
    view = wait(api, rid)
    assert view["status"] == "failed" and statuses(view)["r03"] == "failed"
    shown = _cli(server, "status", rid)
    assert f"retry the failed hosts: squall rollout retry {rid}" in shown.stdout
    assert f"roll back: squall rollout rollback {rid}" in shown.stdout

    flag.unlink()
    retried = _cli(server, "retry", rid, "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["id"] == rid
    view = wait(api, rid)
    assert view["status"] == "succeeded" and statuses(view)["r03"] == "succeeded"
    assert statuses(view)[last] == "skipped"
    retried = _cli(server, "retry", rid, "--skipped")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith(f"rollout {rid} ")
    view = wait(api, rid)
    # The hosts skipped because it stopped ran; the one a user skipped did not.
    assert view["counts"] == {"succeeded": HOSTS - 1, "skipped": 1, "total": HOSTS}
    assert statuses(view)[last] == "skipped"

    rolled = _cli(server, "rollback", rid, "--json")
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["rollback"] is not None
    view = wait(api, rid)
    assert view["status"] == "rolled_back", view
    shown = _cli(server, "status", rid)
    changed = HOSTS - 1
    assert "rolled back (" in shown.stdout
    assert f"{changed} of {changed} hosts rolled back" in shown.stdout
    assert _cli(server, "rollback", rid).returncode == 1  # once is enough


def test_a_crash_mid_rollout_resumes_where_it_was(fleet: Fleet, tmp_path: Path) -> None:
    inventory = make_inventory(fleet, tmp_path / "inventory.yaml")
    env = {
        "SQUALL_INVENTORY": str(inventory),
        "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
        "SQUALL_LEASE_SECONDS": "3",
    }
    srv = Server(tmp_path / "data", env=env).start()
    tag = "crash"
    try:
        with srv.client() as api:
            rid = start(api, spec(tag, touch_cmd(tag, sleep=3), batches=[2, 4, "100%"]))
            wait(api, rid, lambda v: v["batch"] == 1 and v["counts"].get("running", 0) == 4)
            time.sleep(0.5)
        srv.kill()  # mid-batch, four commands in flight
        srv.start()
        with srv.client() as api:
            view = wait(api, rid, timeout=120)
        assert view["status"] == "succeeded", view
        assert view["counts"] == {"succeeded": HOSTS, "total": HOSTS}
    finally:
        srv.stop()
    # Every host changed exactly once: the ones in flight were re-attached.
    assert [runs(fleet, tag, a) for a in fleet.addresses[:HOSTS]] == [1] * HOSTS


def test_core_rollout_runs_a_rollout_as_an_action(api: httpx.Client, server: Server) -> None:
    body = spec("as-action", "true", batches=[6])
    r = api.post(
        "/api/v1/executions", json={"action": "core.rollout", "parameters": {"spec": body}}
    )
    assert r.status_code == 201, r.text
    done = server.wait_final(api, r.json()["id"], timeout=60)
    assert done["status"] == "succeeded", done
    report = done["result"]
    assert report["status"] == "succeeded" and report["counts"] == {
        "succeeded": HOSTS,
        "total": HOSTS,
    }
    assert api.get(f"/api/v1/rollouts/{report['id']}").json()["status"] == "succeeded"

    bad = {**body, "batches": ["150%"]}
    r = api.post("/api/v1/executions", json={"action": "core.rollout", "parameters": {"spec": bad}})
    failed = server.wait_final(api, r.json()["id"], timeout=30)
    assert failed["status"] == "failed"
    assert failed["result"]["problems"][0]["path"] == "batches[0]"

    held = spec("cancel-me", "true", gates=[{"after": 0, "hold": True}])
    r = api.post(
        "/api/v1/executions", json={"action": "core.rollout", "parameters": {"spec": held}}
    )
    eid = r.json()["id"]
    deadline = time.time() + 30
    while time.time() < deadline:
        rollout_id = api.get(f"/api/v1/executions/{eid}").json()["context"].get("rollout_id")
        if rollout_id and api.get(f"/api/v1/rollouts/{rollout_id}").json()["status"] == "paused":
            break
        time.sleep(0.2)
    assert api.delete(f"/api/v1/executions/{eid}").status_code == 200
    canceled = server.wait_final(api, eid, timeout=30)
    assert canceled["status"] == "canceled"
    assert api.get(f"/api/v1/rollouts/{rollout_id}").json()["status"] == "aborted"


def _marks(fleet: Fleet, tag: str, address: str) -> list[str]:
    path = Path(os.path.expanduser(f"~{fleet.user}")) / f".rollout-{RUN}-{tag}-{address}"
    return path.read_text().split() if path.exists() else []


def _mark(tag: str, what: str) -> str:
    return f'set -- $SSH_CONNECTION; echo {what} >> ~/.rollout-{RUN}-{tag}-"$3"'


def test_hooks_wrap_every_host_and_post_host_runs_even_on_failure(
    api: httpx.Client, fleet: Fleet
) -> None:
    tag, fail_at = "hooks", fleet.addresses[2]  # r03, in the second batch
    hook = {"action": "core.remote", "parameters": {"hosts": "{{ host.name }}"}}
    body = spec(
        tag,
        _mark(tag, "change") + f'; [ "$3" = {fail_at} ] && exit 3; true',
        concurrency=1,
        stop_on_first_failure=True,
        hooks={
            "pre_host": {**hook, "parameters": {**hook["parameters"], "cmd": _mark(tag, "drain")}},
            "post_host": {
                **hook,
                "parameters": {**hook["parameters"], "cmd": _mark(tag, "undrain")},
            },
        },
        checks={
            "health": {
                "command": f"test -s ~/.rollout-{RUN}-{tag}-$(set -- $SSH_CONNECTION; echo $3)",
                "retries": 1,
                "interval": "1s",
            }
        },
    )
    view = wait(api, start(api, body))
    assert view["status"] == "failed", view
    order = [h["name"] for b in view["batches"] for h in b["hosts"]]
    failed_at = order.index("r03")
    for i, name in enumerate(order):
        marks = _marks(fleet, tag, fleet.addresses[int(name[1:]) - 1])
        if i <= failed_at:
            # drained, changed, and back in the pool even when the change failed
            assert marks == ["drain", "change", "undrain"], (name, marks)
        else:
            assert marks == [], name
    assert statuses(view)["r03"] == "failed"


def test_preflight_can_exclude_unhealthy_hosts(api: httpx.Client, fleet: Fleet) -> None:
    sick = fleet.addresses[5]  # r06
    body = spec(
        "preflight",
        "true",
        batches=[6],
        checks={
            "preflight": {
                "command": f'set -- $SSH_CONNECTION; [ "$3" != {sick} ]',
                "on_fail": "exclude",
            }
        },
    )
    view = wait(api, start(api, body))
    assert view["status"] == "succeeded", view
    hosts = {h["name"]: h for b in view["batches"] for h in b["hosts"]}
    assert hosts["r06"]["status"] == "skipped" and "excluded" in hosts["r06"]["error"]
    assert view["counts"] == {"succeeded": HOSTS - 1, "skipped": 1, "total": HOSTS}
