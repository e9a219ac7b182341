"""The engine-free floors of bench/rollout.py: the same SSH work as a rollout,
batch after batch in one process (so that a floor pays one interpreter
start-up and one import of asyncssh, as a long-running engine would have paid
them beforehand), with no engine. Prints one JSON line: ``ok`` (hosts that
succeeded, over every batch), ``failed``, the batch sizes, each batch's wall
time and the first few errors.

Two kinds of per-host work:

* bare (``squall-batches-floor``): the asyncssh floor of
  bench/fleet_asyncssh.py (its ``run_all``): one connection per host, the
  command (``true``) as it is, the connection closed;
* ``--job-wrapper`` (``squall-job-floor``): exactly what Squall's remote
  runner does for one host (squall/runners/remote.py, ``_run_job`` and
  ``_finish_job``): one connection per host with the runner's connection
  options, one exec channel running the command under the job wrapper
  (squall/runners/remote_job.py's ``start_script``: job files, pid, output
  files, exit-status trailer), both output streams read to their end, the
  trailer parsed, then ``done`` on the wrapper's stdin (it removes the job
  files) and the channel and the connection closed. So Squall's time beyond
  this floor is the engine's, not the per-host action's.

Usage:  python bench/rollout_floor.py --hosts FILE --sizes 1,50,250,699 --user U
            --key KEY --known-hosts FILE [--port 22] [--concurrency 100] [--command true]
            [--job-wrapper]

``--hosts`` is a file of addresses, one a line; ``--sizes`` cuts it into
batches, in order (their sum is the number of hosts run on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import asyncssh  # noqa: E402
from fleet_asyncssh import run_all  # noqa: E402

from squall.runners import remote_job  # noqa: E402

# The remote runner's defaults (squall/runners/remote.py, squall/runners/ssh.py).
OUTPUT_CAP = 64 * 1024
CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 15.0


async def run_wrapped(args: argparse.Namespace, hosts: list[str], run_id: str) -> dict[str, Any]:
    """One batch as Squall's remote runner runs each host: the job wrapper."""
    key = asyncssh.read_private_key(args.key)
    known_hosts = asyncssh.read_known_hosts(args.known_hosts)
    gate = asyncio.Semaphore(args.concurrency)
    errors: Counter[str] = Counter()

    async def one(address: str) -> bool:
        async with gate:
            jid = remote_job.job_id(run_id, address)
            wrapper = remote_job.start_script(jid, args.command, cap=OUTPUT_CAP)
            try:
                async with asyncssh.connect(
                    address,
                    port=args.port,
                    username=args.user,
                    client_keys=[key],
                    known_hosts=known_hosts,
                    agent_path=None,
                    preferred_auth="publickey",
                    connect_timeout=CONNECT_TIMEOUT,
                    login_timeout=CONNECT_TIMEOUT,
                    keepalive_interval=KEEPALIVE_INTERVAL,
                    keepalive_count_max=3,
                ) as conn:
                    process = await conn.create_process(wrapper, encoding=None)
                    _out, err = await asyncio.gather(process.stdout.read(), process.stderr.read())
                    _err, rc = remote_job.parse_trailer(err)
                    process.stdin.write(b"done\n")
                    process.stdin.write_eof()
                    await process.wait_closed()
                    if rc == 0:
                        return True
                    errors[f"exit status {rc}"] += 1
            except (OSError, asyncssh.Error) as exc:
                errors[f"{type(exc).__name__}: {exc}"] += 1
            return False

    done = await asyncio.gather(*(one(h) for h in hosts))
    ok = sum(done)
    return {"ok": ok, "failed": len(hosts) - ok, "errors": dict(errors.most_common(5))}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--sizes", required=True, help="batch sizes, comma-separated")
    parser.add_argument("--user", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--command", default="true")
    parser.add_argument(
        "--job-wrapper", action="store_true", help="run each host as Squall's remote runner does"
    )
    args = parser.parse_args()
    hosts = Path(args.hosts).read_text().split()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if sum(sizes) > len(hosts):
        parser.error(f"the batches hold {sum(sizes)} hosts, the file {len(hosts)}")
    ok = failed = 0
    errors: Counter[str] = Counter()
    walls: list[float] = []
    run_id = f"floor{os.getpid()}x{int(time.time())}"  # job ids unique to this run
    with tempfile.TemporaryDirectory(prefix="rollout-floor-") as tmp:
        first = 0
        for i, size in enumerate(sizes):
            batch_hosts = hosts[first : first + size]
            first += size
            batch = Path(tmp) / f"batch-{i}.txt"
            batch.write_text("\n".join(batch_hosts) + "\n")
            t0 = time.perf_counter()
            if args.job_wrapper:
                result = asyncio.run(run_wrapped(args, batch_hosts, f"{run_id}b{i}"))
            else:
                result = asyncio.run(run_all(argparse.Namespace(**{**vars(args), "hosts": batch})))
            walls.append(round(time.perf_counter() - t0, 3))
            ok += int(result["ok"])
            failed += int(result["failed"])
            errors.update(result["errors"])
    print(
        json.dumps(
            {
                "ok": ok,
                "failed": failed,
                "batches": sizes,
                "batch_wall_s": walls,
                "errors": dict(errors.most_common(5)),
            }
        )
    )


if __name__ == "__main__":
    main()
