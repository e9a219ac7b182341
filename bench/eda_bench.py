"""Event-Driven Ansible's side of the webhook benchmark.

Starts ``ansible-rulebook`` with bench/eda/rulebook.yml (webhook source, one
rule ``event.payload.severity == "critical"`` whose action is
``print_event``), drives its webhook with bench/loadgen.py at a fixed rate,
and measures:

* the rate offered and the rate of events that went all the way through
  (webhook -> rules engine match -> action finished), end to end;
* the webhook's answer latency (p50/p90/p99), from each request's scheduled
  send time;
* the RSS of ansible-rulebook and any children at idle and at peak (its
  Drools engine runs in a JVM inside the Python process, through jpy), and
  the CPU it used during the load, and what other processes and the
  hypervisor (steal) took from this machine meanwhile: on a shared machine
  these decide whether two runs can be compared.

How completed actions are counted: the rule's action, ``print_event``, writes
each matched event (its payload holds ``'seq': N``) on ansible-rulebook's
standard output as it runs; this script reads that pipe and records each
distinct sequence number with the time it arrived. An event counts only if
its own sequence number comes back, so a missing, duplicated or warm-up event
cannot be mistaken for a measured one.

ansible-rulebook is not installed by this script: ``bench/setup-eda`` puts
it into bench/.venv-eda (or set EDA_RULEBOOK to an ansible-rulebook
executable). Java 17+ must be installed. This script needs only the standard
library (and uses uvloop if present), so any Python 3.11 runs it.

Usage:
    bench/setup-eda                                         # once
    python bench/eda_bench.py --rate 500 1000 2000 --duration 20
    python bench/eda_bench.py --find-max 500 1200 --duration 20   # bisects

Every rate gets a fresh ansible-rulebook. From another script in bench/:
``from eda_bench import run_eda; run_eda(1000, 60)`` returns the same
figures as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen

BENCH = Path(__file__).resolve().parent
RULEBOOK = BENCH / "eda" / "rulebook.yml"
# print_event writes the event as a Python dict repr on one line.
MATCH = re.compile(rb"'seq': (-?\d+)")
# Warm-up events carry sequence numbers far above any measured run's, so
# they never count as measured ones.
WARMUP_SEQ = 1_000_000_000
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def find_rulebook_bin() -> Path:
    candidates = [os.environ.get("EDA_RULEBOOK"), BENCH / ".venv-eda" / "bin" / "ansible-rulebook"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    found = shutil.which("ansible-rulebook")
    if found:
        return Path(found)
    raise SystemExit(
        "ansible-rulebook not found: run bench/setup-eda (or set EDA_RULEBOOK to its path)"
    )


def rulebook_env(binary: Path, host: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    # ansible-rulebook refuses to start unless ansible-galaxy (from
    # ansible-core, in the same venv) is on PATH.
    env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
    if "JAVA_HOME" not in env and (java := shutil.which("java")):
        env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    env["EDA_BENCH_HOST"] = host
    env["EDA_BENCH_PORT"] = str(port)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start
        # after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    tree = _children()
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(tree.get(current, []))
    return pids


def tree_rss_mb(pid: int) -> float:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_KB
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def machine_cpu_s() -> tuple[float, float]:
    """CPU seconds all cores spent busy, and stolen by the hypervisor for
    other guests, since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def calibrate() -> float:
    """Seconds a fixed pure-Python loop takes here and now (the same loop as
    bench/run.py): this machine's speed varies with its neighbours."""
    start = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return round(time.perf_counter() - start, 3)


class MatchCounter:
    """Reads ansible-rulebook's stdout and records when each sequence number
    came back from the action."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.seen: dict[int, float] = {}
        self.duplicates = 0
        self.changed = asyncio.Event()

    async def run(self) -> None:
        pending = b""
        while chunk := await self.stream.read(1 << 16):
            now = time.perf_counter()
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            for m in MATCH.finditer(data, 0, cut):
                seq = int(m.group(1))
                if seq in self.seen:
                    self.duplicates += 1
                else:
                    self.seen[seq] = now
            self.changed.set()

    def count(self, lo: int, hi: int) -> int:
        return sum(1 for s in self.seen if lo <= s < hi)

    async def wait_for(self, lo: int, hi: int, stall: float, limit: float) -> int:
        """Waits until every seq in [lo, hi) came back, or none arrived for
        `stall` seconds, or `limit` seconds passed; returns how many did."""
        deadline = time.perf_counter() + limit
        while (n := self.count(lo, hi)) < hi - lo and time.perf_counter() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), stall)
            except TimeoutError:
                break
        return n


async def wait_ready(url: str, timeout: float) -> float:
    """POSTs a non-matching event until the webhook answers 2xx; returns the
    seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        result = await loadgen.run_load(
            url,
            rate=1,
            duration=1,
            make_body=lambda seq: {"seq": -1, "severity": "info", "check": "ready"},
            connections=1,
            drain_timeout=2,
        )
        if any(code.startswith("2") for code in result.statuses):
            return time.perf_counter() - start
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the webhook at {url} did not answer within {timeout:.0f} s")


