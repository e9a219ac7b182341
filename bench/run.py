"""Foundation benchmark: execution throughput, latency and idle memory.

Starts a real ``squall up`` (SQLite, fresh data directory) and measures, from a
client process on the same machine:

* noop throughput: N ``core.noop`` executions submitted through the API with
  C requests in flight, until the event stream has reported every one
  ``succeeded``;
* ``core.local cmd=true`` throughput, the same way;
* noop latency: one execution at a time, from sending the POST to receiving its
  ``succeeded`` event on the stream (median and p95);
* idle RSS of the server process after start-up and a short rest.

Usage:  python bench/run.py [--noop 5000] [--local 1000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "bench-key-0123456789"
FINAL = {"succeeded", "failed", "timeout", "canceled", "abandoned"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Stream:
    """Follows /stream/v1/stream and records when each execution finished."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.done: dict[str, tuple[float, str]] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        url = f"{self.base}/stream/v1/stream?events=st2.execution__update&st2-api-key={KEY}"
        async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as resp:
            self.ready.set()
            event = None
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "st2.execution__update":
                    body = json.loads(line[5:])
                    if body["status"] in FINAL:
                        now = time.perf_counter()
                        self.done[body["id"]] = (now, body["status"])
                        fut = self.waiters.pop(body["id"], None)
                        if fut and not fut.done():
                            fut.set_result(now)


class RawClient:
    """A lean HTTP/1.1 keep-alive client, so the load generator does not need
    more CPU than the server it measures (the two share this machine)."""

    def __init__(self, port: int, key: str = KEY) -> None:
        self.port = port
        self.key = key

    async def post_many(self, n: int, body: dict) -> list[str]:
        data = json.dumps(body).encode()
        request = (
            b"POST /api/v1/executions HTTP/1.1\r\nHost: bench\r\nSt2-Api-Key: "
            + self.key.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(data)).encode()
            + b"\r\n\r\n"
            + data
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        ids = []
        try:
            for _ in range(n):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                payload = await reader.readexactly(length)
                if status != 201:
                    raise RuntimeError(f"POST answered {status}: {payload[:200]!r}")
                ids.append(json.loads(payload)["id"])
        finally:
            writer.close()
        return ids


async def count_final(client: httpx.AsyncClient, action: str) -> int:
    r = await client.get(
        "/api/v1/executions",
        params={"action": action, "status": ",".join(sorted(FINAL)), "limit": 1},
    )
    return int(r.headers["X-Total-Count"])


async def throughput(base: str, port: int, n: int, conc: int, body: dict) -> dict:
    async with httpx.AsyncClient(base_url=base, headers={"St2-Api-Key": KEY}, timeout=60) as client:
        before = await count_final(client, body["action"])
        raw = RawClient(port)
        start = time.perf_counter()
        per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]
        await asyncio.gather(*(raw.post_many(k, body) for k in per if k))
        submitted = time.perf_counter()
        while (done := await count_final(client, body["action"])) < before + n:
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"only {done - before} of {n} finished within 10 minutes")
            await asyncio.sleep(0.02)
        end = time.perf_counter()
        ok = int(
            (
                await client.get(
                    "/api/v1/executions",
                    params={"action": body["action"], "status": "succeeded", "limit": 1},
                )
            ).headers["X-Total-Count"]
        )
    return {
        "executions": n,
        "concurrency": conc,
        "seconds": round(end - start, 3),
        "per_second": round(n / (end - start), 1),
        "submit_per_second": round(n / (submitted - start), 1),
        "succeeded_total": ok,
    }


async def latency(base: str, stream: Stream, n: int) -> dict:
    samples = []
    async with httpx.AsyncClient(base_url=base, headers={"St2-Api-Key": KEY}, timeout=30) as client:
        for _ in range(n):
            loop = asyncio.get_running_loop()
            start = time.perf_counter()
            r = await client.post("/api/v1/executions", json={"action": "core.noop"})
            eid = r.json()["id"]
            if eid in stream.done:
                end = stream.done[eid][0]
            else:
                fut: asyncio.Future[float] = loop.create_future()
                stream.waiters[eid] = fut
                end = await asyncio.wait_for(fut, 30)
            samples.append((end - start) * 1000)
    samples.sort()
    return {
        "runs": n,
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
        "min_ms": round(samples[0], 2),
    }


async def main_async(args: argparse.Namespace, base: str, pid: int) -> dict:
    results: dict = {}
    stream = Stream(base)
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stream.ready.wait(), 10)
    port = int(base.rsplit(":", 1)[1])
    await throughput(base, port, 200, args.concurrency, {"action": "core.noop"})  # warm-up
    results["noop_latency"] = await latency(base, stream, args.latency)
    task.cancel()  # the stream only serves the latency test: it would cost the server CPU
    results["noop_throughput"] = await throughput(
        base, port, args.noop, args.concurrency, {"action": "core.noop"}
    )
    results["local_true_throughput"] = await throughput(
        base,
        port,
        args.local,
        args.concurrency,
        {"action": "core.local", "parameters": {"cmd": "true"}},
    )
    await asyncio.sleep(3)
    results["rss_after_load_mb"] = round(rss_mb(pid), 1)
    return results


def calibrate() -> float:
    """Seconds a fixed pure-Python loop takes here and now: this machine's
    speed varies with its neighbours, so every figure is recorded with it."""
    start = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return round(time.perf_counter() - start, 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--noop", type=int, default=5000)
    parser.add_argument("--local", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="squall-bench-") as data:
        env = {**os.environ, "SQUALL_ADMIN_API_KEY": KEY, "SQUALL_DATA_DIR": data}
        server = subprocess.Popen(
            [sys.executable, "-m", "squall.cli.main", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("server did not become ready")
            ready_at = time.time()
            time.sleep(5)
            idle = rss_mb(server.pid)
            results = {"idle_rss_mb": round(idle, 1), "calibration_loop_s": calibrate()}
            results.update(asyncio.run(main_async(args, base, server.pid)))
            results["started"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ready_at))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
