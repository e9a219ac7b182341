"""Workflows on SQLite: Squall's engine end to end, its share, and the conductors alone.

Two Orquesta workflows are generated into a temporary pack:

* ``seq``: N tasks in a row (default 1,000), each ``core.noop``, each
  leading to the next with ``when: <% succeeded() %>``;
* ``items``: one task over a list of M items given as input (default
  10,000), ``concurrency: 100``, ``action: core.noop``.

Measured, for each:

1. **End to end**: a real ``squall up`` (fresh SQLite data directory, the
   pack) runs the workflow through the API; wall time from the POST to the
   final status, per task (per item), and the server's peak RSS (VmHWM, and
   VmRSS sampled every 50 ms). One fresh server per workflow, so the peak is
   that workflow's.
2. **The engine's share**: the same run with the services started inside
   this process (``squall.server.start_system``, no HTTP), every database
   transaction timed by what ran it: the engine's steps
   (``WorkflowEngine.step``) and its queue reads, the worker's claims and
   completions, and the SQLite writer's commits. "Engine per task" is the
   time spent in engine steps and engine reads divided by the tasks (items).
3. **Squall's conductor alone** (``OrquestaConductor``, no database), fed
   instant results one at a time, in a process of its own (for its RSS);
   ``bare`` keeps it in memory, ``records`` also takes the changed records
   after every event (what the engine persists).
4. **The reference conductor** (PyPI ``orquesta``, StackStorm's), driven the
   same way by bench/orquesta_ref.py in bench/.venv-orquesta (made by
   bench/setup-orquesta), in modes ``bare``, ``serialize`` and ``st2`` (see
   that file). Its cost per task grows with the size of the workflow, so by
   default it runs at smaller sizes and the full size is extrapolated from
   a power-law fit of its CPU time; the table says so (``--ref-full`` runs
   the full sizes: hours to days). Both conductors are compared on CPU time:
   each runs on one thread, and the machine may be shared.

Targets (the workflow issue): ``seq`` with at most 2 ms of engine overhead
per task; ``items`` completes with a peak RSS of at most 300 MB.

Prints the table (metric, Squall, reference, target, pass/fail) with the
load average and a calibration loop before and after; ``--json`` keeps every
figure, each run's transaction breakdown included.

Usage:  python bench/workflows.py [--quick] [--tasks 1000] [--items 10000]
            [--concurrency 100] [--repeat 1] [--ref-full] [--ref-python PY]
            [--skip-e2e] [--skip-squall] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import calibrate, free_port

HERE = Path(__file__).resolve().parent
REF_PYTHON = HERE / ".venv-orquesta" / "bin" / "python"
KEY = "bench-key-0123456789"
PACK = "benchwf"
FINAL = {"succeeded", "failed", "timeout", "canceled", "abandoned"}
ENGINE_TARGET_MS = 2.0
RSS_TARGET_MB = 300.0


# -- the workflows --------------------------------------------------------------------


def seq_workflow(tasks: int) -> str:
    lines = ["version: 1.0", "tasks:"]
    for i in range(1, tasks + 1):
        lines += [f"  t{i}:", "    action: core.noop"]
        if i < tasks:
            lines += ["    next:", "      - when: <% succeeded() %>", f"        do: t{i + 1}"]
    return "\n".join(lines) + "\n"


def items_workflow(concurrency: int) -> str:
    return f"""\
version: 1.0
input:
  - xs
tasks:
  run:
    with:
      items: i in <% ctx().xs %>
      concurrency: {concurrency}
    action: core.noop
"""


def make_pack(root: Path, tasks: int, concurrency: int) -> Path:
    """The pack ``benchwf`` with the actions ``seq`` and ``items``."""
    pack = root / PACK
    (pack / "actions" / "workflows").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        f"name: {PACK}\nversion: 0.1.0\ndescription: workflow benchmark\nauthor: bench\n"
    )
    (pack / "actions" / "seq.yaml").write_text(
        "name: seq\nrunner_type: orquesta\nentry_point: workflows/seq.yaml\n"
    )
    (pack / "actions" / "items.yaml").write_text(
        "name: items\nrunner_type: orquesta\nentry_point: workflows/items.yaml\n"
        "parameters:\n  xs:\n    type: array\n    required: true\n"
    )
    (pack / "actions" / "workflows" / "seq.yaml").write_text(seq_workflow(tasks))
    (pack / "actions" / "workflows" / "items.yaml").write_text(items_workflow(concurrency))
    return root


def proc_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """VmRSS of a process every 50 ms, in a thread, to catch the peak's shape."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak_kb = max(self.peak_kb, proc_kb(self.pid, "VmRSS"))
            except OSError:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- 1. end to end through a real server ----------------------------------------------