async def run_eda_async(
    rate: float,
    duration: float,
    *,
    connections: int = 32,
    warmup_s: float = 3.0,
    idle_s: float = 5.0,
    ready_timeout: float = 120.0,
    rulebook: Path = RULEBOOK,
) -> dict[str, Any]:
    """run_eda for a caller that already runs an event loop."""
    binary = find_rulebook_bin()
    host, port = "127.0.0.1", free_port()
    url = f"http://{host}:{port}/alerts"
    with tempfile.TemporaryFile() as errlog:
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            "--rulebook",
            str(rulebook),
            "--env-vars",
            "EDA_BENCH_HOST,EDA_BENCH_PORT",
            env=rulebook_env(binary, host, port),
            stdout=asyncio.subprocess.PIPE,
            stderr=errlog,
            start_new_session=True,
        )
        assert proc.stdout is not None
        counter = MatchCounter(proc.stdout)
        reader = asyncio.create_task(counter.run())
        try:
            return await _measure(
                proc.pid, url, counter, rate, duration, connections, warmup_s, idle_s, ready_timeout
            )
        except BaseException:
            errlog.seek(0)
            tail = errlog.read()[-3000:].decode(errors="replace")
            print(f"ansible-rulebook stderr (tail):\n{tail}", file=sys.stderr)
            raise
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _measure(
    pid: int,
    url: str,
    counter: MatchCounter,
    rate: float,
    duration: float,
    connections: int,
    warmup_s: float,
    idle_s: float,
    ready_timeout: float,
) -> dict[str, Any]:
    startup_s = await wait_ready(url, ready_timeout)
    await asyncio.sleep(idle_s)
    idle_rss = tree_rss_mb(pid)

    if warmup_s > 0:
        # The JVM compiles the rules engine's hot paths during its first
        # thousands of events; a short warm-up (bench/run.py warms Squall up
        # too) keeps that out of the measurement.
        warm_rate = min(rate, 500.0)
        warm = await loadgen.run_load(
            url, warm_rate, warmup_s, connections=connections, first_seq=WARMUP_SEQ
        )
        await counter.wait_for(WARMUP_SEQ, WARMUP_SEQ + warm.sent, stall=10, limit=120)

    peak_rss = tree_rss_mb(pid)
    sampling = True

    async def sample() -> None:
        nonlocal peak_rss
        while sampling:
            peak_rss = max(peak_rss, tree_rss_mb(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    cpu_before, (busy_before, steal_before) = tree_cpu_s(pid), machine_cpu_s()
    own_before, wall_before = own_cpu_s(), time.perf_counter()
    # An overloaded engine works off its backlog long after the last send is
    # due; the generator must wait for it, or the unsent rest would pass for
    # events the engine lost.
    load = await loadgen.run_load(
        url, rate, duration, connections=connections, drain_timeout=60 + 2 * duration
    )
    total = round(rate * duration)
    # Stop waiting once nothing more comes back for 10 s: a lost event must
    # not hang the benchmark, it shows as matched < sent.
    matched = await counter.wait_for(0, total, stall=10, limit=600)
    cpu_used = tree_cpu_s(pid) - cpu_before
    wall = time.perf_counter() - wall_before
    # What the rest of the machine (other users' jobs) took meanwhile: the
    # figures are only comparable between runs with little of it.
    busy_after, steal_after = machine_cpu_s()
    others = busy_after - busy_before - cpu_used - (own_cpu_s() - own_before)
    sampling = False
    await sampler
    peak_rss = max(peak_rss, tree_rss_mb(pid))

    times = sorted(t for s, t in counter.seen.items() if 0 <= s < total)
    t0 = load.started_at
    last = times[-1] if times else t0
    span = last - t0
    # The last event was due at t0 + (total - 1) / rate: anything after that
    # is the backlog the engine still had to work off.
    drain_s = last - (t0 + (total - 1) / rate)
    end_to_end = matched / span if span > 0 else 0.0
    per_second = [0] * (int(span) + 1 if span > 0 else 0)
    for t in times:
        if t >= t0:
            per_second[int(t - t0)] += 1
    ok = sum(v for k, v in load.statuses.items() if k.startswith("2"))
    return {
        "tool": "ansible-rulebook",
        "rate_offered": rate,
        "duration_s": duration,
        "sent": load.sent,
        "answered_2xx": ok,
        "statuses": load.statuses,
        "webhook_rate": load.achieved_rate,
        "matched": matched,
        "duplicates": counter.duplicates,
        "rate_matched_end_to_end": round(end_to_end, 1),
        "drain_after_last_send_s": round(drain_s, 3),
        # Keeping up: every event came back, and the engine finished them
        # within a second of the last one being due (no growing backlog).
        "keeps_up": matched == total and drain_s < 1.0 and end_to_end >= 0.97 * rate,
        "latency_ms": load.latency_ms,
        "loadgen_max_send_lag_ms": load.max_send_lag_ms,
        "matched_per_second": per_second,
        "cpu_s_during_load": round(cpu_used, 2),
        "cpu_cores_used": round(cpu_used / wall, 2),
        "loadgen_cpu_cores": round((own_cpu_s() - own_before) / wall, 2),
        "other_processes_cpu_cores": round(max(others, 0.0) / wall, 2),
        "stolen_cpu_cores": round((steal_after - steal_before) / wall, 2),
        "rss_idle_mb": round(idle_rss, 1),
        "rss_peak_mb": round(peak_rss, 1),
        "startup_s": round(startup_s, 2),
    }


def run_eda(rate: float, duration: float, **options: Any) -> dict[str, Any]:
    """One fresh ansible-rulebook, one load at `rate` events/s for
    `duration` seconds; returns the figures as a dict. Not from inside a
    running event loop: await run_eda_async there.

    Options: connections (32), warmup_s (3, at <= 500/s), idle_s (5: rest
    before the idle RSS is read), ready_timeout (120), rulebook
    (bench/eda/rulebook.yml; another one must read its address from
    EDA_BENCH_HOST/EDA_BENCH_PORT and `print_event` each matched event for
    its events to be counted)."""
    return loadgen.run(run_eda_async(rate, duration, **options))


def find_max(duration: float, lo: float, hi: float, steps: int, **kwargs: Any) -> dict[str, Any]:
    """Bisects between a rate known (or assumed) to keep up and one that does
    not; each probe is a fresh process and a full-length run."""
    probes = []
    for _ in range(steps):
        mid = round((lo + hi) / 2, -1)
        if mid in (lo, hi):
            break
        result = run_eda(mid, duration, **kwargs)
        probes.append(result)
        print(json.dumps(summary(result)), file=sys.stderr, flush=True)
        if result["keeps_up"]:
            lo = mid
        else:
            hi = mid
    return {"max_sustained_rate": lo, "first_failing_rate": hi, "probes": probes}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "rate_offered",
        "rate_matched_end_to_end",
        "keeps_up",
        "sent",
        "matched",
        "drain_after_last_send_s",
        "latency_ms",
        "webhook_rate",
        "cpu_cores_used",
        "loadgen_cpu_cores",
        "other_processes_cpu_cores",
        "stolen_cpu_cores",
        "rss_idle_mb",
        "rss_peak_mb",
    )
    return {k: result[k] for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, nargs="+", default=[1000.0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, at <= 500/s")
    parser.add_argument("--rulebook", type=Path, default=RULEBOOK)
    parser.add_argument(
        "--find-max",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="bisect the highest rate that keeps up between LO and HI",
    )
    parser.add_argument("--steps", type=int, default=5, help="bisection steps for --find-max")
    parser.add_argument("--full", action="store_true", help="print every field")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "calibration_loop_s": calibrate(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    opts = {"connections": args.connections, "warmup_s": args.warmup, "rulebook": args.rulebook}
    if args.find_max:
        found = find_max(args.duration, *args.find_max, args.steps, **opts)
        if not args.full:
            found["probes"] = [summary(p) for p in found["probes"]]
        report["find_max"] = found
    else:
        runs = [run_eda(rate, args.duration, **opts) for rate in args.rate]
        report["runs"] = runs if args.full else [summary(r) for r in runs]
    report["calibration_loop_s_after"] = calibrate()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
