"""Rule evaluation in the pure core: how many rule evaluations one core does.

1,000 rules over 10 trigger types (100 per type), compiled once and indexed
by trigger; each rule has two or three criteria of mixed operators (equals,
regex, contains, greaterthan, startswith, iequals, inside, exists) on nested
payload paths. Events of random types are matched against every rule of
their type, the way the rules engine does. A "rule evaluation" is one
rule's criteria checked against one event.

Usage:  python bench/rules_core.py [--events 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from typing import Any

from squall.core.rules import RuleIndex, compile_rule, normalize

TYPES = [f"bench.type{i}" for i in range(10)]
HOSTS = [f"web-{i:03d}" for i in range(50)] + [f"db-{i:02d}" for i in range(20)]
SEVERITIES = ["info", "warning", "critical"]


def make_rule(i: int, rng: random.Random) -> dict[str, Any]:
    pool = [
        ("trigger.body.severity", {"type": "equals", "pattern": rng.choice(SEVERITIES)}),
        ("trigger.body.host", {"type": "regex", "pattern": rf"^(web|db)-0{i % 10}"}),
        ("trigger.body.tags", {"type": "contains", "pattern": f"team{i % 7}"}),
        ("trigger.body.value", {"type": "greaterthan", "pattern": rng.randint(10, 90)}),
        ("trigger.body.host", {"type": "startswith", "pattern": rng.choice(["web", "db"])}),
        ("trigger.body.check", {"type": "iequals", "pattern": rng.choice(["DISK", "CPU"])}),
        ("trigger.body.region", {"type": "inside", "pattern": ["eu-west-1", "us-east-1"]}),
        ("trigger.body.runbook", {"type": "exists", "pattern": ""}),
    ]
    criteria = dict(rng.sample(pool, rng.choice([2, 3])))
    return {
        "name": f"rule{i}",
        "pack": "bench",
        "enabled": True,
        "trigger": {"type": TYPES[i % len(TYPES)]},
        "criteria": criteria,
        "action": {"ref": "core.noop"},
    }


def make_event(rng: random.Random) -> tuple[str, dict[str, Any]]:
    body = {
        "severity": rng.choice(SEVERITIES),
        "host": rng.choice(HOSTS),
        "tags": [f"team{rng.randint(0, 6)}", "prod"],
        "value": rng.randint(0, 100),
        "check": rng.choice(["disk", "cpu", "mem"]),
        "region": rng.choice(["eu-west-1", "us-east-1", "ap-south-1"]),
    }
    if rng.random() < 0.5:
        body["runbook"] = "https://wiki/runbook"
    return rng.choice(TYPES), {"body": body}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=1_000)
    args = parser.parse_args()
    rng = random.Random(7)

    started = time.perf_counter()
    compiled = [
        compile_rule({**normalize(make_rule(i, rng)), "id": str(i)}) for i in range(args.rules)
    ]
    index = RuleIndex(compiled)
    compile_s = time.perf_counter() - started

    events = [make_event(rng) for _ in range(args.events)]
    evaluations = matches = 0
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for trigger, payload in events:
        for rule in index.for_trigger(trigger):
            evaluations += 1
            if rule.criteria.matches(payload):
                matches += 1
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0

    calibration0 = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i % 7
    calibration = time.perf_counter() - calibration0

    print(
        json.dumps(
            {
                "rules": args.rules,
                "trigger_types": len(TYPES),
                "events": args.events,
                "rule_evaluations": evaluations,
                "matches": matches,
                "compile_s": round(compile_s, 3),
                "evaluations_per_s_wall": round(evaluations / wall),
                "evaluations_per_s_cpu": round(evaluations / cpu),
                "events_per_s": round(args.events / wall),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "calibration_loop_s": round(calibration, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
