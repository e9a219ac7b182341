from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support.postgres import Cluster


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
