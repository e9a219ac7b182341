"""A worker stores that an execution runs lazily: with its end when the run
is short, else soon after it starts. What a claim taken before means."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from squall.core.executions import Status
from squall.crypto import KeyRing
from squall.services.worker import Completion, finish_many, flush, start_batch
from squall.store import executions as exe_store
from squall.store import queue
from squall.store.db import Database


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path / "keys.json")


def _request(db: Database, idempotent: bool = False) -> str:
    action = {
        "ref": "pk.act",
        "name": "act",
        "pack": "pk",
        "runner_type": "local-shell-cmd",
        "idempotent": idempotent,
    }

    def create(conn: Any) -> str:
        row = exe_store.create(
            conn, action=action, parameters={"cmd": "true"}, context={}, user="u", schedule=False
        )
        return str(row["id"])

    return db.write_sync(create)


def _claim(db: Database, owner: str, keyring: KeyRing, lease: float = 30.0) -> list[Any]:
    started, _leftovers, _due = db.write_sync(
        lambda c: start_batch(c, owner, 10, lease, 3600, keyring)
    )
    return started


def _statuses(row: dict[str, Any]) -> list[str]:
    return [e["status"] for e in row["log"]]


def _get(db: Database, eid: str) -> dict[str, Any]:
    return db.read_sync(exe_store.get, eid)


def _done(item_id: int, eid: str, started: dict[str, Any] | None) -> Completion:
    output = exe_store.OutputBatch(eid, "pk.act", "local-shell-cmd", [], 0)
    return Completion(item_id, eid, Status.SUCCEEDED, {"stdout": ""}, output, started=started)


def test_a_short_run_is_stored_once_with_its_start(db: Database, keyring: KeyRing) -> None:
    eid = _request(db)
    ((item_id, row, _config, _token, _hosts, recorded),) = _claim(db, "w1", keyring)
    assert recorded is False and row["status"] == "running"
    assert _get(db, eid)["status"] == "scheduled"  # nothing written for the start
    db.write_sync(lambda c: finish_many(c, [_done(item_id, eid, row)]))
    stored = _get(db, eid)
    assert stored["status"] == "succeeded"
    assert _statuses(stored) == ["requested", "scheduled", "running", "succeeded"]
    times = [e["timestamp"] for e in stored["log"]]
    assert times == sorted(times)


def test_a_longer_run_is_stored_as_running_by_the_flush(db: Database, keyring: KeyRing) -> None:
    eid = _request(db)
    ((item_id, row, *_rest),) = _claim(db, "w1", keyring)
    db.write_sync(lambda c: flush(c, "w1", [], {}, [], [row]))
    stored = _get(db, eid)
    assert stored["status"] == "running" and stored["log"] == row["log"]
    # The end then moves it on from what is stored (not from the copy it started with).
    db.write_sync(lambda c: finish_many(c, [_done(item_id, eid, row)]))
    assert _statuses(_get(db, eid)) == ["requested", "scheduled", "running", "succeeded"]


def test_a_start_is_not_stored_over_a_cancel(db: Database, keyring: KeyRing) -> None:
    eid = _request(db)
    ((item_id, row, *_rest),) = _claim(db, "w1", keyring)
    current = _get(db, eid)
    db.write_sync(lambda c: exe_store.set_status(c, current, Status.CANCELED))
    db.write_sync(lambda c: flush(c, "w1", [], {}, [], [row]))
    db.write_sync(lambda c: finish_many(c, [_done(item_id, eid, row)]))
    assert _get(db, eid)["status"] == "canceled"


@pytest.mark.parametrize(("idempotent", "outcome"), [(False, "abandoned"), (True, "again")])
def test_a_claim_taken_before_means_the_run_may_have_started(
    db: Database, keyring: KeyRing, idempotent: bool, outcome: str
) -> None:
    eid = _request(db, idempotent)
    assert len(_claim(db, "dead", keyring, lease=0.01)) == 1  # started, then the worker died
    time.sleep(0.05)
    assert _get(db, eid)["status"] == "scheduled"
    again = _claim(db, "w2", keyring)
    stored = _get(db, eid)
    if outcome == "abandoned":
        assert again == []
        assert stored["status"] == "abandoned"
        assert "not run again" in stored["result"]["error"]
        assert db.read_sync(queue.depth) == {}
    else:
        assert [s[1]["id"] for s in again] == [eid]  # declared idempotent: run again
        assert stored["status"] == "scheduled"


def test_a_claim_never_taken_before_runs(db: Database, keyring: KeyRing) -> None:
    _request(db)
    _request(db)
    started = _claim(db, "w1", keyring)
    assert len(started) == 2 and all(s[5] is False for s in started)
