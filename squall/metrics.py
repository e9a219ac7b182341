"""This process's Prometheus instruments (see api/metrics.py for /metrics).

Counters and histograms count what happens in the process that increments
them: the claim latency and rule matches in workers, webhooks in API
processes. Figures about the whole deployment (queue depth, executions by
state, live workers) are read from the database when /metrics is scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# The `_created` series only add noise to every scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

CLAIM_LATENCY = Histogram(
    "squall_claim_latency_seconds",
    "Time from an execution being queued to run to a worker starting it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RULE_MATCHES = Counter(
    "squall_rule_matches",
    "Rule enforcements created: a trigger instance matched a rule.",
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "squall_webhook_requests",
    "Webhook requests received (POST /api/v1/webhooks/...).",
    registry=REGISTRY,
)


def observe_pickup(rows: list[dict[str, object]], now: float) -> None:
    """Record how long each execution just started waited to run: from its
    last ``scheduled`` entry in its status log to ``now``."""
    for row in rows:
        log = row.get("log")
        if not isinstance(log, list):
            continue
        queued = next(
            (e.get("timestamp") for e in reversed(log) if e.get("status") == "scheduled"), None
        )
        if isinstance(queued, int | float):
            CLAIM_LATENCY.observe(max(0.0, now - queued))
