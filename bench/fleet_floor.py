"""Fleet floors: what running one command on N hosts over SSH costs without Squall.

A fleet of real OpenSSH servers on loopback addresses (tests/support/fleet.py:
one ``sshd`` per 16 addresses, a user whose shell reads no rc file, host keys
checked) is started once, and every contender runs the same command
(``true``) on the first N of its hosts, one after the other, in the same run:

* ``asyncssh-floor``: bench/fleet_asyncssh.py, the least a Python program
  does with asyncssh: one connection per host under a semaphore of 100, the
  command, known hosts checked;
* ``openssh-xargs``: ``xargs -P 100`` of ``ssh -o BatchMode=yes ... true``,
  one OpenSSH client process per host, with its defaults (OpenSSH 9.2 then
  negotiates the post-quantum ``sntrup761x25519-sha512`` key exchange, whose
  key generation dominates the client's CPU);
* ``openssh-xargs-c25519``: the same with ``KexAlgorithms=curve25519-sha256``,
  the key exchange asyncssh ends up with against this server;
* ``ansible``: ``ansible all -i INV -m command -a true -f 50`` (PyPI
  ansible-core in bench/.venv-ansible, made by bench/setup-ansible). Ansible
  takes seconds per host of CPU, so by default it runs only at the sizes of
  ``--ansible-sizes`` (100); the floors run there too, for a comparison at
  equal size.

Measured for each run:

* **wall** time from starting the contender's process to its exit;
* **client CPU**: user + system time of the contender's process and every
  process it waited for (``wait4``'s resource usage), plus, for Ansible, the
  OpenSSH ControlPersist masters it leaves behind (counted from /proc, then
  ended: they would hold sessions open on the fleet);
* **server CPU**: the CPU time of the sshd daemons and of every process
  they started, from the fleet's cgroup (``Fleet.server_cpu_seconds``: it
  counts the post-authentication children that OpenSSH 9.2 orphans to init,
  which a daemon's own cutime never sees), read once every session of the
  run has ended;
* **peak RSS**: the largest peak RSS (VmHWM) of any process of the
  contender's tree, and the peak of the summed PSS (shared pages shared out)
  of the whole tree, both sampled every 0.5 s;
* **other CPU**: the machine's busy time during the run (/proc/stat) less the
  client's, the server's and this script's own (its samplers); this machine
  is shared, and this shows how much of it something else took (``steal``:
  what the hypervisor gave others).

Client and servers share the same 2 cores here: on a real fleet each server
has its own machine, so wall times are pessimistic by the server's share.

Adding a contender (Squall's, later) is one function ``Target -> Job`` (the
process to run, how to count the hosts that succeeded) and one line in
``CONTENDERS``.

Usage:  python bench/fleet_floor.py [--quick] [--sizes 200,500,1000]
            [--ansible-sizes 100] [--contenders a,b] [--concurrency 100]
            [--forks 50] [--repeat 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run import calibrate  # noqa: E402

from tests.support.fleet import Fleet, process_cpu_seconds  # noqa: E402
from tests.support.server import API_KEY, Server  # noqa: E402

ANSIBLE = HERE / ".venv-ansible" / "bin" / "ansible"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- what a contender is ----------------------------------------------------------------


@dataclass
class Target:
    """The first ``hosts`` hosts of the fleet, and files describing them."""

    fleet: Fleet
    hosts: int
    workdir: Path
    command: str
    concurrency: int
    forks: int

    @property
    def addresses(self) -> list[str]:
        return self.fleet.addresses[: self.hosts]

    def hosts_file(self) -> Path:
        path = self.workdir / f"hosts-{self.hosts}.txt"
        path.write_text("\n".join(self.addresses) + "\n")
        return path

    def inventory_yaml(self) -> Path:
        return self.fleet.inventory_yaml(
            self.workdir / f"fleet-{self.hosts}.yaml", count=self.hosts
        )

    def ansible_ini(self) -> Path:
        return self.fleet.ansible_ini(self.workdir / f"fleet-{self.hosts}.ini", count=self.hosts)


@dataclass
class Job:
    """One contender's run: a process, and how to read its result."""

    argv: list[str]
    # (exit code, output) -> how many hosts succeeded
    count_ok: Callable[[int, str], int]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    # Processes the run leaves behind (found after it exits): their CPU time is
    # the client's too, and they are ended before the servers are read.
    leftovers: Callable[[], list[int]] = list
    # Long-running processes outside the job's tree that do its work (Squall's
    # server): their CPU during the run is the client's, their peak RSS too.
    side_pids: list[int] = field(default_factory=list)
    cleanup: Callable[[], None] = lambda: None


