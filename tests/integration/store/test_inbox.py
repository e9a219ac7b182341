"""The webhook inbox: sequence numbers never reused, an identity per file,
a mark that moves only with the transaction that took the records, and a
call the rules engine fails on kept (as failed) without holding up the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from squall.crypto import KeyRing
from squall.services.bus import Bus
from squall.services.inbox import InboxReader
from squall.services.rules_engine import RulesEngine
from squall.store import inbox, migrate
from squall.store.db import Database
from squall.store.tables import trigger_instances
from squall.store.triggers import PROCESSED, PROCESSING_FAILED, ensure_builtin_types


def test_sequence_numbers_grow_past_pruned_records(tmp_path: Path) -> None:
    conn = inbox.connect(tmp_path / "inbox.db")
    try:
        inbox.append(conn, [("accepted", {"n": 1}), ("rejected", {"n": 2})])
        first = inbox.after(conn, 0, 10)
        assert [(kind, data) for _seq, kind, data in first] == [
            ("accepted", {"n": 1}),
            ("rejected", {"n": 2}),
        ]
        assert inbox.prune(conn, first[-1][0]) == 2
        inbox.append(conn, [("accepted", {"n": 3})])
        (later,) = inbox.after(conn, 0, 10)
        # All earlier rows gone: a reused number would fall at or below the mark.
        assert later[0] > first[-1][0] and later[2] == {"n": 3}
        assert inbox.after(conn, later[0], 10) == []
    finally:
        conn.close()


def test_an_inbox_keeps_its_identity_and_a_new_file_gets_another(tmp_path: Path) -> None:
    one = inbox.connect(tmp_path / "a.db")
    again = inbox.connect(tmp_path / "a.db")
    other = inbox.connect(tmp_path / "b.db")
    try:
        assert inbox.identity(one) == inbox.identity(again) != inbox.identity(other)
    finally:
        for conn in (one, again, other):
            conn.close()


def test_the_mark_moves_only_with_its_transaction(tmp_path: Path) -> None:
    # squall up reads an inbox on SQLite only.
    db = Database(f"sqlite:///{tmp_path / 'squall.db'}")
    migrate.upgrade(db.write_engine)
    reader = InboxReader(tmp_path / "inbox.db")
    writer = inbox.connect(tmp_path / "inbox.db")
    try:
        inbox.append(writer, [("accepted", {"n": n}) for n in range(5)])

        def take_then_fail(conn: sa.Connection) -> None:
            assert len(reader.take(conn, 3)) == 3
            raise RuntimeError("the step failed after taking")

        with pytest.raises(RuntimeError):
            db.write_sync(take_then_fail)
        # Rolled back: the same records are taken again, then the rest.
        first = db.write_sync(lambda conn: reader.take(conn, 3))
        rest = db.write_sync(lambda conn: reader.take(conn, 3))
        assert [d["n"] for _s, _k, d in first] == [0, 1, 2]
        assert [d["n"] for _s, _k, d in rest] == [3, 4]
        assert db.write_sync(lambda conn: reader.take(conn, 3)) == []
        assert db.read_sync(inbox.mark, reader.identity) == rest[-1][0]
    finally:
        writer.close()
        reader.close()
        db.close()


def test_a_call_whose_handling_fails_is_kept_failed_and_the_rest_go_on(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'squall.db'}")
    migrate.upgrade(db.write_engine)
    db.write_sync(ensure_builtin_types)
    reader = InboxReader(tmp_path / "inbox.db")
    writer = inbox.connect(tmp_path / "inbox.db")
    engine = RulesEngine(db, Bus(), KeyRing(tmp_path / "keys.json"), reader)
    handle = engine._handle

    def failing(conn: Any, index: Any, event: Any, *rest: Any) -> Any:
        if event.payload["body"].get("poison"):
            raise RuntimeError("a bug met this event")
        return handle(conn, index, event, *rest)

    engine._handle = failing  # type: ignore[method-assign]
    try:
        calls = [{"poison": True}, {"poison": False}]
        inbox.append(
            writer,
            [
                ("accepted", {"events": [["core.st2.webhook", {"body": b}, {}]], "at": 1.0})
                for b in calls
            ],
        )
        with pytest.raises(RuntimeError):
            db.write_sync(engine.step)
        db.write_sync(engine.quarantine_one)  # the poisoned call, alone
        assert db.write_sync(engine.step)  # then the next one
        rows = db.read_sync(
            lambda conn: conn.execute(
                sa.select(trigger_instances.c.payload, trigger_instances.c.status)
            ).all()
        )
        status = {row.payload["body"]["poison"]: row.status for row in rows}
        assert status == {True: PROCESSING_FAILED, False: PROCESSED}
        assert db.write_sync(lambda conn: reader.take(conn, 10)) == []
    finally:
        writer.close()
        reader.close()
        db.close()
