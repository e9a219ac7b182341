"""Executions, the event stream, cancels, timers, /ready and /metrics across
processes: an API process and two workers on one PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from tests.integration.scaleout.conftest import (
    METRICS_TOKEN,
    Deployment,
    StreamReader,
    wait_final,
)

pytestmark = pytest.mark.postgres


def test_executions_run_on_workers_and_the_api_streams_them(deployment: Deployment) -> None:
    with StreamReader(deployment) as stream, deployment.client() as c:
        ids = [
            c.post(
                "/api/v1/executions",
                json={"action": "core.local", "parameters": {"cmd": f"echo line-{n}"}},
            ).json()["id"]
            for n in range(6)
        ]
        done = wait_final(c, ids, timeout=30)
        assert {r["status"] for r in done.values()} == {"succeeded"}
        stream.wait_for(ids)
        outputs = stream.outputs(ids)
        assert set(ids) <= stream.finished(), "the API's stream shows what the workers did"
        assert set(ids) <= outputs, "and the output they streamed"
        out = [p["data"] for n, p in stream.events if n == "st2.execution.output__create"]
        assert any("line-3" in d for d in out)


def test_a_cancel_from_the_api_reaches_the_worker(deployment: Deployment) -> None:
    with deployment.client() as c:
        eid = c.post(
            "/api/v1/executions", json={"action": "core.local", "parameters": {"cmd": "sleep 30"}}
        ).json()["id"]
        deadline = time.time() + 15
        while c.get(f"/api/v1/executions/{eid}").json()["status"] != "running":
            assert time.time() < deadline
            time.sleep(0.05)
        started = time.time()
        assert c.delete(f"/api/v1/executions/{eid}").status_code == 200
        row = wait_final(c, [eid], timeout=10)[eid]
        assert row["status"] == "canceled"
        assert time.time() - started < 5


def test_ready_and_metrics(deployment: Deployment) -> None:
    deployment.ensure_workers(2)
    ready = httpx.get(f"{deployment.api_url}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert httpx.get(f"{deployment.api_url}/metrics").status_code == 401
    # Prometheus scrapes with the metrics token instead of an API key.
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert httpx.get(f"{deployment.api_url}/metrics", headers=bearer).status_code == 200
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{deployment.api_url}/metrics", headers=wrong).status_code == 401
    with deployment.client() as c:
        text = c.get("/metrics").text
    assert "squall_workers_live 2.0" in text
    assert 'squall_executions{status="succeeded"}' in text
    assert "# TYPE squall_queue_depth gauge" in text
    assert "# TYPE squall_webhook_requests_total counter" in text


def test_a_timer_fires_once_with_two_workers(deployment: Deployment) -> None:
    rule = {
        "name": "tick",
        "pack": "scale",
        "enabled": True,
        "trigger": {
            "type": "core.st2.IntervalTimer",
            "parameters": {"unit": "seconds", "delta": 1},
        },
        "action": {"ref": "core.noop"},
    }
    deployment.ensure_workers(2)
    with deployment.client() as c:
        assert c.post("/api/v1/rules", json=rule).status_code == 201
        time.sleep(4.5)  # the timer's own period: nothing to wait on but time
        assert c.delete("/api/v1/rules/scale.tick").status_code == 204
        time.sleep(0.5)
        runs = c.get("/api/v1/executions", params={"rule": "scale.tick", "limit": 100}).json()
    # Once a second for ~4.5 s: two workers firing it each would make ~9.
    assert 3 <= len(runs) <= 6, len(runs)


def test_throughput_rises_from_one_worker_to_two(deployment: Deployment) -> None:
    def run_naps(n: int) -> float:
        """Seconds from the first nap's request to the last one's end."""
        with deployment.client() as c:
            ids = [
                c.post("/api/v1/executions", json={"action": "scale.nap"}).json()["id"]
                for _ in range(n)
            ]
            done = wait_final(c, ids, timeout=60)
        assert {r["status"] for r in done.values()} == {"succeeded"}
        first = min(parse_iso(r["start_timestamp"]) for r in done.values())
        return max(parse_iso(r["end_timestamp"]) for r in done.values()) - first

    # Four slots per worker: 16 one-second naps take 4 rounds on one worker,
    # 2 on two.
    deployment.ensure_workers(2)
    two = run_naps(16)
    deployment.kill(deployment.names("worker")[-1], sig=15)
    deployment.wait_workers(1)
    one = run_naps(16)
    assert one >= 3.9
    assert two < one * 0.75, (one, two)


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
