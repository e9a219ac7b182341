"""Masking cost per API response: a page of 100 executions (parameters,
results with output) masked with the datastore's secret values and a few
configured patterns, as every JSON response and stream event is.

Usage:  python bench/masking.py [--secrets 0,10,100,1000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

from squall.core.masking import Masker, compile_patterns

PATTERNS = [r"AKIA[0-9A-Z]{16}", r"xox[baprs]-[0-9A-Za-z-]{10,}", r"ghp_[0-9A-Za-z]{36}"]


def page() -> list[dict[str, Any]]:
    line = "2026-11-22T12:00:00 INFO deploying web-042 from build 1234 ... ok\n"
    return [
        {
            "id": secrets.token_hex(12),
            "status": "succeeded",
            "parameters": {"cmd": f"deploy --host web-{i:03d}", "env": {"REGION": "eu-west-1"}},
            "result": {"stdout": line * 40, "stderr": "", "return_code": 0, "succeeded": True},
            "context": {"user": "admin", "rule": {"ref": "ops.deploy"}},
        }
        for i in range(100)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secrets", default="0,10,100,1000")
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    data = page()
    size = len(json.dumps(data))
    patterns = compile_patterns(PATTERNS)
    print(f"page: 100 executions, {size / 1024:.0f} KiB of JSON")
    for count in (int(n) for n in args.secrets.split(",")):
        masker = Masker([f"secret-{secrets.token_hex(8)}" for _ in range(count)], patterns)
        began = time.perf_counter()
        for _ in range(args.rounds):
            masker.data(data)
        per_page = (time.perf_counter() - began) / args.rounds
        print(f"{count:>5} secret values + {len(PATTERNS)} patterns: {per_page * 1000:.2f} ms/page")


if __name__ == "__main__":
    main()
