"""Metric analysis against a real Prometheus scraping an exporter the test sets.

The measurements go the way the rollout controller sends them: the request
of squall.core.analysis runs as a core.http execution on a real Squall, and
its final status and result are judged by squall.core.analysis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from squall.core.analysis import (
    Measurement,
    describe,
    judge,
    measure,
    measurement_request,
    measurement_value,
    verdict,
)
from squall.core.rollouts import Analysis
from tests.support.postgres import free_port
from tests.support.prometheus import JOB, Prometheus
from tests.support.server import Server

METRIC = "http_errors_ratio"


@pytest.fixture(scope="module")
def squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = Server(tmp_path_factory.mktemp("squall-analysis")).start()
    try:
        with server.client() as client:
            client.wait_final = lambda eid: server.wait_final(client, eid)  # type: ignore[attr-defined]
            yield client
    finally:
        server.stop()


def analysis(prometheus: Prometheus, query: str, **kwargs: Any) -> Analysis:
    return Analysis(name="errors", provider="prometheus", url=prometheus.url, query=query, **kwargs)


def take(
    client: httpx.Client, spec: Analysis, at: float = 0.0
) -> tuple[dict[str, Any], Measurement]:
    """One measurement, as an execution of the action the analysis asks for."""
    ref, parameters = measurement_request(spec, timeout=10)
    response = client.post("/api/v1/executions", json={"action": ref, "parameters": parameters})
    assert response.status_code == 201, response.text
    done = client.wait_final(response.json()["id"])  # type: ignore[attr-defined]
    return done, measure(spec, done["status"], done["result"], at)


def test_the_exporter_is_scraped_and_changes_are_seen(prometheus: Prometheus) -> None:
    exporter = prometheus.exporter
    assert prometheus.query(f'up{{job="{JOB}"}}') == [1.0]
    exporter.set(METRIC, 0.2, {"service": "web"})
    exporter.set(METRIC, 0.01, {"service": "api"})
    exporter.wait_scrapes(2)
    both = prometheus.query(METRIC)
    assert isinstance(both, list)
    assert sorted(both) == [0.01, 0.2]
    assert prometheus.query(f'{METRIC}{{service="web"}}') == [0.2]

    exporter.set(METRIC, 0.35, {"service": "web"})
    exporter.wait_scrapes(2)
    assert prometheus.query(f'{METRIC}{{service="web"}}') == [0.35]

    exporter.remove(METRIC, {"service": "web"})
    exporter.wait_scrapes(2)  # the series is marked stale at once
    assert prometheus.query(f'{METRIC}{{service="web"}}') == []
    assert prometheus.query(f"scalar(sum({METRIC}))") == 0.01


def test_query_answer_is_judged(prometheus: Prometheus) -> None:
    spec = analysis(
        prometheus,
        f'{METRIC}{{service="web"}}',
        success="result[0] < 0.05",
        failure="result[0] > 0.1",
    )
    prometheus.exporter.set(METRIC, 0.2, {"service": "web"})
    prometheus.exporter.wait_scrapes(2)
    answer = {"status_code": 200, "body": prometheus.api(spec.query or "")}
    value = measurement_value(spec, "succeeded", answer)
    assert value == [0.2]
    assert judge(spec, value) == "failed"

    prometheus.exporter.set(METRIC, 0.07, {"service": "web"})
    prometheus.exporter.wait_scrapes(2)
    value = measurement_value(spec, "succeeded", {"body": prometheus.api(spec.query or "")})
    assert value == [0.07]
    assert judge(spec, value) == "inconclusive"


def test_special_values_and_labels(prometheus: Prometheus) -> None:
    exporter = prometheus.exporter
    exporter.set("latency_seconds", math.nan, {"path": '/a "quoted"\\path'})
    exporter.set("latency_seconds", math.inf, {"path": "/b"})
    assert 'latency_seconds{path="/a \\"quoted\\"\\\\path"} NaN' in exporter.render()
    exporter.wait_scrapes(2)
    spec = analysis(prometheus, 'latency_seconds{path="/b"}', failure="isInf(result[0])")
    value = measurement_value(spec, "succeeded", {"body": prometheus.api(spec.query or "")})
    assert value == [math.inf]
    assert judge(spec, value) == "failed"
    query = 'latency_seconds{path=~"/a.*"}'
    spec = analysis(prometheus, query, success="not isNaN(result[0])")
    value = measurement_value(spec, "succeeded", {"body": prometheus.api(query)})
    assert len(value) == 1 and math.isnan(value[0])
    assert judge(spec, value) == "failed"


def test_measurements_through_core_http(prometheus: Prometheus, squall: httpx.Client) -> None:
    exporter = prometheus.exporter
    spec = analysis(
        prometheus,
        f'{METRIC}{{service="web"}}',
        success="len(result) == 0 or result[0] < 0.05",
        count=3,
        failure_limit=0,
    )
    exporter.set(METRIC, 0.01, {"service": "web"})
    exporter.wait_scrapes(2)
    done, first = take(squall, spec, at=1.0)
    assert done["status"] == "succeeded"
    assert done["result"]["status_code"] == 200
    assert first == Measurement(1.0, [0.01], "successful", None)
    assert verdict(spec, [first]) == "running"

    exporter.set(METRIC, 0.2, {"service": "web"})
    exporter.wait_scrapes(2)
    _, second = take(squall, spec, at=2.0)
    assert second.outcome == "failed"
    assert second.value == [0.2]
    assert verdict(spec, [first, second]) == "failed"  # over the limit: no third measurement
    assert describe(spec, [first, second]) == (
        "1 failed (limit 0): result [0.2]: the success condition "
        '"len(result) == 0 or result[0] < 0.05" does not hold'
    )

    exporter.remove(METRIC)
    exporter.wait_scrapes(2)
    _, third = take(squall, spec, at=3.0)
    assert third == Measurement(3.0, [], "successful", None)


def test_scalar_queries_and_errors_through_core_http(
    prometheus: Prometheus, squall: httpx.Client
) -> None:
    prometheus.exporter.set(METRIC, 0.5, {"service": "a"})
    prometheus.exporter.set(METRIC, 0.25, {"service": "b"})
    prometheus.exporter.wait_scrapes(2)
    _, scalar = take(squall, analysis(prometheus, f"scalar(sum({METRIC}))", failure="result > 0.7"))
    assert (scalar.outcome, scalar.value) == ("failed", 0.75)

    done, bad = take(squall, analysis(prometheus, f"sum({METRIC}", success="result < 1"))
    assert done["status"] == "failed"
    assert done["result"]["status_code"] == 400
    assert bad.outcome == "error"
    assert bad.message is not None
    assert bad.message.startswith("Prometheus answered HTTP 400: bad_data: ")

    matrix = analysis(prometheus, f"{METRIC}[1m]", success="result < 1")
    _, refused = take(squall, matrix)
    assert refused.outcome == "error"
    assert "range vector" in (refused.message or "")


def test_an_unreachable_prometheus_is_an_error(squall: httpx.Client) -> None:
    spec = Analysis(
        name="errors",
        provider="prometheus",
        url=f"http://127.0.0.1:{free_port()}",
        query="up",
        success="result[0] == 1",
    )
    done, down = take(squall, spec)
    assert done["status"] == "failed"
    assert down.outcome == "error"
    assert down.message is not None
    assert down.message.startswith("the request ended failed: request to http://127.0.0.1:")
