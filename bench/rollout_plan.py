"""Rollout planning in the pure core: how long laying out a fleet in batches takes.

Builds an inventory of 100,000 hosts in memory (facts ``hagroup`` a/b/c,
``lb_pool`` 1..500 and a few gathered-looking ones), resolves the target
``hagroup=a or hagroup=b`` (about 66,667 hosts) with the targeting module,
then plans it as a rollout controller would (and plans all the hosts too): batches
``[1, "1%", "5%", "10%", "100%"]``, ``group_by: hagroup`` and
``max_per_group: {fact: lb_pool, max: 5}`` (so a batch holds at most 2,500
hosts: 5 from each of the 500 pools), plus variants to show what each
feature costs.

Each step runs several times; the table gives the best and the median wall
time, and the memory the step allocates at its peak (tracemalloc, measured
in a separate run because tracing slows Python down). The process's peak
RSS (``ru_maxrss``) is shown after the inventory is built and at the end.

Usage:  python bench/rollout_plan.py [--quick] [--hosts 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from squall.core import rollouts, targeting
from squall.core.inventory import Group, Host, Inventory

TARGET = "hagroup=a or hagroup=b"
SPEC: dict[str, Any] = {
    "name": "patch-openssl",
    "target": TARGET,
    "action": "examples.patch_host",
    "parameters": {"package": "openssl"},
    "batches": [1, "1%", "5%", "10%", "100%"],
    "concurrency": 200,
    "group_by": "hagroup",
    "max_per_group": {"fact": "lb_pool", "max": 5},
    "max_failures": 50,
    "max_failure_percent": 1,
    "batch_budget": {"max_failures": 10, "max_failure_percent": 5},
    "gates": [
        {"after": 0, "approval": {"roles": ["ops"], "timeout": "4h"}},
        {"after": "each", "pause": "5m"},
        {"window": {"cron": "0 22 * * 1-5", "duration": "6h", "timezone": "Europe/Paris"}},
    ],
}


def build_inventory(count: int) -> Inventory:
    rng = random.Random(11)
    hosts: dict[str, Host] = {}
    for i in range(count):
        name = f"web-{i:06d}"
        facts = {
            "hagroup": "abc"[i % 3],
            "lb_pool": 1 + rng.randrange(500),
            "role": "web",
            "env": "prod",
            "os": "ubuntu",
            "cpus": rng.choice([4, 8, 16]),
        }
        hosts[name] = Host(name, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", facts=facts)
    groups = {"webservers": Group("webservers", tuple(hosts))}
    return Inventory(hosts, groups)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(step: Callable[[], Any], repeat: int) -> tuple[float, float, float, Any]:
    """Best and median seconds over ``repeat`` runs, and the peak MB allocated."""
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    traced = step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    return min(times), statistics.median(times), (peak - before) / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 hosts, 3 runs")
    parser.add_argument("--hosts", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    count = args.hosts or (10_000 if args.quick else 100_000)
    repeat = args.repeat or (3 if args.quick else 7)

    rss_start = rss_mb()
    started = time.perf_counter()
    inventory = build_inventory(count)
    build_s = time.perf_counter() - started
    rss_inventory = rss_mb()

    spec = rollouts.parse_spec(SPEC)
    hosts = targeting.resolve(TARGET, inventory)
    everyone = list(inventory.hosts.values())
    canary = [inventory.hosts["web-000001"], inventory.hosts["web-000002"]]

    def variant(**changes: Any) -> rollouts.RolloutSpec:
        data = {**SPEC, **changes}
        return rollouts.parse_spec({k: v for k, v in data.items() if v is not None})

    plain = variant(group_by=None, max_per_group=None)
    grouped = variant(max_per_group=None)
    shuffled = variant(order="shuffle")
    # Window mode: one batch, so no gate between batches and no batch budget.
    window = variant(
        mode="window",
        batches=None,
        concurrency=500,
        batch_budget=None,
        gates=[g for g in SPEC["gates"] if "window" in g],
    )

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("parse_spec", lambda: rollouts.parse_spec(SPEC)),
        (f"resolve({TARGET!r})", lambda: targeting.resolve(TARGET, inventory)),
        ("plan: batches only", lambda: rollouts.plan(plain, hosts)),
        ("plan: + group_by hagroup", lambda: rollouts.plan(grouped, hosts)),
        ("plan: + max_per_group lb_pool 5", lambda: rollouts.plan(spec, hosts)),
        ("plan: full, + 2 canaries", lambda: rollouts.plan(spec, hosts, canary=canary)),
        ("plan: full, order shuffle", lambda: rollouts.plan(shuffled, hosts)),
        ("plan: window mode (500)", lambda: rollouts.plan(window, hosts)),
        (f"plan: full, all {count:,} hosts", lambda: rollouts.plan(spec, everyone)),
        (
            "resolve + full plan",
            lambda: rollouts.plan(spec, targeting.resolve(TARGET, inventory), canary=canary),
        ),
    ]
    rows = []
    results: dict[str, Any] = {}
    for label, step in steps:
        best, median, peak, result = measure(step, repeat)
        results[label] = result
        rows.append((label, best * 1000, median * 1000, peak))
    full = results["plan: + max_per_group lb_pool 5"]
    to_dict_best, to_dict_median, to_dict_peak, _ = measure(full.to_dict, repeat)
    rows.append(
        ("Plan.to_dict (full plan)", to_dict_best * 1000, to_dict_median * 1000, to_dict_peak)
    )
    rss_end = rss_mb()

    calibration0 = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i % 7
    calibration = time.perf_counter() - calibration0

    sizes = [len(b) for b in full.batches]
    if args.json:
        print(
            json.dumps(
                {
                    "hosts": count,
                    "targeted": len(hosts),
                    "batches": len(sizes),
                    "steps": {
                        label: {
                            "best_ms": round(b, 1),
                            "median_ms": round(m, 1),
                            "peak_mb": round(p, 1),
                        }
                        for label, b, m, p in rows
                    },
                    "max_rss_mb_inventory": round(rss_inventory, 1),
                    "max_rss_mb_end": round(rss_end, 1),
                    "calibration_loop_s": round(calibration, 3),
                },
                indent=2,
            )
        )
        return
    print(
        f"{count:,} hosts in the inventory (built in {build_s:.2f} s), "
        f"{len(hosts):,} targeted by {TARGET!r}; {repeat} runs per step"
    )
    print(
        f"full plan: {len(sizes)} batches, sizes {sizes[:6]}... last {sizes[-1]}, "
        f"largest {max(sizes)}; budget {full.budget.max_failures} failures; "
        f"estimated {full.estimated_seconds / 3600:.1f} h"
    )
    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'best ms':>9}  {'median ms':>9}  {'peak MB':>8}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 9}  {'-' * 8}")
    for label, best, median, peak in rows:
        print(f"{label:<{width}}  {best:>9.1f}  {median:>9.1f}  {peak:>8.1f}")
    print()
    print(
        f"peak RSS (ru_maxrss): {rss_start:.0f} MB at start, {rss_inventory:.0f} MB with the "
        f"inventory, {rss_end:.0f} MB at the end"
    )
    print(f"calibration loop (3M additions): {calibration:.3f} s")


if __name__ == "__main__":
    main()
