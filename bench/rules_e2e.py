"""Events end to end on SQLite: webhook -> rule match -> core.noop execution.

Starts a real ``squall up`` (fresh data directory) with one pack holding one
rule: on ``core.st2.webhook`` at ``load``, when ``trigger.body.severity``
equals ``critical``, run ``core.noop``. bench/loadgen.py POSTs events at a
fixed rate (open loop: latency counts from each request's scheduled time);
every event is critical, so every one must start an execution.

Reported: webhook answers per second and their latency (p50/p99), and the
end-to-end rate — events whose execution has *succeeded* per second, from
the first request to the last success. With ``--crash`` the server is killed
with SIGKILL halfway through the load and started again; then every event
that was answered 202 must have its enforcement and a finished execution.

With ``--intake`` the server also runs its webhook intake (``squall up
--intake-port``: webhooks answered by a process of their own, kept in an
inbox the server takes them from) and the load goes to that port; the crash
then kills both processes.

With ``--eda`` Event-Driven Ansible (bench/eda_bench.py; install it with
bench/setup-eda) runs right after, on the same events and rate.

Usage:  python bench/rules_e2e.py [--rate 1000] [--duration 60] [--intake] [--crash] [--eda]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import run_load
from run import calibrate, free_port, rss_mb

KEY = "bench-key-0123456789"
RULE = """\
name: load
pack: benchevents
enabled: true
trigger:
  type: core.st2.webhook
  parameters: {url: load}
criteria:
  trigger.body.severity: {type: equals, pattern: critical}
action:
  ref: core.noop
"""


def make_pack(root: Path) -> Path:
    pack = root / "benchevents"
    (pack / "rules").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "name: benchevents\nversion: 0.1.0\ndescription: benchmark\nauthor: bench\n"
    )
    (pack / "rules" / "load.yaml").write_text(RULE)
    return root


def body(seq: int) -> dict[str, Any]:
    return {"seq": seq, "host": f"web-{seq % 100:03d}", "severity": "critical", "check": "disk"}


class Squall:
    def __init__(self, data: Path, packs: Path, intake: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.intake_port = free_port() if intake else None
        self.webhooks = f"http://127.0.0.1:{self.intake_port or self.port}"
        self.data, self.packs = data, packs
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "SQUALL_DATA_DIR": str(self.data),
            "SQUALL_ADMIN_API_KEY": KEY,
            "SQUALL_ADMIN_PASSWORD": "bench-password",
        }
        args = [sys.executable, "-m", "squall.cli.main", "up", "--port", str(self.port)]
        if self.intake_port:
            args += ["--intake-port", str(self.intake_port)]
        log = open(self.data / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [*args, "--packs-dir", str(self.packs)],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,  # the crash kills the intake too
        )
        deadline = time.time() + 60
        for url in {self.url, self.webhooks}:
            while time.time() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("squall did not start")

    def pids(self) -> list[int]:
        """The server's process, then its intake's if any."""
        assert self.proc is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    children.append(int(stat.parent.name))
            except (OSError, ValueError):
                pass  # gone meanwhile
        return [self.proc.pid, *sorted(children)]

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


async def count(client: httpx.AsyncClient, path: str, **params: Any) -> int:
    r = await client.get(path, params={**params, "limit": 1})
    r.raise_for_status()
    return int(r.headers["X-Total-Count"])


async def wait_done(client: httpx.AsyncClient, expected: int, timeout: float) -> float | None:
    """When the expected number of noop executions had succeeded (perf_counter), or None."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        done = await count(client, "/api/v1/executions", action="core.noop", status="succeeded")
        if done >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_squall(rate: float, duration: float, crash: bool, intake: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="squall-bench-events-") as tmp:
        srv = Squall(Path(tmp) / "data", make_pack(Path(tmp) / "packs"), intake)
        srv.data.mkdir()
        srv.start()
        assert srv.proc is not None
        idle_rss = sum(rss_mb(pid) for pid in srv.pids())
        headers = {"St2-Api-Key": KEY}
        url = f"{srv.webhooks}/api/v1/webhooks/load"
        try:
            async with httpx.AsyncClient(base_url=srv.url, headers=headers, timeout=30) as c:
                if crash:
                    load = asyncio.ensure_future(run_load(url, rate, duration, headers, body))
                    await asyncio.sleep(duration / 2)
                    srv.kill()
                    result = await load
                    srv.start()
                    accepted = result.statuses.get("202", 0)
                    finished = await wait_done(c, 0, 1)  # the server answers again
                    deadline = time.time() + 120
                    while time.time() < deadline:
                        enforced = await count(
                            c, "/api/v1/ruleenforcements", rule_ref="benchevents.load"
                        )
                        finished_n = sum(
                            [
                                await count(c, "/api/v1/executions", action="core.noop", status=s)
                                for s in ("succeeded", "abandoned", "failed")
                            ]
                        )
                        if enforced >= accepted and finished_n >= accepted:
                            break
                        await asyncio.sleep(0.5)
                    return {
                        "tool": "squall" + (" with its intake" if intake else ""),
                        "crash_test": True,
                        "answered_202": accepted,
                        "connection_errors_during_crash": result.errors,
                        "enforcements_after_restart": enforced,
                        "executions_finished_after_restart": finished_n,
                        "lost": max(0, accepted - enforced),
                    }
                cpu_before = [cpu_seconds(pid) for pid in srv.pids()]
                result = await run_load(url, rate, duration, headers, body)
                accepted = result.statuses.get("202", 0)
                finished = await wait_done(c, accepted, 120)
                cpu = [cpu_seconds(p) - b for p, b in zip(srv.pids(), cpu_before, strict=True)]
                peak_rss = sum(rss_mb(pid) for pid in srv.pids())
        finally:
            srv.stop()
    end_to_end = (
        round(accepted / (finished - result.started_at), 1) if finished is not None else None
    )
    return {
        "tool": "squall" + (" with its intake" if intake else ""),
        "offered_rate": rate,
        "duration_s": duration,
        "answered_202": accepted,
        "other_statuses": {k: v for k, v in result.statuses.items() if k != "202"},
        "webhook_rate": result.achieved_rate,
        "webhook_latency_ms": result.latency_ms,
        "end_to_end_rate": end_to_end,
        # CPU per event: the server's process, then the intake's.
        "cpu_ms_per_event": [round(c * 1000 / max(accepted, 1), 3) for c in cpu],
        "idle_rss_mb": round(idle_rss, 1),
        "rss_after_load_mb": round(peak_rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--crash", action="store_true", help="kill -9 the server mid-load")
    parser.add_argument("--intake", action="store_true", help="webhooks to squall intake")
    parser.add_argument("--eda", action="store_true", help="also run Event-Driven Ansible")
    args = parser.parse_args()
    out: dict[str, Any] = {"calibration_loop_s": calibrate()}
    out["squall"] = asyncio.run(run_squall(args.rate, args.duration, args.crash, args.intake))
    if args.eda:
        from eda_bench import run_eda, summary

        out["eda"] = summary(run_eda(args.rate, args.duration))
    out["calibration_loop_s_after"] = calibrate()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