def asyncssh_floor(t: Target) -> Job:
    fleet = t.fleet

    def count_ok(code: int, output: str) -> int:
        return int(json.loads(output.strip().splitlines()[-1])["ok"]) if code == 0 else 0

    return Job(
        [
            sys.executable,
            str(HERE / "fleet_asyncssh.py"),
            "--hosts",
            str(t.hosts_file()),
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
        ],
        count_ok,
    )


def _openssh(t: Target, *options: str) -> Job:
    fleet = t.fleet
    ssh = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={fleet.known_hosts}",
        "-o",
        "IdentitiesOnly=yes",
        *options,
        "-i",
        str(fleet.key_file),
        "-p",
        str(fleet.port),
        "-l",
        fleet.user,
    ]

    def count_ok(code: int, output: str) -> int:
        # xargs exits 0 only when every ssh did; the failures' messages are
        # in the output, which the report shows.
        return t.hosts if code == 0 else 0

    argv = ["xargs", "-a", str(t.hosts_file()), "-P", str(t.concurrency), "-I", "{}"]
    return Job([*argv, *ssh, "{}", t.command], count_ok)


def openssh_xargs(t: Target) -> Job:
    return _openssh(t)


def openssh_xargs_c25519(t: Target) -> Job:
    return _openssh(t, "-o", "KexAlgorithms=curve25519-sha256")


def ansible(t: Target) -> Job:
    if not ANSIBLE.exists():
        raise FileNotFoundError(f"{ANSIBLE} is missing: run bench/setup-ansible")
    run_dir = Path(tempfile.mkdtemp(prefix="ansible-", dir=t.workdir))
    control = run_dir / "cp"  # short: it holds the masters' Unix sockets
    env = {
        "ANSIBLE_HOME": str(run_dir / "home"),
        "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
    }

    def count_ok(code: int, output: str) -> int:
        return len(re.findall(r"^\S+ \| (?:CHANGED|SUCCESS) \|", output, re.MULTILINE))

    def masters() -> list[int]:
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                except OSError:
                    continue
                if str(control).encode() in cmdline:
                    found.append(int(entry.name))
        return found

    argv = [str(ANSIBLE), "all", "-i", str(t.ansible_ini()), "-m", "command"]
    return Job(
        [*argv, "-a", t.command, "-f", str(t.forks)], count_ok, env, run_dir, leftovers=masters
    )


def squall(t: Target) -> Job:
    """The whole of Squall: a server started beforehand (a long-running
    service), then one ``core.remote`` execution on every host of its
    inventory through the API, followed until final with per-host results
    stored. The server's CPU during the run counts as the client's."""
    fleet = t.fleet
    server = Server(
        Path(tempfile.mkdtemp(prefix="squall-", dir=t.workdir)),
        env={
            "SQUALL_INVENTORY": str(t.inventory_yaml()),
            "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
            "SQUALL_SSH_CONCURRENCY": str(t.concurrency),
        },
    ).start()
    try:
        # Warm-up, not measured: the first remote run imports the SSH stack.
        warm = _squall_client(server, "h0001", t.command)
        subprocess.run(warm, check=True, capture_output=True, timeout=120)
    except BaseException:
        server.stop()
        raise
    assert server.proc is not None

    def count_ok(code: int, output: str) -> int:
        return int(json.loads(output.strip().splitlines()[-1])["ok"]) if code == 0 else 0

    return Job(
        _squall_client(server, "*", t.command),
        count_ok,
        side_pids=[server.proc.pid],
        cleanup=server.stop,
    )


def _squall_client(server: Server, target: str, command: str) -> list[str]:
    return [
        sys.executable,
        str(HERE / "fleet_squall_client.py"),
        "--url",
        server.url,
        "--key",
        API_KEY,
        "--target",
        target,
        "--command",
        command,
    ]


CONTENDERS: dict[str, Callable[[Target], Job]] = {
    "squall": squall,
    "asyncssh-floor": asyncssh_floor,
    "openssh-xargs": openssh_xargs,
    "openssh-xargs-c25519": openssh_xargs_c25519,
    "ansible": ansible,
}
SLOW = {"ansible"}  # run only at --ansible-sizes


