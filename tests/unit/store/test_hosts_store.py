"""Tests for squall.store.hosts: per-host results and gathered facts, on SQLite."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from squall.config import normalize_database_url
from squall.core.hostresults import HostStatus, host_result
from squall.store import hosts, migrate
from squall.store.db import Database
from squall.store.tables import execution_hosts


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file at the latest schema, made once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "squall.db"
    database = Database(normalize_database_url(f"sqlite:///{path}"))
    migrate.upgrade(database.write_engine)
    database.close()
    return path


@pytest.fixture()
def db(migrated: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "squall.db"
    shutil.copyfile(migrated, path)
    database = Database(normalize_database_url(f"sqlite:///{path}"))
    migrate.check_current(database.engine)
    yield database
    database.close()


def _row(execution_id: str, host: str, seq: int, status: str, result: Any = None) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "host": host,
        "seq": seq,
        "status": status,
        "result": result,
    }


def _record(db: Database, rows: list[dict[str, Any]]) -> None:
    db.write_sync(hosts.record, rows)


def _results(db: Database, execution_id: str, **kw: Any) -> list[dict[str, Any]]:
    return db.read_sync(lambda c: hosts.results(c, execution_id, **kw))


# -- record / results ------------------------------------------------------------------


def test_record_upserts_one_row_per_host(db: Database) -> None:
    _record(db, [_row("e1", "web-01", 0, "pending")])
    _record(db, [_row("e1", "web-01", 0, "running")])
    ok = host_result(HostStatus.SUCCEEDED, stdout="hello")
    _record(db, [_row("e1", "web-01", 0, "succeeded", ok)])
    rows = _results(db, "e1")
    assert len(rows) == 1
    assert rows[0]["host"] == "web-01"
    assert rows[0]["status"] == "succeeded"
    assert rows[0]["result"] == ok
    count = db.read_sync(
        lambda c: c.execute(sa.text("SELECT count(*) FROM execution_hosts")).scalar_one()
    )
    assert count == 1


def test_record_of_the_same_host_twice_in_one_batch_keeps_the_last(db: Database) -> None:
    ok = host_result(HostStatus.SUCCEEDED)
    _record(db, [_row("e1", "h", 0, "pending"), _row("e1", "h", 0, "succeeded", ok)])
    (row,) = _results(db, "e1")
    assert (row["status"], row["result"]) == ("succeeded", ok)


def test_record_keeps_the_first_seq_and_moves_updated_at(db: Database) -> None:
    before = time.time()
    _record(db, [_row("e1", "h", 3, "pending")])
    (first,) = _results(db, "e1")
    assert before <= first["updated_at"] <= time.time()
    _record(db, [_row("e1", "h", 99, "running")])
    (second,) = _results(db, "e1")
    assert second["seq"] == 3  # the position in the target does not change
    assert second["updated_at"] >= first["updated_at"]


def test_record_of_nothing_is_a_no_op(db: Database) -> None:
    _record(db, [])
    assert _results(db, "e1") == []


def test_pending_rows_have_no_result(db: Database) -> None:
    _record(db, [_row("e1", "h", 0, "pending")])
    (row,) = _results(db, "e1")
    assert row["result"] is None
    assert set(row) == {"host", "seq", "status", "result", "updated_at"}


def test_same_host_in_two_executions_are_two_rows(db: Database) -> None:
    _record(db, [_row("e1", "h", 0, "failed"), _row("e2", "h", 0, "succeeded")])
    assert [r["status"] for r in _results(db, "e1")] == ["failed"]
    assert [r["status"] for r in _results(db, "e2")] == ["succeeded"]


def _fleet(db: Database) -> None:
    """Ten hosts of e1, recorded out of order; and one host of e2."""
    statuses = ["succeeded"] * 6 + ["failed", "timeout", "failed", "unreachable"]
    rows = [
        _row("e1", f"h{seq:02}", seq, status, {"return_code": seq})
        for seq, status in enumerate(statuses)
    ]
    _record(db, rows[::-1][:5])
    _record(db, rows[::-1][5:])
    _record(db, [_row("e2", "other", 0, "failed")])


def test_results_are_in_target_order(db: Database) -> None:
    _fleet(db)
    rows = _results(db, "e1")
    assert [r["host"] for r in rows] == [f"h{i:02}" for i in range(10)]
    assert [r["seq"] for r in rows] == list(range(10))
    assert rows[7]["result"] == {"return_code": 7}


def test_results_of_one_status(db: Database) -> None:
    _fleet(db)
    assert [r["host"] for r in _results(db, "e1", status="failed")] == ["h06", "h08"]
    assert [r["host"] for r in _results(db, "e1", status="timeout")] == ["h07"]
    assert _results(db, "e1", status="canceled") == []
    assert len(_results(db, "e1", status=None)) == 10


def test_results_limit_and_offset(db: Database) -> None:
    _fleet(db)
    page = [r["host"] for r in _results(db, "e1", limit=3, offset=2)]
    assert page == ["h02", "h03", "h04"]
    assert [r["host"] for r in _results(db, "e1", offset=8)] == ["h08", "h09"]
    assert [r["host"] for r in _results(db, "e1", limit=2)] == ["h00", "h01"]
    assert _results(db, "e1", offset=10) == []
    assert len(_results(db, "e1", limit=0)) == 10  # 0: no limit
    failed = _results(db, "e1", status="failed", limit=1, offset=1)
    assert [r["host"] for r in failed] == ["h08"]


def test_results_of_an_unknown_execution(db: Database) -> None:
    assert _results(db, "nope") == []


def test_summary_counts_hosts_by_status(db: Database) -> None:
    _fleet(db)
    assert db.read_sync(hosts.summary, "e1") == {
        "succeeded": 6,
        "failed": 2,
        "timeout": 1,
        "unreachable": 1,
    }
    assert db.read_sync(hosts.summary, "e2") == {"failed": 1}
    assert db.read_sync(hosts.summary, "nope") == {}


def test_delete_for_a_list_of_executions(db: Database) -> None:
    _fleet(db)
    _record(db, [_row("e3", "x", 0, "running")])
    db.write_sync(hosts.delete_for, ["e1", "e2"])
    assert _results(db, "e1") == []
    assert _results(db, "e2") == []
    assert [r["host"] for r in _results(db, "e3")] == ["x"]


def test_delete_for_a_select_of_ids(db: Database) -> None:
    _fleet(db)
    failed_somewhere = sa.select(execution_hosts.c.execution_id).where(
        execution_hosts.c.host == "other"
    )
    db.write_sync(hosts.delete_for, failed_somewhere)
    assert _results(db, "e2") == []
    assert len(_results(db, "e1")) == 10


# -- facts -----------------------------------------------------------------------------


def test_save_and_read_facts(db: Database) -> None:
    before = time.time()
    db.write_sync(
        hosts.save_facts,
        {
            "web-01": {"os": "debian", "cpus": 8, "packages": {"nginx": None}},
            "db-01": {"os": "rhel", "ipv4": ["10.0.0.1"]},
        },
    )
    stored = db.read_sync(hosts.facts)
    assert set(stored) == {"web-01", "db-01"}
    web = stored["web-01"]
    assert before <= web.pop("gathered_at") <= time.time()
    assert web == {"os": "debian", "cpus": 8, "packages": {"nginx": None}}
    assert stored["db-01"]["ipv4"] == ["10.0.0.1"]


def test_facts_of_some_hosts(db: Database) -> None:
    db.write_sync(hosts.save_facts, {"a": {"os": "x"}, "b": {"os": "y"}, "c": {"os": "z"}})
    assert set(db.read_sync(hosts.facts, ["a", "c", "missing"])) == {"a", "c"}
    assert db.read_sync(hosts.facts, []) == {}
    assert set(db.read_sync(hosts.facts, iter(["b"]))) == {"b"}
    assert set(db.read_sync(hosts.facts, None)) == {"a", "b", "c"}


def test_saving_facts_again_replaces_them(db: Database) -> None:
    db.write_sync(hosts.save_facts, {"a": {"os": "debian", "old": True}})
    first = db.read_sync(hosts.facts, ["a"])["a"]["gathered_at"]
    db.write_sync(hosts.save_facts, {"a": {"os": "ubuntu"}})
    again = db.read_sync(hosts.facts, ["a"])["a"]
    assert again["os"] == "ubuntu"
    assert "old" not in again  # replaced, not merged
    assert again["gathered_at"] >= first


def test_save_no_facts_is_a_no_op(db: Database) -> None:
    db.write_sync(hosts.save_facts, {})
    assert db.read_sync(hosts.facts) == {}
