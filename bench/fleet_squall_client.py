"""The client side of the Squall contender of bench/fleet_floor.py: one
``core.remote`` execution on every host of the running server's inventory,
through the REST API, followed until it is final and its per-host results are
stored. Prints ``{"ok": N, ...}`` on its last line. Standard library only, so
that the client's own start-up stays small next to the work measured."""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from typing import Any

FINAL = {"succeeded", "failed", "timeout", "canceled", "abandoned"}


def call(url: str, key: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("St2-Api-Key", key)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--target", default="*")
    parser.add_argument("--command", default="true")
    args = parser.parse_args()
    api = f"{args.url}/api/v1"
    started = time.perf_counter()
    execution = call(
        f"{api}/executions",
        args.key,
        "POST",
        {"action": "core.remote", "parameters": {"target": args.target, "cmd": args.command}},
    )
    eid = execution["id"]
    while execution["status"] not in FINAL:
        time.sleep(0.05)
        execution = call(f"{api}/executions/{eid}?include_attributes=status", args.key)
    hosts = call(f"{api}/executions/{eid}/hosts?limit=1", args.key)
    summary = hosts["summary"]
    print(
        json.dumps(
            {
                "ok": summary.get("succeeded", 0),
                "status": execution["status"],
                "summary": summary,
                "api_to_final_s": round(time.perf_counter() - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