class Server:
    """``squall up`` in a subprocess on a free loopback port (as tests do it)."""

    def __init__(self, data: Path, packs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data, self.packs = data, packs
        self.log = data / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "SQUALL_DATA_DIR": str(self.data),
            "SQUALL_ADMIN_API_KEY": KEY,
            "SQUALL_ADMIN_PASSWORD": "bench-password",
        }
        args = [sys.executable, "-m", "squall.cli.main", "up", "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*args, "--packs-dir", str(self.packs)], env=env, stdout=log, stderr=log
            )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"squall up exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("squall did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def children_by_status(client: httpx.Client, parent: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in ("succeeded", "failed", "running", "scheduled", "requested", "abandoned"):
        r = client.get(
            "/api/v1/executions", params={"parent": parent, "status": status, "limit": 1}
        )
        n = int(r.headers.get("X-Total-Count", 0))
        if n:
            counts[status] = n
    return counts


def run_e2e(
    packs: Path, action: str, params: dict[str, Any], units: int, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="squall-bench-wf-") as tmp:
        srv = Server(Path(tmp), packs)
        srv.start()
        assert srv.proc is not None
        pid = srv.proc.pid
        idle_kb = proc_kb(pid, "VmRSS")
        out: dict[str, Any] = {"units": units, "idle_rss_mb": round(idle_kb / 1024, 1)}
        try:
            with (
                httpx.Client(base_url=srv.url, headers={"St2-Api-Key": KEY}, timeout=60) as c,
                RssSampler(pid) as rss,
            ):
                t0 = time.perf_counter()
                r = c.post("/api/v1/executions", json={"action": action, "parameters": params})
                r.raise_for_status()
                eid = r.json()["id"]
                body: dict[str, Any] = {}
                deadline = t0 + timeout
                while time.perf_counter() < deadline:
                    body = c.get(f"/api/v1/executions/{eid}").json()
                    if body["status"] in FINAL:
                        break
                    time.sleep(0.02)
                wall = time.perf_counter() - t0
                out["status"] = body.get("status")
                out["children"] = children_by_status(c, eid)
            out["wall_s"] = round(wall, 3)
            out["wall_per_unit_ms"] = round(wall * 1000 / units, 3)
            out["peak_rss_mb"] = round(proc_kb(pid, "VmHWM") / 1024, 1)
            out["sampled_peak_rss_mb"] = round(rss.peak_kb / 1024, 1)
            if out["status"] != "succeeded":
                out["error"] = str(body.get("result"))[:2000]
                out["server_log"] = srv.log_tail()
        finally:
            srv.stop()
    return out


# -- 2. the engine's share, services in this process ----------------------------------


def _label(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """Whose transaction a job is, by the module that defined its function."""
    module = getattr(fn, "__module__", "") or ""
    name = getattr(fn, "__qualname__", "") or ""
    if module == "squall.services.workflows" or module == "squall.store.workflows":
        return "engine"
    if module == "squall.services.worker":
        return "worker"
    if module == "squall.store.queue" and name == "next_due" and args and args[0] == "run":
        return "worker"  # when the worker's next delayed run is due
    if module == __name__:
        return "bench"
    return f"{module.rsplit('.', 1)[-1]}.{name}"


class TxClock:
    """Times every transaction the database runs, by who ran it.

    Wraps ``Database._commit_group`` (the SQLite writer: each job's function,
    then the commit of the group) and ``Database._read_sync``. Wall time of
    each function, and the CPU time of its thread (which leaves out waiting
    for the GIL while the event loop runs)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget start-up (pack registration...): count from the submission on."""
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.writer_wall = 0.0
        self.writer_jobs = 0

    def timed(self, kind: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[..., Any]:
        label = f"{kind} {_label(fn, args)}"

        def run(*args: Any) -> Any:
            w, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*args)
            finally:
                self.wall[label] += time.perf_counter() - w
                self.cpu[label] += time.thread_time() - c
                self.calls[label] += 1

        return run

    def install(self) -> Callable[[], None]:
        from squall.store.db import Database

        commit_group, read_sync = Database._commit_group, Database._read_sync
        clock = self

        def timed_group(db: Any, conn: Any, batch: list[Any]) -> list[Any]:
            jobs = [(clock.timed("write", fn, a), a, loop, fut) for fn, a, loop, fut in batch]
            start = time.perf_counter()
            try:
                return commit_group(db, conn, jobs)
            finally:
                clock.writer_wall += time.perf_counter() - start
                clock.writer_jobs += len(batch)

        def timed_read(db: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
            return read_sync(db, clock.timed("read", fn, args), args)

        Database._commit_group = timed_group  # type: ignore[method-assign,assignment]
        Database._read_sync = timed_read  # type: ignore[method-assign,assignment]

        def uninstall() -> None:
            Database._commit_group = commit_group  # type: ignore[method-assign]
            Database._read_sync = read_sync  # type: ignore[method-assign]

        return uninstall


async def _inprocess(
    packs: Path,
    data: Path,
    action: str,
    params: dict[str, Any],
    timeout: float,
    clock: TxClock,
) -> tuple[str, float, float, Any]:
    from squall.config import Settings
    from squall.server import start_system, stop_system
    from squall.services import executions as exe_service
    from squall.store import executions as exe_store

    settings = Settings.from_env({}, data_dir=data, packs_dirs=[packs])
    system = await start_system(settings)
    try:

        def submit(conn: Any) -> dict[str, Any]:
            return exe_service.request(
                conn, action_ref=action, parameters=params, user="bench", keyring=system.keyring
            )

        def status(conn: Any, eid: str) -> dict[str, Any]:
            return exe_store.get(conn, eid)

        clock.reset()
        cpu0, t0 = time.process_time(), time.perf_counter()
        row = await system.db.write(submit)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            row = await system.db.read(status, row["id"])
            if row["status"] in FINAL:
                break
            await asyncio.sleep(0.02)
        return (
            row["status"],
            time.perf_counter() - t0,
            time.process_time() - cpu0,
            row.get("result"),
        )
    finally:
        await stop_system(system)


def run_inprocess(
    packs: Path, action: str, params: dict[str, Any], units: int, timeout: float
) -> dict[str, Any]:
    clock = TxClock()
    uninstall = clock.install()
    try:
        with tempfile.TemporaryDirectory(prefix="squall-bench-wf-inproc-") as tmp:
            status, wall, cpu, result = asyncio.run(
                _inprocess(packs, Path(tmp), action, params, timeout, clock)
            )
    finally:
        uninstall()
    engine_wall = clock.wall["write engine"] + clock.wall["read engine"]
    engine_cpu = clock.cpu["write engine"] + clock.cpu["read engine"]
    worker_wall = clock.wall["write worker"] + clock.wall["read worker"]
    jobs_wall = sum(v for k, v in clock.wall.items() if k.startswith("write "))
    out: dict[str, Any] = {
        "units": units,
        "status": status,
        "wall_s": round(wall, 3),
        "process_cpu_s": round(cpu, 3),
        "wall_per_unit_ms": round(wall * 1000 / units, 3),
        "engine_per_unit_ms": round(engine_wall * 1000 / units, 3),
        "engine_cpu_per_unit_ms": round(engine_cpu * 1000 / units, 3),
        "engine_steps": clock.calls["write engine"],
        "worker_tx_per_unit_ms": round(worker_wall * 1000 / units, 3),
        # The writer's time outside the jobs' functions: BEGIN, COMMIT and the
        # effects handed to the loop, shared by every job in a group.
        "commit_per_unit_ms": round((clock.writer_wall - jobs_wall) * 1000 / units, 3),
        "writer_busy_per_unit_ms": round(clock.writer_wall * 1000 / units, 3),
        "transactions_s": {k: round(v, 3) for k, v in sorted(clock.wall.items())},
        "transactions_calls": dict(sorted(clock.calls.items())),
    }
    if status != "succeeded":
        out["error"] = str(result)[:2000]
    return out


# -- 3. Squall's conductor alone ------------------------------------------------------


def conductor_only(definition: Path, inputs: dict[str, Any], mode: str) -> dict[str, Any]:
    """Drive ``OrquestaConductor`` with instant ``succeeded`` results, one
    action at a time, oldest first (the counterpart of bench/orquesta_ref.py)."""
    from squall.core.orquesta import spec as orquesta_spec
    from squall.core.orquesta.conductor import OrquestaConductor
    from squall.core.workflow import ActionRequest, Environment

    rss_start = proc_kb("self", "VmRSS")
    t0 = time.perf_counter()
    spec = orquesta_spec.load(definition.read_text(), source=definition.name)
    problems = orquesta_spec.inspect(spec)
    t1 = time.perf_counter()
    if problems:
        return {"error": "inspect", "problems": [str(p) for p in problems]}
    # Item results live outside the conductor, as the engine keeps them in
    # their own rows and hands them over only when the task completes.
    results: dict[int, dict[int, Any]] = defaultdict(dict)

    def item_results(seq: int) -> list[Any]:
        found = results.get(seq, {})
        return [found[i] for i in sorted(found)]

    conductor = OrquestaConductor.new(spec, Environment(item_results=item_results))
    records = 0
    cpu0, t2 = time.process_time(), time.perf_counter()
    pending: deque[ActionRequest] = deque(conductor.start(inputs))
    actions = len(pending)
    if mode == "records":
        records += sum(len(v) for v in conductor.take_changes().records.values())
    while pending:
        req = pending.popleft()
        if req.item is not None:
            results[req.seq][req.item] = None
        new = conductor.action_status(req.seq, req.item, "succeeded", None)
        actions += len(new)
        pending.extend(new)
        if mode == "records":
            records += sum(len(v) for v in conductor.take_changes().records.values())
    t3, cpu1 = time.perf_counter(), time.process_time()
    return {
        "mode": mode,
        "status": conductor.status,
        "actions": actions,
        "records_taken": records,
        "parse_inspect_s": round(t1 - t0, 4),
        "run_s": round(t3 - t2, 4),
        "run_cpu_s": round(cpu1 - cpu0, 4),
        "per_action_ms": round((t3 - t2) * 1000 / max(actions, 1), 4),
        "cpu_per_action_ms": round((cpu1 - cpu0) * 1000 / max(actions, 1), 4),
        "rss_start_mb": round(rss_start / 1024, 1),
        "peak_rss_mb": round(proc_kb("self", "VmHWM") / 1024, 1),
    }


def run_driver(argv: list[str], timeout: float) -> dict[str, Any]:
    """One conductor run in a process of its own; its JSON answer."""
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}"}
    return dict(json.loads(lines[-1]))


def squall_conductor(
    definition: Path, inputs_file: Path, mode: str, timeout: float
) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--conductor", str(definition), "--inputs", str(inputs_file)]
    return run_driver([*argv, "--mode", mode], timeout)


def ref_conductor(
    python: Path, definition: Path, inputs: Path, mode: str, timeout: float
) -> dict[str, Any]:
    argv = [str(python), str(HERE / "orquesta_ref.py"), str(definition)]
    return run_driver([*argv, "--inputs", str(inputs), "--mode", mode], timeout)


# -- 4. the reference at smaller sizes, extrapolated -------------------------------------


def power_fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """``y = a * n**k`` by least squares on logarithms: ``(a, k)``."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(max(y, 1e-9)) for _, y in points]
    if len(points) == 1:
        return points[0][1] / points[0][0], 1.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return math.exp(my - k * mx), k


def linear_fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """``y = a + b * n`` by least squares: ``(a, b)``."""
    if len(points) == 1:
        return points[0][1], 0.0
    xs, ys = [float(n) for n, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def ref_series(
    python: Path,
    make: Callable[[int], tuple[Path, Path]],
    sizes: list[int],
    target: int,
    mode: str,
    timeout: float,
) -> dict[str, Any]:
    """Run the reference at ``sizes``; at ``target`` measured or extrapolated."""
    runs = []
    definitions = set()
    for n in sizes:
        definition, inputs = make(n)
        definitions.add(definition)
        res = ref_conductor(python, definition, inputs, mode, timeout)
        res["n"] = n
        runs.append(res)
        if "error" in res:
            return {"runs": runs, "error": res["error"]}
    last = runs[-1]
    if sizes[-1] == target:
        return {
            "runs": runs,
            "extrapolated": False,
            "run_cpu_s": last["run_cpu_s"],
            "cpu_per_action_ms": round(last["run_cpu_s"] * 1000 / target, 3),
            "parse_inspect_s": last["parse_inspect_s"],
            "peak_rss_mb": last["peak_rss_mb"],
            "status": last["status"],
        }
    # CPU time rather than wall time: the machine is shared, and the
    # conductor runs on one thread, so CPU time is its work without the
    # neighbours' noise.
    a, k = power_fit([(r["n"], r["run_cpu_s"]) for r in runs])
    ra, rb = linear_fit([(r["n"], r["peak_rss_mb"]) for r in runs])
    cpu_s = a * target**k
    if len(definitions) == 1:
        # One definition for every size (the items come as input): parsing
        # does not grow with the size, so the measured time stands.
        parse_s, parse_k = statistics.median(r["parse_inspect_s"] for r in runs), None
    else:
        pa, pk = power_fit([(r["n"], r["parse_inspect_s"]) for r in runs])
        parse_s, parse_k = pa * target**pk, round(pk, 2)
    return {
        "runs": runs,
        "extrapolated": True,
        "exponent": round(k, 2),
        "run_cpu_s": round(cpu_s, 1),
        "cpu_per_action_ms": round(cpu_s * 1000 / target, 2),
        "parse_inspect_s": round(parse_s, 3),
        "parse_inspect_exponent": parse_k,
        "peak_rss_mb": round(ra + rb * target, 1),
        "status": last["status"],
    }


# -- the table --------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "-"
    return "pass" if value <= limit else "FAIL"


def table(rows: list[tuple[str, str, str, str, str]]) -> str:
    head = ("metric", "Squall", "reference", "target", "pass/fail")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


# -- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--tasks", type=int, help="tasks of the sequential workflow (1000)")
    parser.add_argument("--items", type=int, help="items of the with-items workflow (10000)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="Squall runs of each kind")
    parser.add_argument(
        "--ref-tasks",
        help="sizes of the reference's sequential runs, comma-separated (100,200,300; "
        "quick: 10,20); the full size is extrapolated from them",
    )
    parser.add_argument(
        "--ref-st2-tasks",
        help="the same for the st2 mode, which is much slower on long workflows (25,50,100)",
    )
    parser.add_argument(
        "--ref-items",
        help="sizes of the reference's with-items runs (200,300,400: above the concurrency, "
        "so every size refills freed slots as the full size does; quick: 20,40)",
    )
    parser.add_argument(
        "--ref-full", action="store_true", help="run the reference at the full sizes (very slow)"
    )
    parser.add_argument(
        "--ref-modes", default="bare,serialize,st2", help="modes of bench/orquesta_ref.py"
    )
    parser.add_argument(
        "--ref-python",
        type=Path,
        default=REF_PYTHON,
        help="the python that has orquesta (default: bench/.venv-orquesta's)",
    )
    parser.add_argument("--skip-e2e", action="store_true", help="no squall up runs")
    parser.add_argument("--skip-squall", action="store_true", help="the reference only")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    # Internal: one run of Squall's conductor alone, in its own process.
    parser.add_argument("--conductor", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="bare", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.conductor:
        inputs = json.loads(args.inputs.read_text()) if args.inputs else {}
        print(json.dumps(conductor_only(args.conductor, inputs, args.mode)))
        return

    tasks = args.tasks or (50 if args.quick else 1000)
    items = args.items or (500 if args.quick else 10_000)
    conc = args.concurrency

    def sizes(given: str | None, default: str, quick: str, full: int) -> list[int]:
        if given:
            return [int(x) for x in given.split(",")]
        if args.ref_full:
            return [full]
        return [int(x) for x in (quick if args.quick else default).split(",")]

    ref_sizes = {
        ("seq", "bare"): sizes(args.ref_tasks, "100,200,300", "10,20", tasks),
        ("seq", "serialize"): sizes(args.ref_tasks, "100,200,300", "10,20", tasks),
        ("seq", "st2"): sizes(args.ref_st2_tasks, "25,50,100", "10,20", tasks),
        ("items", "bare"): sizes(args.ref_items, "200,300,400", "20,40", items),
        ("items", "serialize"): sizes(args.ref_items, "200,300,400", "20,40", items),
        ("items", "st2"): sizes(args.ref_items, "200,300,400", "20,40", items),
    }
    ref_modes = [m for m in args.ref_modes.split(",") if m]

    out: dict[str, Any] = {
        "sizes": {"tasks": tasks, "items": items, "concurrency": conc},
        "load_before": os.getloadavg(),
        "calibration_loop_s": calibrate(),
    }
    with tempfile.TemporaryDirectory(prefix="squall-bench-wf-pack-") as tmp:
        root = Path(tmp)
        packs = make_pack(root / "packs", tasks, conc)
        flows = packs / PACK / "actions" / "workflows"
        xs = list(range(items))
        items_inputs = root / "items-inputs.json"
        items_inputs.write_text(json.dumps({"xs": xs}))
        empty_inputs = root / "no-inputs.json"
        empty_inputs.write_text("{}")

        def log(msg: str) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

        squall: dict[str, Any] = {}
        for name, action, params, units, definition, inputs_file in (
            ("seq", f"{PACK}.seq", {}, tasks, flows / "seq.yaml", empty_inputs),
            ("items", f"{PACK}.items", {"xs": xs}, items, flows / "items.yaml", items_inputs),
        ):
            res: dict[str, Any] = {"e2e": [], "inprocess": [], "conductor": {}}
            squall[name] = res
            if args.skip_squall:
                res["conductor"] = {"bare": [], "records": []}
                continue
            for _ in range(args.repeat):
                if not args.skip_e2e:
                    log(f"squall up: {name}")
                    res["e2e"].append(run_e2e(packs, action, params, units, args.timeout))
                log(f"engine in process: {name}")
                res["inprocess"].append(run_inprocess(packs, action, params, units, args.timeout))
            for mode in ("bare", "records"):
                log(f"squall conductor: {name} {mode}")
                res["conductor"][mode] = [
                    squall_conductor(definition, inputs_file, mode, args.timeout)
                    for _ in range(args.repeat)
                ]
        out["squall"] = squall

        reference: dict[str, Any] = {}
        if not args.ref_python.exists():
            reference["error"] = f"{args.ref_python} is missing: run bench/setup-orquesta"
        else:
            ref_dir = root / "ref"
            ref_dir.mkdir()

            def make_seq(n: int) -> tuple[Path, Path]:
                path = ref_dir / f"seq{n}.yaml"
                path.write_text(seq_workflow(n))
                return path, empty_inputs

            def make_items(n: int) -> tuple[Path, Path]:
                path = ref_dir / f"items{n}.json"
                path.write_text(json.dumps({"xs": list(range(n))}))
                return flows / "items.yaml", path

            for name, make, target in (
                ("seq", make_seq, tasks),
                ("items", make_items, items),
            ):
                reference[name] = {}
                for mode in ref_modes:
                    at = ref_sizes[(name, mode)]
                    log(f"reference conductor: {name} {mode} at {at}")
                    reference[name][mode] = ref_series(
                        args.ref_python, make, at, target, mode, args.timeout
                    )
        out["reference"] = reference
    out["calibration_loop_s_after"] = calibrate()
    out["load_after"] = os.getloadavg()

    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def report(out: dict[str, Any]) -> str:
    sizes = out["sizes"]
    sq, ref = out["squall"], out["reference"]
    rows: list[tuple[str, str, str, str, str]] = []

    def ref_value(name: str, mode: str, key: str, unit: str) -> str:
        r = ref.get(name, {}).get(mode)
        if not r:
            return "-"
        if "error" in r:
            return "error"
        text = fmt(r.get(key), unit)
        if r.get("extrapolated"):
            sizes_run = "/".join(str(x["n"]) for x in r["runs"])
            if key == "parse_inspect_s" and r.get("parse_inspect_exponent") is None:
                return text + " (same definition at every size)"
            how = {
                "peak_rss_mb": "linear",
                "parse_inspect_s": f"~n^{r.get('parse_inspect_exponent')}",
            }.get(key, f"~n^{r['exponent']}")
            text += f" (extrap. from n={sizes_run}, {how})"
        return text

    for name, label in (
        ("seq", f"seq {sizes['tasks']} tasks"),
        ("items", f"items {sizes['items']} x{sizes['concurrency']}"),
    ):
        s = sq[name]
        e2e, inproc = s["e2e"], s["inprocess"]
        statuses = {r.get("status") for r in e2e + inproc}
        rows.append((f"{label}: status", "/".join(sorted(map(str, statuses))), "", "", ""))
        if e2e:
            rows.append(
                (
                    f"{label}: squall up wall",
                    fmt(median_of(e2e, "wall_s"), "s"),
                    "",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    f"{label}: wall per task",
                    fmt(median_of(e2e, "wall_per_unit_ms"), "ms"),
                    "",
                    "",
                    "",
                )
            )
            peak = median_of(e2e, "peak_rss_mb")
            rows.append(
                (
                    f"{label}: server peak RSS",
                    fmt(peak, "MB"),
                    "",
                    f"<= {RSS_TARGET_MB:.0f} MB" if name == "items" else "",
                    verdict(peak, RSS_TARGET_MB) if name == "items" else "",
                )
            )
        rows.append(
            (
                f"{label}: in-process wall per task",
                fmt(median_of(inproc, "wall_per_unit_ms"), "ms"),
                "",
                "",
                "",
            )
        )
        engine = median_of(inproc, "engine_per_unit_ms")
        rows.append(
            (
                f"{label}: engine per task (steps+reads, wall)",
                fmt(engine, "ms"),
                "",
                f"<= {ENGINE_TARGET_MS} ms" if name == "seq" else "",
                verdict(engine, ENGINE_TARGET_MS) if name == "seq" else "",
            )
        )
        rows.append(
            (
                f"{label}: engine per task (CPU)",
                fmt(median_of(inproc, "engine_cpu_per_unit_ms"), "ms"),
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                f"{label}: worker tx / commits per task",
                f"{fmt(median_of(inproc, 'worker_tx_per_unit_ms'))} / "
                f"{fmt(median_of(inproc, 'commit_per_unit_ms'))} ms",
                "",
                "",
                "",
            )
        )
        for mode, ref_mode in (("bare", "bare"), ("records", "serialize")):
            runs = s["conductor"][mode]
            rows.append(
                (
                    f"{label}: conductor CPU per task ({mode} / ref {ref_mode})",
                    fmt(median_of(runs, "cpu_per_action_ms"), "ms"),
                    ref_value(name, ref_mode, "cpu_per_action_ms", "ms"),
                    "",
                    "",
                )
            )
        rows.append(
            (
                f"{label}: conductor CPU per task (ref st2 round trip)",
                "",
                ref_value(name, "st2", "cpu_per_action_ms", "ms"),
                "",
                "",
            )
        )
        rows.append(
            (
                f"{label}: conductor CPU total (bare)",
                fmt(median_of(s["conductor"]["bare"], "run_cpu_s"), "s"),
                ref_value(name, "bare", "run_cpu_s", "s"),
                "",
                "",
            )
        )
        rows.append(
            (
                f"{label}: parse + inspect the definition",
                fmt(median_of(s["conductor"]["bare"], "parse_inspect_s"), "s"),
                ref_value(name, "bare", "parse_inspect_s", "s"),
                "",
                "",
            )
        )
        rows.append(
            (
                f"{label}: conductor peak RSS (bare)",
                fmt(median_of(s["conductor"]["bare"], "peak_rss_mb"), "MB"),
                ref_value(name, "bare", "peak_rss_mb", "MB"),
                "",
                "",
            )
        )
    head = (
        f"load average before {tuple(round(x, 2) for x in out['load_before'])}, "
        f"after {tuple(round(x, 2) for x in out['load_after'])}; calibration loop "
        f"{out['calibration_loop_s']} s before, {out['calibration_loop_s_after']} s after"
    )
    if "error" in ref:
        head += f"\nreference: {ref['error']}"
    versions = {
        (run.get("orquesta"), run.get("python"))
        for flow in ("seq", "items")
        for series in ref.get(flow, {}).values()
        for run in series.get("runs", [])
        if run.get("orquesta")
    }
    for version, python in sorted(versions):
        head += f"\nreference: orquesta {version} on Python {python}"
    problems = []
    for name in ("seq", "items"):
        for kind in ("e2e", "inprocess"):
            for r in sq[name][kind]:
                if r.get("status") != "succeeded":
                    problems.append(f"{name} {kind}: {r.get('status')}: {r.get('error', '')}")
                    if r.get("server_log"):
                        problems.append(r["server_log"])
    text = head + "\n\n" + table(rows)
    if problems:
        text += "\n\nproblems:\n" + "\n".join(problems)
    return text


if __name__ == "__main__":
    main()
