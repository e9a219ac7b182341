"""Failures of a scaled-out Squall: workers killed during load, PostgreSQL
restarted during load, a sensors process killed."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter

import httpx
import orjson
import pytest

from squall.store.rollouts import FINAL_ROLLOUT
from tests.integration.scaleout.conftest import (
    ROLLOUT_HOSTS,
    Deployment,
    StreamReader,
    wait_final,
)


def wait_rollout(client: httpx.Client, rollout_id: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    while True:
        view = client.get(f"/api/v1/rollouts/{rollout_id}").json()
        if view["status"] in FINAL_ROLLOUT or time.time() > deadline:
            return dict(view)
        time.sleep(0.3)


pytestmark = pytest.mark.postgres


def test_killing_workers_loses_nothing_and_runs_nothing_twice(deployment: Deployment) -> None:
    rng = random.Random(8)
    deployment.marks.unlink(missing_ok=True)
    # Four workers: the chaos kills two of them.
    deployment.ensure_workers(4)
    killed: list[str] = []

    def chaos() -> None:
        # Kill a random worker every ~1.5 s (claims last 2 s) while the work
        # comes in; only workers that are up are killed, so one is always
        # left to resume the work.
        deadline = time.time() + 40
        while len(killed) < 2 and time.time() < deadline:
            time.sleep(1.5)
            up = [n for n in deployment.names("worker") if deployment.is_up(n)]
            if len(up) >= 2:
                victim = rng.choice(up)
                deployment.kill(victim, signal.SIGKILL)
                killed.append(victim)

    killer = threading.Thread(target=chaos, daemon=True)
    killer.start()
    with deployment.client() as c:
        plain, idem, retried, flows = [], [], [], []
        kinds = (("scale.mark", plain), ("scale.mark_idem", idem), ("scale.mark_retry", retried))
        for n in range(240):
            action, ids_of_kind = kinds[n % 3]
            ids_of_kind.append(c.post("/api/v1/executions", json={"action": action}).json()["id"])
        for _ in range(4):
            flows.append(c.post("/api/v1/executions", json={"action": "scale.flow"}).json()["id"])
        spec = {
            "name": "chaos",
            "target": "role=node",
            "action": "scale.mark_host",
            "batches": [1, "25%", "100%"],
            "concurrency": 2,
        }
        answer = c.post("/api/v1/rollouts", json={"spec": spec})
        assert answer.status_code == 201, answer.text
        rollout = answer.json()["id"]
        ids = plain + idem + retried + flows
        killer.join(60)
        kills = len(killed)
        done = wait_final(c, ids, timeout=60)
        # An abandoned execution under a retry policy is retried: each retry
        # names the one it retries; follow the chains to their ends.
        retries = {
            r["context"]["policies"]["retry"]["retried_execution_id"]: r["id"]
            for r in c.get(
                "/api/v1/executions", params={"action": "scale.mark_retry", "limit": 1000}
            ).json()
            if (r.get("context") or {}).get("policies", {}).get("retry")
        }
        ends = []
        for eid in retried:
            while eid in retries:
                eid = retries[eid]
            ends.append(eid)
        ended = wait_final(c, ends, timeout=60)
        view = wait_rollout(c, rollout, timeout=90)
    runs = Counter(deployment.marks.read_text().split())
    statuses = Counter(done[i]["status"] for i in plain)
    # Nothing lost: every execution ended. A non-idempotent action ran at
    # most once: succeeded ones exactly once; abandoned ones (their worker
    # died under them) at most once, and they say why.
    for eid in plain:
        row = done[eid]
        assert runs[eid] <= 1, f"{eid} ran {runs[eid]} times"
        if row["status"] == "succeeded":
            assert runs[eid] == 1
        else:
            assert row["status"] == "abandoned", row
    # Idempotent ones were run again instead: all succeeded.
    assert all(done[i]["status"] == "succeeded" for i in idem), Counter(
        done[i]["status"] for i in idem
    )
    assert all(runs[i] >= 1 for i in idem)
    assert all(done[i]["status"] == "succeeded" or i in retries for i in retried)
    assert all(ended[i]["status"] in ("succeeded", "abandoned") for i in ends)
    assert all(runs[i] <= 1 for i in list(retries) + list(retries.values()))
    with deployment.client() as c:
        flow_rows = [c.get(f"/api/v1/executions/{i}").json() for i in flows]
    assert all(r["status"] == "succeeded" for r in flow_rows), [
        (r["status"], r.get("result")) for r in flow_rows
    ]
    # The rollout went on through the kills: every host done, its per-host
    # executions (idempotent) run again where a worker died under them.
    assert view["status"] == "succeeded", view
    hosts = {h["name"]: h for b in view["batches"] for h in b["hosts"]}
    assert len(hosts) == ROLLOUT_HOSTS
    assert {h["status"] for h in hosts.values()} == {"succeeded"}, hosts
    assert all(runs[h["execution"]] >= 1 for h in hosts.values())
    assert kills == 2
    # The workers' JSON logs name the executions they resolved.
    lines = [
        orjson.loads(line)
        for log in deployment.root.glob("worker*.log")
        for line in log.read_text().splitlines()
        if line.startswith("{")
    ]
    resolved = {e["execution_id"] for e in lines if "execution_id" in e}
    assert resolved and resolved <= set(ids) | set(retries.values())
    assert statuses["succeeded"] > 0
    deployment.wait_workers(2)


def test_postgresql_restart_during_load(deployment: Deployment) -> None:
    with deployment.client() as c:
        before = [
            c.post("/api/v1/executions", json={"action": "scale.nap"}).json()["id"]
            for _ in range(6)
        ]
        deployment.cluster.stop_server()
        try:
            # During the outage: a clear 503, quickly, from the API and /ready.
            started = time.time()
            answer = c.get("/api/v1/executions", params={"limit": 1})
            assert answer.status_code == 503, answer.text
            assert "database" in answer.json()["faultstring"]
            assert httpx.get(f"{deployment.api_url}/ready").status_code == 503
            assert time.time() - started < 10
            time.sleep(1.0)  # the processes meet the outage too
        finally:
            deployment.cluster.start_server()
        deployment.wait_ready()
    # The API's stream shows what workers do after the restart: every
    # listening connection came back.
    with StreamReader(deployment) as stream, deployment.client() as c:
        after = [
            c.post(
                "/api/v1/executions", json={"action": "core.local", "parameters": {"cmd": "true"}}
            ).json()["id"]
            for _ in range(6)
        ]
        done = wait_final(c, before + after, timeout=60)
        stream.wait_for(after)
        assert set(after) <= stream.finished()
    # What was running during the outage ends (ran, or abandoned if its
    # result could not be recorded in time); what came after runs normally.
    assert all(done[i]["status"] in ("succeeded", "abandoned") for i in before)
    assert all(done[i]["status"] == "succeeded" for i in after)
    assert all(p.poll() is None for p in deployment.procs.values()), deployment.logs()
    deployment.ensure_workers(2)  # their lock sessions came back too


def test_a_sensor_moves_when_its_process_dies(deployment: Deployment) -> None:
    second = deployment.start("sensors")

    def owner(timeout: float, not_pid: int | None = None) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                pid = int(deployment.sensor_file.read_text())
            except (OSError, ValueError):
                pid = None
            if pid and pid != not_pid:
                return pid
            time.sleep(0.2)
        raise AssertionError(f"no sensors process took the sensor:\n{deployment.logs()}")

    first_pid = owner(30)
    by_pid = {p.pid: n for n, p in deployment.procs.items()}
    holder = by_pid[first_pid]
    assert holder.startswith("sensors")
    deployment.kill(holder, signal.SIGKILL)
    new_pid = owner(30, not_pid=first_pid)
    survivors = {p.pid for n, p in deployment.procs.items() if n.startswith("sensors")}
    assert new_pid in survivors  # one sensors process is left, as found
    assert second in deployment.procs or holder == second
