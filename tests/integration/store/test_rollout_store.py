"""Rollout host rows on real SQLite and PostgreSQL: read by name together,
and changed together (one statement for the hosts whose changes match)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from squall.store import rollouts as store
from squall.store.db import Database


def test_hosts_are_read_by_name_and_changed_together(db: Database) -> None:
    names = [f"web{i:04}" for i in range(1200)]  # more than one IN list's worth

    def create(conn: Connection) -> str:
        row = store.create(
            conn,
            name="t",
            spec={},
            plan={},
            batches=[names[:600], names[600:]],
            user="alice",
        )
        return str(row["id"])

    rid = db.write_sync(create)
    found = db.read_sync(lambda c: store.hosts_named(c, rid, [*names, "nope", names[0]]))
    assert set(found) == set(names) and found["web0700"]["batch"] == 1

    changes = [
        {"host": "web0001", "status": "running", "execution_id": "e1"},
        {"host": "web0002", "status": "running", "execution_id": "e2"},
        {"host": "web0003", "output": "ok"},
        {"host": "web0001", "status": "succeeded", "ended_at": 5.0},  # the later one wins
        {"host": "web0004"},  # nothing to set
    ]
    db.write_sync(lambda c: store.set_hosts(c, rid, changes))
    after = db.read_sync(lambda c: store.hosts_named(c, rid, names[:6]))
    assert after["web0001"]["status"] == "succeeded"
    assert after["web0001"]["execution_id"] == "e1" and after["web0001"]["ended_at"] == 5.0
    assert after["web0002"]["status"] == "running" and after["web0002"]["execution_id"] == "e2"
    assert after["web0003"]["output"] == "ok" and after["web0003"]["status"] == "pending"
    assert after["web0004"]["status"] == "pending" and after["web0005"]["status"] == "pending"
