"""The asyncssh floor: the least a Python program does to run one command on
many hosts over SSH (bench/fleet_floor.py runs it as a contender).

One connection per host, at most ``--concurrency`` at a time (a semaphore),
the command run, the connection closed. The client key and the known hosts
are read once; host keys are checked. Prints one JSON line: hosts that
succeeded, hosts that failed and the first few errors.

Usage:  python bench/fleet_asyncssh.py --hosts FILE --user U --key KEY
            --known-hosts FILE [--port 22] [--concurrency 100] [--command true]

``--hosts`` is a file of addresses, one a line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path

import asyncssh


async def run_all(args: argparse.Namespace) -> dict[str, object]:
    hosts = Path(args.hosts).read_text().split()
    key = asyncssh.read_private_key(args.key)
    known_hosts = asyncssh.read_known_hosts(args.known_hosts)
    gate = asyncio.Semaphore(args.concurrency)
    errors: Counter[str] = Counter()

    async def one(address: str) -> bool:
        async with gate:
            try:
                async with asyncssh.connect(
                    address,
                    port=args.port,
                    username=args.user,
                    client_keys=[key],
                    known_hosts=known_hosts,
                    agent_path=None,
                    connect_timeout=60,
                ) as conn:
                    result = await conn.run(args.command)
                    if result.exit_status == 0:
                        return True
                    errors[f"exit status {result.exit_status}"] += 1
            except (OSError, asyncssh.Error) as exc:
                errors[f"{type(exc).__name__}: {exc}"] += 1
            return False

    done = await asyncio.gather(*(one(h) for h in hosts))
    ok = sum(done)
    return {"ok": ok, "failed": len(hosts) - ok, "errors": dict(errors.most_common(5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--command", default="true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run_all(args))))


if __name__ == "__main__":
    main()
