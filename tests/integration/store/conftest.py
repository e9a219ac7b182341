"""The store's tests run on real SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from squall.config import normalize_database_url
from squall.store import migrate
from squall.store.db import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'squall.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    database = Database(normalize_database_url(url))
    migrate.upgrade(database.write_engine)
    yield database
    database.close()
