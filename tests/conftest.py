from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.postgres import Cluster
from tests.support.prometheus import Prometheus, prometheus_binary, running_prometheus


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """For a parallel run (``make test`` runs ``pytest -n 2``): a test file
    stays on one worker, so its module-wide servers start once, and every
    test of the SSH fleet goes to the same worker, since the fleet's
    loopback addresses can be listened on by one fleet at a time."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFileFleetTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "fleet" if path.startswith("tests/integration/fleet/") else path

    return ByFileFleetTogether(config, log)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        cluster = Cluster()
        cluster.start()
    except (RuntimeError, OSError, KeyError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not available here: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture()
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh, empty database in the session's throwaway cluster."""
    return pg_cluster.new_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[Prometheus]:
    """One Prometheus for the session (tests/support/prometheus.py)."""
    if prometheus_binary() is None:
        if os.environ.get("CI"):
            raise RuntimeError("the prometheus binary is missing: run scripts/test-deps")
        pytest.skip("Prometheus not installed (apt-get install prometheus)")
    with running_prometheus() as server:
        yield server


@pytest.fixture()
def prometheus(prometheus_server: Prometheus) -> Iterator[Prometheus]:
    """The session's Prometheus, its exporter emptied after the test:
    ``prometheus.exporter.set("http_errors_ratio", 0.2)``, then
    ``prometheus.url`` (the base URL) for queries."""
    prometheus_server.exporter.clear()
    yield prometheus_server
    prometheus_server.exporter.clear()
