"""The webhook inbox: sequence numbers never reused, an identity per file,
and a mark that moves only with the transaction that took the records."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from squall.services.inbox import InboxReader
from squall.store import inbox, migrate
from squall.store.db import Database


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
