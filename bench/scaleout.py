"""Scale-out on PostgreSQL: separate API and worker processes on one database.

Starts a throwaway PostgreSQL cluster on loopback (tests/support/postgres.py:
fsync off, as in the tests), applies the schema, then real ``squall api`` and
``squall worker`` processes, and measures from a client process:

* noop throughput: N ``core.noop`` executions through the full lifecycle
  (request, schedule, run, record), with C requests in flight, 1 API + 2
  workers; from the first request until every one has succeeded
  (target: >= 1,000/s on 2 cores);
* sleep-bound scaling: ``sleep 1`` executions with 1, 2, 4... workers of S
  slots each, R rounds' worth per worker count; throughput against linear
  from 1 worker (target: within 80 %);
* pick-up latency: one execution at a time on idle workers, from the
  ``scheduled`` to the ``running`` entry of its status log, as the workers
  recorded them (median, p95; target: median <= 5 ms with LISTEN/NOTIFY).

Usage:  python bench/scaleout.py [--noop 20000] [--concurrency 64]
            [--workers 1,2,4] [--slots 16] [--rounds 4] [--latency 200]
Tiny:   python bench/scaleout.py --noop 200 --workers 1,2 --slots 2 --rounds 2 --latency 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run import RawClient  # noqa: E402  (bench/run.py, a lean HTTP client)

from tests.support.postgres import Cluster, free_port  # noqa: E402

KEY = "bench-key-0123456789abcdef"
FINAL = {"succeeded", "failed", "timeout", "canceled", "abandoned"}


class Processes:
    def __init__(self, url: str, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SQUALL_DATABASE_URL": url,
            "SQUALL_DATA_DIR": str(root / "data"),
            "SQUALL_ADMIN_API_KEY": KEY,
            "SQUALL_API_URL": self.base,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "squall.cli.main", *args],
            env={**self.env, **env},
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        log.close()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def wait_workers(self, n: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                text = httpx.get(
                    f"{self.base}/metrics", headers={"St2-Api-Key": KEY}, timeout=5
                ).text
                if f"squall_workers_live {float(n)}" in text:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"not {n} live workers; see the logs in {self.root}")


def wait_api(base: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API did not become ready")


async def submit(client: httpx.AsyncClient, n: int, conc: int, body: dict[str, Any]) -> list[str]:
    """POST ``n`` executions over ``conc`` keep-alive connections. A lean
    client rather than httpx, which needed more CPU per request than the API
    serving it, on the same two cores."""
    port = client.base_url.port
    assert port is not None
    raw = RawClient(port, KEY)
    per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]
    batches = await asyncio.gather(*(raw.post_many(k, body) for k in per if k))
    return [eid for batch in batches for eid in batch]


async def count(client: httpx.AsyncClient, action: str, status: str) -> int:
    resp = await client.get(
        "/api/v1/executions", params={"action": action, "status": status, "limit": 1}
    )
    return int(resp.headers.get("x-total-count", "0"))


async def run_until_done(
    client: httpx.AsyncClient, n: int, conc: int, body: dict[str, Any], already: int
) -> float:
    """Seconds from the first request until ``n`` more have succeeded."""
    started = time.perf_counter()
    await submit(client, n, conc, body)
    while await count(client, body["action"], "succeeded") < already + n:
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def pickup(client: httpx.AsyncClient, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        eid = (await client.post("/api/v1/executions", json={"action": "core.noop"})).json()["id"]
        while True:
            row = (await client.get(f"/api/v1/executions/{eid}")).json()
            if row["status"] in FINAL:
                break
            await asyncio.sleep(0.01)
        times = {e["status"]: parse_iso(e["timestamp"]) for e in row["log"]}
        samples.append((times["running"] - times["scheduled"]) * 1000)
        await asyncio.sleep(0.05)  # idle workers: each one waits, woken by NOTIFY
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1 if len(samples) > 1 else 0], 2),
    }


async def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"St2-Api-Key": KEY}
    limits = httpx.Limits(max_connections=args.concurrency + 4)
    async with httpx.AsyncClient(
        base_url=procs.base, headers=headers, timeout=60, limits=limits
    ) as client:
        # noop throughput, 1 API + 2 workers (a short warm-up first)
        for i in (1, 2):
            procs.start(f"worker-noop-{i}", "worker")
        procs.wait_workers(2)
        await run_until_done(client, min(200, args.noop), 16, {"action": "core.noop"}, 0)
        done = await count(client, "core.noop", "succeeded")
        seconds = await run_until_done(
            client, args.noop, args.concurrency, {"action": "core.noop"}, done
        )
        out["noop"] = {"executions": args.noop, "seconds": round(seconds, 2)}
        out["noop"]["per_second"] = round(args.noop / seconds, 1)

        # pick-up latency on the same two idle workers
        out["pickup"] = await pickup(client, args.latency)
        for i in (1, 2):
            procs.stop(f"worker-noop-{i}")
        procs.wait_workers(0)

        # sleep-bound scaling
        sleep = {"action": "core.local", "parameters": {"cmd": "sleep 1"}}
        scaling = []
        running = 0
        done = 0
        for n in args.workers:
            while running < n:
                running += 1
                procs.start(
                    f"worker-sleep-{running}",
                    "worker",
                    SQUALL_WORKER_CONCURRENCY=str(args.slots),
                )
            procs.wait_workers(n)
            k = n * args.slots * args.rounds
            seconds = await run_until_done(client, k, min(k, args.concurrency), sleep, done)
            done += k
            scaling.append({"workers": n, "executions": k, "per_second": round(k / seconds, 2)})
        base = scaling[0]["per_second"] / scaling[0]["workers"]
        for row in scaling:
            row["of_linear"] = round(row["per_second"] / (base * row["workers"]), 3)
        out["sleep_scaling"] = scaling
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noop", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--slots", type=int, default=16, help="sleep slots per worker")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--latency", type=int, default=200)
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]

    cluster = Cluster()
    url = cluster.start()
    root = Path(tempfile.mkdtemp(prefix="squall-bench-scaleout-"))
    procs = Processes(url, root)
    try:
        upgrade = subprocess.run(
            [sys.executable, "-m", "squall.cli.main", "db", "upgrade"],
            env=procs.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if upgrade.returncode != 0:
            raise RuntimeError(upgrade.stderr)
        procs.start("api", "api", "--port", str(procs.port))
        wait_api(procs.base)
        result = asyncio.run(bench(args, procs))
        result["cores"] = os.cpu_count()
        print(json.dumps(result, indent=2))
    finally:
        procs.stop_all()
        cluster.stop()


if __name__ == "__main__":
    main()
