"""The store on real SQLite and real PostgreSQL: migrations, the work queue,
executions, the datastore, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from squall.core.executions import Status
from squall.crypto import KeyRing
from squall.errors import Conflict, NotFound
from squall.store import auth, kv, migrate, queue
from squall.store import executions as exe_store
from squall.store.db import Database
from squall.store.executions import UNSET
from squall.store.tables import work

ACTION = {"ref": "core.noop", "name": "noop", "pack": "core", "runner_type": "noop"}


def test_migrations_reach_head_and_check_passes(db: Database) -> None:
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    migrate.check_current(db.engine)
    names = set(sa.inspect(db.engine).get_table_names())
    assert {"executions", "work", "kv", "actions", "packs", "users"} <= names


def test_execution_create_enqueues_in_same_transaction(db: Database) -> None:
    row = db.write_sync(
        lambda c: exe_store.create(c, action=ACTION, parameters={"a": 1}, context={}, user="admin")
    )
    assert row["status"] == "requested"
    items = db.write_sync(lambda c: queue.claim(c, "schedule", "w1", limit=10, lease_seconds=30))
    assert [i.ref for i in items] == [row["id"]]


@pytest.mark.parametrize("n", [1, 3, 5, 300])
def test_get_many_finds_each_execution_once(db: Database, n: int) -> None:
    def create(conn: sa.Connection) -> list[str]:
        rows = [
            exe_store.new_row(
                action=ACTION,
                parameters={"i": i},
                context={},
                user="u",
                parent_id=None,
                direct=True,
            )
            for i in range(n)
        ]
        exe_store.create_many(conn, rows)
        return [r["id"] for r in rows]

    ids = db.write_sync(create)
    asked = [*ids, ids[0], "0" * 32]  # a repeat and an unknown id
    found = db.read_sync(lambda c: exe_store.get_many(c, asked))
    assert sorted(found) == sorted(ids)
    assert [found[i]["parameters"] for i in ids] == [{"i": i} for i in range(n)]


def test_failed_transaction_leaves_no_work(db: Database) -> None:
    def create_then_fail(c: sa.Connection) -> None:
        exe_store.create(c, action=ACTION, parameters={}, context={}, user="admin")
        raise Conflict("boom")

    with pytest.raises(Conflict):
        db.write_sync(create_then_fail)
    assert (
        db.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(work)).scalar())
        == 0
    )


def test_claim_lease_and_expiry(db: Database) -> None:
    db.write_sync(lambda c: [queue.enqueue(c, "t", str(i)) for i in range(5)])
    first = db.write_sync(lambda c: queue.claim(c, "t", "w1", limit=3, lease_seconds=30))
    second = db.write_sync(lambda c: queue.claim(c, "t", "w2", limit=10, lease_seconds=1.0))
    assert [i.ref for i in first] == ["0", "1", "2"]
    assert [i.ref for i in second] == ["3", "4"]
    assert db.write_sync(lambda c: queue.claim(c, "t", "w3", limit=10, lease_seconds=30)) == []
    time.sleep(1.1)
    again = db.write_sync(lambda c: queue.claim(c, "t", "w3", limit=10, lease_seconds=30))
    assert [i.ref for i in again] == ["3", "4"]
    assert all(i.attempts == 2 for i in again)
    db.write_sync(lambda c: [queue.ack(c, i.id) for i in first + again])
    assert db.read_sync(queue.depth) == {}


def test_delayed_work_waits(db: Database) -> None:
    before = time.time()
    db.write_sync(lambda c: queue.enqueue(c, "t", "later", delay=30))
    assert db.write_sync(lambda c: queue.claim(c, "t", "w", limit=1, lease_seconds=5)) == []
    due = db.read_sync(queue.next_due, "t")
    assert due is not None and before + 30 <= due <= time.time() + 30
    db.write_sync(lambda c: queue.enqueue(c, "t", "soon", delay=0.05))
    time.sleep(0.1)
    got = db.write_sync(lambda c: queue.claim(c, "t", "w", limit=5, lease_seconds=5))
    assert [i.ref for i in got] == ["soon"]


def test_enqueue_each_and_enqueue_many_keep_the_order(db: Database) -> None:
    events = [("r1", {"n": 1}), ("r2", {"n": 2}), ("r1", {"n": 3})]
    db.write_sync(lambda c: queue.enqueue_each(c, "t", events))
    db.write_sync(lambda c: queue.enqueue_each(c, "t", [("r1", {"n": 4})]))  # one row
    db.write_sync(lambda c: queue.enqueue_each(c, "t", []))
    assert db.write_sync(lambda c: queue.take_ref(c, "t", "r1")) == [{"n": 1}, {"n": 3}, {"n": 4}]
    assert db.write_sync(lambda c: queue.take_ref(c, "t", "r2")) == [{"n": 2}]
    db.write_sync(lambda c: queue.enqueue_many(c, "u", ["a"]))
    db.write_sync(lambda c: queue.enqueue_many(c, "u", ["b", "c", "d"]))
    got = db.write_sync(lambda c: queue.claim(c, "u", "w", limit=5, lease_seconds=5))
    assert [i.ref for i in got] == ["a", "b", "c", "d"]
    db.write_sync(lambda c: queue.ack_many(c, [got[0].id]))  # one row
    db.write_sync(lambda c: queue.ack_many(c, [got[1].id, got[3].id]))
    assert db.read_sync(queue.depth) == {"u": 1}
    db.write_sync(lambda c: queue.ack_many(c, [got[2].id]))
    assert db.read_sync(queue.depth) == {}


def test_concurrent_claims_never_share_an_item(db: Database) -> None:
    db.write_sync(lambda c: [queue.enqueue(c, "t", str(i)) for i in range(200)])

    async def claimer(owner: str) -> list[str]:
        got: list[str] = []
        while True:
            items = await db.write(lambda c: queue.claim(c, "t", owner, limit=7, lease_seconds=60))
            if not items:
                return got
            got += [i.ref for i in items]

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(claimer(f"w{n}") for n in range(4)))

    results = asyncio.run(main())
    flat = [r for rs in results for r in rs]
    assert sorted(flat, key=int) == [str(i) for i in range(200)]


def test_status_transitions_are_checked(db: Database) -> None:
    row = db.write_sync(
        lambda c: exe_store.create(c, action=ACTION, parameters={}, context={}, user=None)
    )
    row = db.write_sync(lambda c: exe_store.set_status(c, row, Status.SCHEDULED))
    row = db.write_sync(lambda c: exe_store.set_status(c, row, Status.RUNNING))
    row = db.write_sync(lambda c: exe_store.set_status(c, row, Status.SUCCEEDED, result={"ok": 1}))
    with pytest.raises(Conflict, match="already succeeded"):
        db.write_sync(lambda c: exe_store.set_status(c, row, Status.RUNNING))
    stored = db.read_sync(exe_store.get, row["id"])
    assert stored["result"] == {"ok": 1}
    assert [e["status"] for e in stored["log"]] == [
        "requested",
        "scheduled",
        "running",
        "succeeded",
    ]
    assert stored["end_timestamp"] >= stored["start_timestamp"]


def test_many_status_changes_at_once_store_what_each_would(db: Database) -> None:
    # On PostgreSQL several changes are one statement over arrays: JSON
    # (null, numbers, nesting), NULL end times and contexts must come back
    # as one change at a time stores them.
    rows = [
        db.write_sync(
            lambda c: exe_store.create(c, action=ACTION, parameters={}, context={}, user=None)
        )
        for _ in range(4)
    ]
    results = [None, 5, {"nested": [1, "ü", None]}, "text"]
    changed = db.write_sync(
        lambda c: exe_store.set_status_many(
            c,
            [(row, Status.SCHEDULED, UNSET, None) for row in rows[:2]]
            + [(rows[2], Status.CANCELED, results[2], {"why": "test"})]
            + [(rows[3], Status.SCHEDULED, results[3], None)],
        )
    )
    one = db.write_sync(lambda c: exe_store.set_status(c, changed[1], Status.RUNNING))
    done = db.write_sync(
        lambda c: exe_store.set_status_many(
            c, [(changed[0], Status.FAILED, results[0], None), (one, Status.SUCCEEDED, 5, None)]
        )
    )
    stored = db.read_sync(lambda c: exe_store.get_many(c, [r["id"] for r in rows]))
    for new in [*done, changed[2], changed[3]]:
        got = stored[new["id"]]
        for key in ("status", "result", "end_timestamp", "log", "context"):
            assert got[key] == new[key], key
    assert stored[rows[1]["id"]]["result"] == 5
    assert stored[rows[2]["id"]]["context"]["why"] == "test"
    assert stored[rows[2]["id"]]["end_timestamp"] is not None
    assert stored[rows[3]["id"]]["end_timestamp"] is None


def test_group_commit_isolates_a_failing_job(db: Database) -> None:
    async def main() -> list[object]:
        def good(c: sa.Connection, n: int) -> str:
            queue.enqueue(c, "g", str(n))
            return str(n)

        def bad(c: sa.Connection) -> None:
            queue.enqueue(c, "g", "bad")
            raise NotFound("nope")

        jobs = [db.write(good, n) for n in range(20)] + [db.write(bad)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:20] == [str(n) for n in range(20)]
    assert isinstance(results[20], NotFound)
    refs = db.read_sync(lambda c: sorted(r.ref for r in c.execute(sa.select(work.c.ref)).all()))
    assert "bad" not in refs and len(refs) == 20


def test_datastore_secrets_are_encrypted_at_rest(db: Database, tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys.json")
    db.write_sync(
        lambda c: kv.set_value(
            c,
            scope="system",
            user=None,
            name="pw",
            value="hunter2",
            secret=True,
            ttl=None,
            encrypt=ring.encrypt,
        )
    )
    raw = db.read_sync(lambda c: kv.get(c, scope="system", user=None, name="pw"))
    assert raw["value"] != "hunter2" and "hunter2" not in raw["value"]
    assert ring.decrypt(raw["value"]) == "hunter2"
    old_value = raw["value"]
    ring.add_key()
    db.write_sync(lambda c: kv.reencrypt_all(c, ring.decrypt, ring.encrypt))
    ring.retire_others()
    new = db.read_sync(lambda c: kv.get(c, scope="system", user=None, name="pw"))
    assert new["value"] != old_value and ring.decrypt(new["value"]) == "hunter2"
    # What masking reads: every secret's ciphertext, and a cheap version of them.
    assert db.read_sync(kv.secret_ciphertexts) == [new["value"]]
    before = db.read_sync(kv.secrets_version)
    assert before[0] == 1
    db.write_sync(lambda c: kv.delete(c, scope="system", user=None, name="pw"))
    assert db.read_sync(kv.secrets_version) != before
    assert db.read_sync(kv.secret_ciphertexts) == []


def test_datastore_ttl_and_scopes(db: Database, tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys.json")
    db.write_sync(
        lambda c: kv.set_value(
            c,
            scope="user",
            user="alice",
            name="k",
            value="a",
            secret=False,
            ttl=None,
            encrypt=ring.encrypt,
        )
    )
    db.write_sync(
        lambda c: kv.set_value(
            c,
            scope="system",
            user=None,
            name="short",
            value="v",
            secret=False,
            ttl=0.2,
            encrypt=ring.encrypt,
        )
    )
    with pytest.raises(NotFound):
        db.read_sync(lambda c: kv.get(c, scope="user", user="bob", name="k"))
    assert db.read_sync(lambda c: kv.get(c, scope="user", user="alice", name="k"))["value"] == "a"
    time.sleep(0.3)
    with pytest.raises(NotFound):
        db.read_sync(lambda c: kv.get(c, scope="system", user=None, name="short"))
    assert db.write_sync(kv.delete_expired) == 1


def test_api_keys_and_tokens_are_stored_hashed(db: Database) -> None:
    key, row = db.write_sync(
        lambda c: (auth.create_user(c, "u", "pw"), auth.create_api_key(c, "u"))[1]
    )
    assert key not in str(row["key_hash"])
    assert db.read_sync(auth.user_for_api_key, key) == "u"
    assert db.read_sync(auth.user_for_api_key, key + "x") is None
    tok = db.write_sync(lambda c: auth.create_token(c, "u", 60))
    assert db.read_sync(auth.user_for_token, tok["token"]) == "u"
    user = db.read_sync(auth.get_user, "u")
    assert auth.verify_password("pw", user["password_hash"])
    assert not auth.verify_password("wrong", user["password_hash"])


def test_migrations_build_the_schema_the_code_declares(db: Database) -> None:
    # A column added to tables.py without a migration (or the other way
    # round) would only show on a real upgrade; compare them here.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from squall.store.tables import metadata

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_log_is_copied_into_the_database_file_off_the_writer(tmp_path: Path) -> None:
    """A few small commits never fill the log enough for a commit to copy it
    (1,000 pages): the checkpoint thread does, within a fraction of a second."""
    path = tmp_path / "squall.db"
    db = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(db.write_engine)
        db.write_sync(lambda c: queue.enqueue_many(c, "t", ["a", "b", "c"]))
        deadline = time.time() + 5
        while True:
            # The database file alone, without its log: what was copied.
            copy = tmp_path / f"copy-{time.time_ns()}.db"
            copy.write_bytes(path.read_bytes())
            with sqlite3.connect(copy) as raw:
                try:
                    found = raw.execute("SELECT count(*) FROM work").fetchone()[0]
                except sqlite3.OperationalError:  # the table itself not copied yet
                    found = 0
            if found == 3:
                break
            assert time.time() < deadline, "the log was not copied into the database file"
            time.sleep(0.05)
    finally:
        db.close()
