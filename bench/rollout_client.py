"""The client side of the ``squall-rollout`` contender of bench/rollout.py: one
rollout of ``core.remote`` (``cmd``) over the running server's inventory
(``target``), in batches, through the REST API (POST /api/v1/rollouts, then
GET /api/v1/rollouts/{id} until it is final). Prints one JSON line: ``ok``
(the hosts that succeeded, from the rollout's counts), the final status, the
counts, the batch sizes and, for each batch, the time from its first host's
start to its last host's end and the gap before the next batch starts (from
the hosts' timestamps, as the server recorded them). Standard library only,
so that the client's own start-up stays small next to the work measured.

Usage:  python bench/rollout_client.py --url URL --key KEY [--target "*"]
            [--command true] [--batches '[1, "5%", "25%", "100%"]'] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import urllib.request
from datetime import datetime
from typing import Any

FINAL = {"succeeded", "failed", "aborted", "rolled_back"}


def call(url: str, key: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("St2-Api-Key", key)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _seconds(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def batch_times(view: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Each batch's span (first start to last end) and the gaps between one
    batch's last end and the next one's first start, in seconds."""
    spans: list[float] = []
    bounds: list[tuple[float, float]] = []
    for batch in view["batches"]:
        starts = [s for h in batch["hosts"] if (s := _seconds(h["started_at"])) is not None]
        ends = [e for h in batch["hosts"] if (e := _seconds(h["ended_at"])) is not None]
        if starts and ends:
            bounds.append((min(starts), max(ends)))
            spans.append(round(max(ends) - min(starts), 3))
    gaps = [round(b[0] - a[1], 3) for a, b in itertools.pairwise(bounds)]
    return spans, gaps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--target", default="*")
    parser.add_argument("--command", default="true")
    parser.add_argument("--batches", default='[1, "5%", "25%", "100%"]', help="JSON")
    parser.add_argument("--name", default="bench-rollout")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between polls")
    args = parser.parse_args()
    api = f"{args.url}/api/v1/rollouts"
    spec = {
        "name": args.name,
        "target": args.target,
        "action": "core.remote",
        "host_parameter": "hosts",
        "parameters": {"cmd": args.command},
        "batches": json.loads(args.batches),
    }
    started = time.perf_counter()
    view = call(api, args.key, "POST", {"spec": spec})
    rid, polls = view["id"], 0
    while view["status"] not in FINAL:
        time.sleep(args.interval)
        # Counts only while it runs: the per-host lists are read once, at the end.
        view = call(f"{api}/{rid}?hosts=false", args.key)
        polls += 1
    view = call(f"{api}/{rid}", args.key)
    api_to_final = time.perf_counter() - started
    spans, gaps = batch_times(view)
    print(
        json.dumps(
            {
                "ok": view["counts"].get("succeeded", 0),
                "status": view["status"],
                "error": view["error"],
                "counts": view["counts"],
                "batches": [b["counts"]["total"] for b in view["batches"]],
                "batch_span_s": spans,
                "batch_gap_s": gaps,
                "polls": polls,
                "api_to_final_s": round(api_to_final, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
