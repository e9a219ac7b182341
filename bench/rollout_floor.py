"""The ``squall-batches-floor`` contender of bench/rollout.py: the asyncssh
floor (bench/fleet_asyncssh.py, its ``run_all``) once per batch, one batch
after the other, in one process (so that the floor pays one interpreter
start-up and one import of asyncssh, as a long-running engine would have
paid them beforehand). Prints one JSON line: ``ok`` (hosts that succeeded,
over every batch), ``failed``, the batch sizes, each batch's wall time and
the first few errors.

Usage:  python bench/rollout_floor.py --hosts FILE --sizes 1,50,250,699 --user U
            --key KEY --known-hosts FILE [--port 22] [--concurrency 100] [--command true]

``--hosts`` is a file of addresses, one a line; ``--sizes`` cuts it into
batches, in order (their sum is the number of hosts run on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_asyncssh import run_all


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
    args = parser.parse_args()
    hosts = Path(args.hosts).read_text().split()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if sum(sizes) > len(hosts):
        parser.error(f"the batches hold {sum(sizes)} hosts, the file {len(hosts)}")
    ok = failed = 0
    errors: Counter[str] = Counter()
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rollout-floor-") as tmp:
        first = 0
        for i, size in enumerate(sizes):
            batch = Path(tmp) / f"batch-{i}.txt"
            batch.write_text("\n".join(hosts[first : first + size]) + "\n")
            first += size
            t0 = time.perf_counter()
            result: dict[str, Any] = asyncio.run(
                run_all(argparse.Namespace(**{**vars(args), "hosts": batch}))
            )
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
