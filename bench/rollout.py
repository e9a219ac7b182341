"""Rollouts: what Squall's batched rollout engine costs per host, against the
same batches run with no engine at all, and against Ansible's ``serial``.

The target: "engine overhead per host (beyond the per-host action's own
time) <= 5 ms", for a rollout of 1,000 hosts of the real SSH test fleet
running ``true`` on each host in batches ``[1, "5%", "25%", "100%"]`` (1,000
hosts: batches of 1, 50, 250 and 699), measured end to end.

The fleet, the measurements (wall, client CPU, server CPU from the fleet's
cgroup, peak RSS, other CPU, steal) and the table are bench/fleet_floor.py's,
which this script imports (read its docstring). Contenders, on the first N
hosts of one fleet, in the same run:

* ``squall-rollout``: a Squall server started beforehand with the fleet as
  its inventory (a long-running service; one rollout of one host first, not
  measured, imports the SSH stack and warms the controller), then
  bench/rollout_client.py (standard library only) POSTs the rollout
  ``{target: "*", action: core.remote, host_parameter: hosts, parameters:
  {cmd: true}, batches: [1, "5%", "25%", "100%"]}`` to /api/v1/rollouts and
  polls GET /api/v1/rollouts/{id} until it is final. Every host is one
  ``core.remote`` execution, started by the controller, run by the worker,
  its end an event back to the controller; a batch starts when the previous
  one has ended. The server's CPU during the run counts as the client's.
  The server's worker runs ``--concurrency`` actions at a time (its default
  is 64), so that as many hosts are in flight as in the floor;
* ``squall-job-floor``: the engine-free reference, and the fair one:
  bench/rollout_floor.py ``--job-wrapper``, batch after batch with the
  batch sizes Squall's plan gives (``squall.core.rollouts.batch_sizes``)
  and the same concurrency, each host run exactly as Squall's remote runner
  runs it: one connection, one exec channel running the command under the
  job wrapper (squall/runners/remote_job.py: job files, exit-status
  trailer, the ``done`` line that removes them). That wrapper is the
  per-host action's own cost (on the host, in sshd's children), so
  (squall-rollout - squall-job-floor) / N is the engine's overhead per
  host: in wall time, and in client CPU (the Squall client's and server
  process's CPU less the floor's). The target is judged on it;
* ``squall-batches-floor``: the same batches with the bare command (the
  asyncssh floor of bench/fleet_asyncssh.py, once per batch): what the
  same rollout costs with no job wrapper at all, shown for comparison;
* ``ansible-serial``: ``ansible-playbook -i INV play.yml -f 50`` with
  ``hosts: all, gather_facts: false, serial: [1, "5%", "25%", "100%"]`` and
  one task ``command: true`` (bench/.venv-ansible, from bench/setup-ansible;
  the environment and the ControlPersist masters handled as fleet_floor.py's
  ``ansible``). Ansible takes about a third of a second per host here, so it
  runs only at ``--ansible-sizes``, once whatever ``--repeat`` says; the
  other two run there too, for a comparison at equal size.

With ``--repeat``, the contenders take turns (squall-rollout, the floors,
squall-rollout, ...), the table shows the median run by wall time, and the
overhead is the median of the overheads of each pair of runs.

``--baseline NAME=DIR`` adds ``squall-rollout@NAME``: the same, with the
server run from another checkout's squall/ (say a ``git worktree`` of the
commit before a change), right after squall-rollout in every turn, so that
a change is measured against its baseline under the same conditions (this
machine is shared: its load comes and goes).

``--profile DIR`` samples the Squall server with py-spy during each
squall-rollout run (collapsed stacks, ``DIR/squall-rollout-N-i.txt``): the
sampler stops the server to read its stacks, so runs with it are for the
profile, not for the table.

Client and servers share the same cores here: on a real fleet each server
has its own machine, so wall times are pessimistic by the server's share.

Usage:  python bench/rollout.py [--quick] [--sizes 1000] [--ansible-sizes 1000]
            [--contenders a,b] [--skip ansible-serial] [--concurrency 100] [--forks 50]
            [--repeat 1] [--first-address 127.0.40.1] [--baseline NAME=DIR] [--profile DIR]
            [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import fleet_floor  # noqa: E402
from fleet_floor import ANSIBLE, Job, Target, ints, log, measure, median_run  # noqa: E402
from run import calibrate  # noqa: E402

from squall.core import rollouts as core  # noqa: E402
from tests.support.fleet import Fleet, process_cpu_seconds  # noqa: E402
from tests.support.server import API_KEY, Server  # noqa: E402

BATCHES: list[int | str] = [1, "5%", "25%", "100%"]
ANSIBLE_PLAYBOOK = ANSIBLE.with_name("ansible-playbook")
OVERHEAD_TARGET_MS = 5.0
# Seconds between two polls of the rollout by the client. Each poll
# (hosts=false: counts, no per-host lists) and the whole view the client
# reads at the end cost the server CPU, which counts: measured after the run
# (POLL_SAMPLES reads of the finished rollout each) and shown.
POLL_INTERVAL = 0.25
POLL_SAMPLES = 10

Detail = dict[str, Any]


def batch_sizes(n: int) -> list[int]:
    """The batch sizes Squall's planner gives ``n`` hosts with :data:`BATCHES`."""
    spec = core.parse_spec({"name": "sizes", "target": "*", "action": "x.y", "batches": BATCHES})
    return core.batch_sizes(spec.batches, n)


