"""Services against the real store, on SQLite and PostgreSQL alike."""

from tests.integration.store.conftest import db  # noqa: F401  (the same fixture)
