"""`squall db upgrade`, and processes refusing what they cannot run on:
SQLite, or a schema older than the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from squall.config import normalize_database_url
from squall.store import migrate
from squall.store.db import Database
from tests.support.server import ROOT


def squall(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall.cli.main", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_separate_processes_refuse_sqlite(tmp_path: Path) -> None:
    env = {"SQUALL_DATA_DIR": str(tmp_path), "SQUALL_DATABASE_URL": ""}
    result = squall(env, "worker")
    assert result.returncode == 2
    assert "PostgreSQL" in result.stderr and "squall up" in result.stderr
    assert not (tmp_path / "squall.db").exists()


def test_the_intake_needs_an_sqlite_squall_to_serve_beside(tmp_path: Path) -> None:
    env = {"SQUALL_DATA_DIR": str(tmp_path), "SQUALL_DATABASE_URL": ""}
    alone = squall(env, "intake", "--port", "9")
    assert alone.returncode == 2
    assert "no Squall database" in alone.stderr and "squall up" in alone.stderr
    no_port = squall(env, "intake")
    assert no_port.returncode == 2 and "--port" in no_port.stderr
    postgres = squall(
        {**env, "SQUALL_DATABASE_URL": "postgresql://u@127.0.0.1/db"}, "intake", "--port", "9"
    )
    assert postgres.returncode == 2 and "squall api" in postgres.stderr
    assert not (tmp_path / "inbox.db").exists()


@pytest.mark.postgres
def test_db_upgrade_and_the_refusal_of_an_older_schema(pg_url: str, tmp_path: Path) -> None:
    url = normalize_database_url(pg_url)
    database = Database(url, readers=1)
    cfg = migrate._config()
    with database.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")  # an older Squall's schema
    database.close()
    env = {"SQUALL_DATA_DIR": str(tmp_path), "SQUALL_DATABASE_URL": pg_url}

    refused = squall(env, "api")
    assert refused.returncode == 2
    assert "schema is at 0007" in refused.stderr
    assert "squall db upgrade" in refused.stderr

    status = squall(env, "db", "status")
    assert status.returncode == 1 and "needs 'squall db upgrade'" in status.stdout

    upgraded = squall(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    head = migrate.head_revision()
    assert f"upgraded from 0007 to {head}" in upgraded.stdout
    # It made the key ring every process must share: a process without it refuses.
    assert "created the datastore key ring" in upgraded.stdout
    ring = tmp_path / "keys" / "datastore.json"
    assert ring.exists()
    ring.rename(tmp_path / "elsewhere.json")
    refused = squall(env, "worker")
    assert refused.returncode == 2
    assert "datastore key ring" in refused.stderr and "copy" in refused.stderr