def _last_json(detail: Detail) -> Callable[[int, str], int]:
    """count_ok for a contender whose last output line is JSON with ``ok``;
    keeps that line in ``detail``."""

    def count_ok(code: int, output: str) -> int:
        try:
            detail.update(json.loads(output.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            return 0
        return int(detail.get("ok", 0)) if code == 0 else 0

    return count_ok


# -- the contenders -----------------------------------------------------------------------


PROFILE: dict[str, Any] = {"dir": None, "runs": 0}  # --profile


def _profiler(pid: int, hosts: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server until stopped (SIGINT), with --profile."""
    if PROFILE["dir"] is None:
        return None
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    PROFILE["runs"] += 1
    path = Path(PROFILE["dir"]) / f"squall-rollout-{hosts}-{PROFILE['runs']}.txt"
    argv = [spy, "record", "--pid", str(pid), "--rate", "200", "--gil", "--format", "raw"]
    argv += ["-o", str(path)]
    log(f"  profiling the server into {path}")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def squall_rollout(t: Target, root: Path | None = None) -> tuple[Job, Detail]:
    """``root``: the checkout whose squall/ the server runs (--baseline)."""
    fleet = t.fleet
    server = Server(
        Path(tempfile.mkdtemp(prefix="squall-", dir=t.workdir)),
        env={
            "SQUALL_INVENTORY": str(t.inventory_yaml()),
            "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
            "SQUALL_SSH_CONCURRENCY": str(t.concurrency),
            "SQUALL_WORKER_CONCURRENCY": str(t.concurrency),
        },
        root=root,
    ).start()
    try:
        # Warm-up, not measured: the first remote run imports the SSH stack.
        warm = _client(server, "h0001", t.command, "warm-up")
        done = subprocess.run(warm, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or '"ok": 1' not in done.stdout:
            raise RuntimeError(f"the warm-up rollout failed: {done.stdout}{done.stderr}")
    except BaseException:
        server.stop()
        raise
    assert server.proc is not None
    pid = server.proc.pid
    detail: Detail = {}
    spy = _profiler(pid, t.hosts)

    def cleanup() -> None:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        # What the client's reads of the finished rollout cost the server
        # (after the run's figures are read): a poll (hosts=false) and the
        # whole view it reads at the end are part of the client's CPU.
        try:
            with server.client() as api:
                rid = api.get("/api/v1/rollouts", params={"limit": 1}).json()[0]["id"]
                for key, params in (("poll", {"hosts": "false"}), ("view", {})):
                    cpu0, t0 = process_cpu_seconds(pid), time.perf_counter()
                    for _ in range(POLL_SAMPLES):
                        api.get(f"/api/v1/rollouts/{rid}", params=params).raise_for_status()
                    wall = (time.perf_counter() - t0) * 1000 / POLL_SAMPLES
                    cpu = (process_cpu_seconds(pid) - cpu0) * 1000 / POLL_SAMPLES
                    detail[f"{key}_wall_ms"] = round(wall, 1)
                    detail[f"{key}_cpu_ms"] = round(cpu, 1)
        except (httpx.HTTPError, LookupError, ValueError) as exc:
            log(f"  could not time a poll: {exc}")
        finally:
            server.stop()

    job = Job(
        _client(server, "*", t.command, f"bench-{t.hosts}"),
        _last_json(detail),
        side_pids=[pid],
        cleanup=cleanup,
    )
    return job, detail


def _client(server: Server, target: str, command: str, name: str) -> list[str]:
    return [
        sys.executable,
        str(HERE / "rollout_client.py"),
        "--url",
        server.url,
        "--key",
        API_KEY,
        "--target",
        target,
        "--command",
        command,
        "--batches",
        json.dumps(BATCHES),
        "--name",
        name,
        "--interval",
        str(POLL_INTERVAL),
    ]


def batches_floor(t: Target, *extra: str) -> tuple[Job, Detail]:
    fleet = t.fleet
    detail: Detail = {}
    argv = [
        sys.executable,
        str(HERE / "rollout_floor.py"),
        "--hosts",
        str(t.hosts_file()),
        "--sizes",
        ",".join(str(s) for s in batch_sizes(t.hosts)),
        "--user",
        fleet.user,
        "--key",
        str(fleet.key_file),
        "--known-hosts",
        str(fleet.known_hosts),
        "--port",
        str(fleet.port),
        "--concurrency",
        str(t.concurrency),
        "--command",
        t.command,
        *extra,
    ]
    return Job(argv, _last_json(detail)), detail


def job_floor(t: Target) -> tuple[Job, Detail]:
    return batches_floor(t, "--job-wrapper")


def ansible_serial(t: Target) -> tuple[Job, Detail]:
    if not ANSIBLE_PLAYBOOK.exists():
        raise FileNotFoundError(f"{ANSIBLE_PLAYBOOK} is missing: run bench/setup-ansible")
    # fleet_floor's ad hoc Ansible job, for its run directory, environment and
    # ControlPersist masters; only the command differs.
    job = fleet_floor.ansible(t)
    assert job.cwd is not None
    play = job.cwd / "play.yml"
    play.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        f"  serial: {json.dumps(BATCHES)}\n"
        "  tasks:\n"
        f"    - command: {json.dumps(t.command)}\n"
    )
    detail: Detail = {}

    def count_ok(code: int, output: str) -> int:
        # PLAY RECAP: "h0001 : ok=1 changed=1 unreachable=0 failed=0 ..."
        recap = re.findall(
            r"^(\S+)\s+: ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)",
            output,
            re.MULTILINE,
        )
        ok = sum(
            1 for _, n, unreachable, failed in recap if int(n) and unreachable == failed == "0"
        )
        detail.update(ok=ok, plays=len(re.findall(r"^PLAY \[", output, re.MULTILINE)))
        return ok

    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(t.ansible_ini()), str(play), "-f", str(t.forks)]
    job.argv, job.count_ok = argv, count_ok
    return job, detail


CONTENDERS: dict[str, Callable[[Target], tuple[Job, Detail]]] = {
    "squall-rollout": squall_rollout,
    "squall-job-floor": job_floor,
    "squall-batches-floor": batches_floor,
    "ansible-serial": ansible_serial,
}
SLOW = {"ansible-serial"}  # only at --ansible-sizes, only once
SQUALL = "squall-rollout"
# The floors squall-rollout is measured against: the fair one (the same job
# wrapper per host) first, the target is judged on it.
FLOORS = ("squall-job-floor", "squall-batches-floor")


# -- the report ------------------------------------------------------------------------------


def _runs(out: dict[str, Any], name: str, n: int) -> list[dict[str, Any]]:
    return [
        r for r in out["runs"] if r["contender"] == name and r["hosts"] == n and "error" not in r
    ]


def _squalls(out: dict[str, Any]) -> list[str]:
    """squall-rollout, then the --baseline ones, as they ran."""
    names = dict.fromkeys(r["contender"] for r in out["runs"])
    return [n for n in names if n == SQUALL or n.startswith(SQUALL + "@")]


def overheads(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine's overhead per host at each size against each floor, from
    pairs of runs (squall-rollout, the floor) that both succeeded on every host."""
    found = []
    sizes = sorted({r["hosts"] for r in out["runs"]})
    for n, name, floor_name in [(n, s, f) for n in sizes for s in _squalls(out) for f in FLOORS]:
        squall = _runs(out, name, n)
        floor = _runs(out, floor_name, n)
        pairs = [(s, f) for s, f in zip(squall, floor, strict=False) if s["ok"] == f["ok"] == n]
        if not pairs:
            continue
        wall = [(s["wall_s"] - f["wall_s"]) * 1000 / n for s, f in pairs]
        cpu = [(s["client_cpu_s"] - f["client_cpu_s"]) * 1000 / n for s, f in pairs]
        server = [(s["server_cpu_s"] - f["server_cpu_s"]) * 1000 / n for s, f in pairs]
        polls = [
            (
                s["detail"].get("polls", 0) * s["detail"].get("poll_cpu_ms", 0)
                + s["detail"].get("view_cpu_ms", 0)
            )
            / n
            for s, _ in pairs
        ]
        found.append(
            {
                "hosts": n,
                "squall": name,
                "floor": floor_name,
                "pairs": len(pairs),
                "batches": batch_sizes(n),
                "wall_ms_per_host": round(statistics.median(wall), 2),
                "wall_ms_per_host_range": [round(min(wall), 2), round(max(wall), 2)],
                "client_cpu_ms_per_host": round(statistics.median(cpu), 2),
                "client_cpu_ms_per_host_range": [round(min(cpu), 2), round(max(cpu), 2)],
                "server_cpu_ms_per_host": round(statistics.median(server), 2),
                "poll_cpu_ms_per_host": round(statistics.median(polls), 2),
            }
        )
    return found


def report(out: dict[str, Any]) -> str:
    table = fleet_floor.report(out).splitlines()
    table[0] = (
        f"Rollouts, {out['started']}: `{out['command']}` on N hosts in batches "
        f"{json.dumps(BATCHES)}, concurrency {out['concurrency']} (Ansible forks "
        f"{out['forks']}); sshd {out['sshd']}, {out['daemons']} daemons."
    )
    lines = [*table, ""]

    def spread(o: dict[str, Any], key: str) -> str:
        low, high = o[f"{key}_range"]
        return f" (pairs: {low} to {high})" if o["pairs"] > 1 else ""

    for o in out["overheads"]:
        if o["floor"] == FLOORS[0]:
            verdict = "met" if o["wall_ms_per_host"] <= OVERHEAD_TARGET_MS else "NOT met"
            target = f" (target <= {OVERHEAD_TARGET_MS:g} ms: {verdict})"
        else:
            target = " (the floor runs the bare command, without the job wrapper)"
        lines.append(
            f"Engine overhead at {o['hosts']} hosts (batches {o['batches']}), "
            f"({o['squall']} - {o['floor']}) / N, median of {o['pairs']}: "
            f"wall {o['wall_ms_per_host']} ms per host{spread(o, 'wall_ms_per_host')}"
            f"{target}; client CPU "
            f"{o['client_cpu_ms_per_host']} ms per host{spread(o, 'client_cpu_ms_per_host')} "
            f"(of which the client's reads, estimated: {o['poll_cpu_ms_per_host']} ms); "
            f"server (sshd) CPU {o['server_cpu_ms_per_host']} ms per host."
        )
    for n in sorted({r["hosts"] for r in out["runs"]}):
        ansible = _runs(out, "ansible-serial", n)
        squall = _runs(out, "squall-rollout", n)
        if ansible and squall:
            a, s = ansible[0], median_run(squall)
            lines.append(
                f"Ansible serial at {n} hosts: wall {a['wall_s']:.1f} s, "
                f"{a['wall_s'] / s['wall_s']:.1f}x squall-rollout's {s['wall_s']:.1f} s; "
                f"client CPU {a['client_cpu_s']:.1f} s, "
                f"{a['client_cpu_s'] / max(s['client_cpu_s'], 0.001):.1f}x Squall's "
                f"{s['client_cpu_s']:.1f} s."
            )
    for r in out["runs"]:
        detail = r.get("detail") or {}
        if r["contender"] in _squalls(out) and "batch_span_s" in detail:
            lines.append(
                f"{r['contender']} at {r['hosts']}: batches {detail['batches']}, spans "
                f"{detail['batch_span_s']} s, gaps {detail['batch_gap_s']} s (server's host "
                f"timestamps), {detail['polls']} polls of "
                f"{detail.get('poll_cpu_ms', '?')} ms of server CPU each, and the whole view "
                f"at the end, {detail.get('view_cpu_ms', '?')} ms."
            )
        elif r["contender"] in FLOORS and "batch_wall_s" in detail:
            lines.append(
                f"{r['contender']} at {r['hosts']}: batches {detail['batches']}, "
                f"walls {detail['batch_wall_s']} s."
            )
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------


def source() -> dict[str, Any]:
    """The commit measured, and the files of squall/ changed from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=HERE.parent, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "squall")
    return {"commit": git("rev-parse", "HEAD"), "squall_changed": changed.splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--sizes", help="hosts per run, comma-separated (1000; quick: 50)")
    parser.add_argument("--ansible-sizes", help="sizes Ansible runs at (1000; quick: 50)")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help="comma-separated, of: %(default)s"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated contenders to leave out, e.g. ansible-serial"
    )
    parser.add_argument("--command", default="true")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--forks", type=int, default=50, help="Ansible's -f")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the fast contenders")
    parser.add_argument(
        "--first-address",
        default="127.0.40.1",
        help="the fleet's first loopback address (apart from the tests' 127.0.1.x)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--profile", type=Path, help="sample the Squall server with py-spy into this directory"
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run squall-rollout@NAME: the server from another checkout's squall/ "
        "(e.g. a git worktree of an earlier commit), right after squall-rollout each time",
    )
    args = parser.parse_args()
    for spec in args.baseline:
        label, _, root = spec.partition("=")
        if not label or not (Path(root) / "squall").is_dir():
            parser.error(f"--baseline {spec}: expected NAME=DIR, DIR a checkout with squall/")
        CONTENDERS[f"{SQUALL}@{label}"] = functools.partial(squall_rollout, root=Path(root))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE["dir"] = args.profile.resolve()

    sizes = ints(args.sizes or ("50" if args.quick else "1000"))
    ansible_sizes = ints(args.ansible_sizes or ("50" if args.quick else "1000"))
    skip = [c for c in args.skip.split(",") if c]
    names = [c for c in args.contenders.split(",") if c and c not in skip]
    if SQUALL in names:
        at = names.index(SQUALL) + 1
        names[at:at] = [c for c in CONTENDERS if c.startswith(SQUALL + "@")]
    unknown = (set(names) | set(skip)) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {sorted(unknown)}")
    if not SLOW & set(names):
        ansible_sizes = []
    all_sizes = sorted(set(sizes) | set(ansible_sizes))

    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True).stderr
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": args.command,
        "batches": BATCHES,
        "concurrency": args.concurrency,
        "forks": args.forks,
        "sshd": sshd.split(",")[0].strip(),
        "argv": sys.argv[1:],
        "source": source(),
        "load_before": os.getloadavg(),
        "calibration_loop_s": calibrate(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="squall-bench-rollout-") as tmp:
        workdir = Path(tmp)
        log(f"starting a fleet of {max(all_sizes)} hosts from {args.first_address}")
        t0 = time.perf_counter()
        with Fleet(max(all_sizes), first_address=args.first_address, log_level="VERBOSE") as fleet:
            out["fleet_start_s"] = round(time.perf_counter() - t0, 2)
            out["daemons"] = len(fleet.daemon_pids())

            def target(n: int) -> Target:
                return Target(fleet, n, workdir, args.command, args.concurrency, args.forks)

            # Warm-up, not recorded: page cache, first connections of each daemon.
            warm = target(min(20, len(fleet.addresses)))
            measure("asyncssh-floor", warm, fleet_floor.asyncssh_floor(warm), 300)
            for n in all_sizes:
                for i in range(args.repeat):
                    for name in names:
                        if name in SLOW and (i > 0 or n not in ansible_sizes):
                            continue
                        if name not in SLOW and n not in sizes and n not in ansible_sizes:
                            continue
                        log(f"{name} on {n} hosts ({i + 1}/{args.repeat})")
                        try:
                            job, detail = CONTENDERS[name](target(n))
                        except (OSError, RuntimeError) as exc:
                            out["runs"].append({"contender": name, "hosts": n, "error": str(exc)})
                            log(f"  {exc}")
                            continue
                        result = measure(name, target(n), job, args.timeout)
                        result["detail"] = detail
                        log(
                            f"  {result['ok']}/{n} ok, {result['wall_s']} s, client "
                            f"{result['client_cpu_s']} s, server {result['server_cpu_s']} s"
                        )
                        out["runs"].append(result)
    out["calibration_loop_s_after"] = calibrate()
    out["load_after"] = os.getloadavg()
    out["overheads"] = overheads(out)
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