# -- measuring -------------------------------------------------------------------------


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, VmHWM) of a process in kB, (0, 0) if it is gone."""
    pss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
                break
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
                break
    except (OSError, ValueError):
        pass
    return pss, hwm


def tree(pid: int) -> list[int]:
    """A process and everything below it, walked through /proc/PID/task/*/children
    (cheaper than scanning all of /proc while thousands of processes run)."""
    out, i = [pid], 0
    while i < len(out):
        p, i = out[i], i + 1
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                out += [int(x) for x in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


class TreeMemory:
    """Samples a process and everything below it: the peak of their summed
    PSS, and the largest VmHWM (peak RSS) of any one of them. (``ru_maxrss``
    from ``wait4`` cannot serve: it counts the pages of the Python process that
    forked the child.)"""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every = pid, every
        self.tree_pss_kb = self.largest_hwm_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        wait = 0.1  # a first look early, for short runs
        while not self._stop.wait(wait):
            wait = self.every
            sizes = [memory_kb(p) for p in tree(self.pid)]
            self.tree_pss_kb = max(self.tree_pss_kb, sum(pss for pss, _ in sizes))
            self.largest_hwm_kb = max(self.largest_hwm_kb, *(hwm for _, hwm in sizes))

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def drain(fleet: Fleet, timeout: float = 120) -> int:
    """Waits until no session is left on the fleet; returns how many were."""
    deadline = time.monotonic() + timeout
    while (left := fleet.sessions()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def end(pids: list[int], timeout: float = 10) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)


def measure(name: str, target: Target, job: Job, timeout: float) -> dict[str, Any]:
    fleet = target.fleet
    fleet.check()
    drain(fleet)
    out_path = target.workdir / f"{name}-{target.hosts}.out"
    server0 = fleet.server_cpu_seconds()
    side0 = sum(process_cpu_seconds(p) for p in job.side_pids)
    busy0, steal0 = machine_ticks()
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            job.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **job.env},
            cwd=job.cwd,
            start_new_session=True,
        )
    killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    killer.start()
    with TreeMemory(proc.pid) as memory:
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    killer.cancel()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    client = usage.ru_utime + usage.ru_stime
    side = sum(process_cpu_seconds(p) for p in job.side_pids) - side0
    side_hwm_kb = max((memory_kb(p)[1] for p in job.side_pids), default=0)
    job.cleanup()
    client += side
    left = job.leftovers()
    left_cpu = sum(process_cpu_seconds(p) for p in left)
    end(left)
    lingering = drain(fleet)
    server = fleet.server_cpu_seconds() - server0
    busy1, steal1 = machine_ticks()
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    own = self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime
    fleet.check()
    output = out_path.read_text(errors="replace")
    ok = job.count_ok(code, output)
    n = target.hosts
    result: dict[str, Any] = {
        "contender": name,
        "hosts": n,
        "ok": ok,
        "exit": code,
        "wall_s": round(wall, 3),
        "hosts_per_s": round(n / wall, 1),
        "client_cpu_s": round(client + left_cpu, 3),
        "client_cpu_ms_per_host": round((client + left_cpu) * 1000 / n, 2),
        "leftover_processes": len(left),
        "leftover_cpu_s": round(left_cpu, 3),
        "server_cpu_s": round(server, 3),
        "server_cpu_ms_per_host": round(server * 1000 / n, 2),
        "bench_cpu_s": round(own, 2),
        "other_cpu_s": round((busy1 - busy0) / TICK - client - left_cpu - server - own, 2),
        "steal_s": round((steal1 - steal0) / TICK, 2),
        "peak_rss_mb": round(max(memory.largest_hwm_kb, side_hwm_kb) / 1024, 1),
        "tree_pss_peak_mb": round(memory.tree_pss_kb / 1024, 1),
    }
    if lingering:
        result["sessions_left"] = lingering
    if ok != n:
        result["output_tail"] = output[-1500:]
    return result


# -- the run -------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def report(out: dict[str, Any]) -> str:
    lines = [
        f"Fleet floors, {out['started']}: `{out['command']}` on N hosts, "
        f"concurrency {out['concurrency']} (Ansible forks {out['forks']}); "
        f"sshd {out['sshd']}, {out['daemons']} daemons.",
        "",
        "| contender | N | ok | wall | hosts / s | client CPU / host | server CPU / host "
        "| peak RSS (largest process) | tree PSS peak | other CPU | steal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in out["runs"]:
        if "error" not in r:
            by_key.setdefault((r["contender"], r["hosts"]), []).append(r)
    for (name, n), runs in sorted(by_key.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        r = median_run(runs)
        walls = ""
        if len(runs) > 1:
            walls = f" ({min(x['wall_s'] for x in runs)}-{max(x['wall_s'] for x in runs)})"
        lines.append(
            f"| {name} | {n} | {r['ok']} | {r['wall_s']:.2f} s{walls} | {r['hosts_per_s']} "
            f"| {r['client_cpu_ms_per_host']:.1f} ms | {r['server_cpu_ms_per_host']:.1f} ms "
            f"| {r['peak_rss_mb']} MB | {r['tree_pss_peak_mb']} MB | {r['other_cpu_s']} s "
            f"| {r['steal_s']} s |"
        )
    for r in out["runs"]:
        if "error" in r:
            lines.append(f"\n{r['contender']} at {r['hosts']}: {r['error']}")
        elif r["ok"] != r["hosts"]:
            lines.append(f"\n{r['contender']} at {r['hosts']}: {r['ok']} ok; output ends:")
            lines.append(r["output_tail"])
    lines += [
        "",
        f"Load average before {tuple(round(x, 2) for x in out['load_before'])}, after "
        f"{tuple(round(x, 2) for x in out['load_after'])}; calibration loop "
        f"{out['calibration_loop_s']} s before, {out['calibration_loop_s_after']} s after.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--sizes", help="hosts per run, comma-separated (200,500,1000)")
    parser.add_argument("--ansible-sizes", help="sizes Ansible runs at (100; quick: 10)")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help="comma-separated, of: %(default)s"
    )
    parser.add_argument("--command", default="true")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--forks", type=int, default=50, help="Ansible's -f")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--first-address",
        default="127.0.16.1",
        help="the fleet's first loopback address (apart from the tests' 127.0.1.x)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()

    sizes = ints(args.sizes or ("20,50" if args.quick else "200,500,1000"))
    ansible_sizes = ints(args.ansible_sizes or ("10" if args.quick else "100"))
    names = [c for c in args.contenders.split(",") if c]
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {sorted(unknown)}")
    if not SLOW & set(names):
        ansible_sizes = []

    def runs_at(name: str, n: int) -> bool:
        # The floors also run at Ansible's sizes, for a comparison at equal size.
        return n in ansible_sizes if name in SLOW else n in sizes or n in ansible_sizes

    all_sizes = sorted(set(sizes) | set(ansible_sizes))

    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True).stderr
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": args.command,
        "concurrency": args.concurrency,
        "forks": args.forks,
        "sshd": sshd.split(",")[0].strip(),
        "load_before": os.getloadavg(),
        "calibration_loop_s": calibrate(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="squall-bench-fleet-") as tmp:
        workdir = Path(tmp)
        log(f"starting a fleet of {max(all_sizes)} hosts")
        t0 = time.perf_counter()
        # The fleet's own directory, not under this 0700 one: its user reads it.
        with Fleet(max(all_sizes), first_address=args.first_address, log_level="VERBOSE") as fleet:
            out["fleet_start_s"] = round(time.perf_counter() - t0, 2)
            out["daemons"] = len(fleet.daemon_pids())

            def target(n: int) -> Target:
                return Target(fleet, n, workdir, args.command, args.concurrency, args.forks)

            # Warm-up, not recorded: page cache, first connections of each daemon.
            warm = target(min(20, len(fleet.addresses)))
            for name in ("asyncssh-floor", "openssh-xargs-c25519"):
                measure(name, warm, CONTENDERS[name](warm), 300)
            for n in all_sizes:
                for name in names:
                    if not runs_at(name, n):
                        continue
                    for i in range(args.repeat):
                        log(f"{name} on {n} hosts ({i + 1}/{args.repeat})")
                        try:
                            job = CONTENDERS[name](target(n))
                        except (OSError, RuntimeError) as exc:
                            out["runs"].append({"contender": name, "hosts": n, "error": str(exc)})
                            break
                        result = measure(name, target(n), job, args.timeout)
                        log(
                            f"  {result['ok']}/{n} ok, {result['wall_s']} s, client "
                            f"{result['client_cpu_s']} s, server {result['server_cpu_s']} s"
                        )
                        out["runs"].append(result)
    out["calibration_loop_s_after"] = calibrate()
    out["load_after"] = os.getloadavg()
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
