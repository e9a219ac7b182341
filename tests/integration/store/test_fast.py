"""Statements on the driver's cursor give what SQLAlchemy gives, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.errors import Conflict, SquallError
from squall.store import fast
from squall.store.db import Database
from squall.store.tables import kv, work

_COLUMNS = ["topic", "ref", "payload", "available_at", "lease_owner", "lease_expires", "attempts"]
_INSERT = fast.Statement(work.insert(), column_keys=[*_COLUMNS, "created_at"])
_BY_REF = fast.Statement(
    sa.select(work.c.ref, work.c.payload, work.c.attempts)
    .where(work.c.ref == sa.bindparam("b_ref"))
    .order_by(work.c.id)
)
_BUMP = fast.Statement(
    work.update()
    .where(work.c.ref == sa.bindparam("b_ref"))
    .values(attempts=work.c.attempts + 2)  # a literal in the statement
    .returning(work.c.ref, work.c.attempts)
)


def _item(ref: str, payload: Any) -> dict[str, Any]:
    return {
        "topic": "t",
        "ref": ref,
        "payload": payload,
        "available_at": 1.5,
        "lease_owner": None,
        "lease_expires": None,
        "attempts": 0,
        "created_at": 2.5,
    }


def test_rows_match_what_sqlalchemy_reads(db: Database) -> None:
    payloads = [{"a": [1, 2.5, True, None], "ü": "ß"}, None, [], "text", [7], 5, 2.5, "12"]

    def write(conn: Connection) -> None:
        _INSERT.many(conn, [_item(f"r{i}", p) for i, p in enumerate(payloads)])
        _INSERT.many(conn, [_item("one", {"x": 1})])  # a single row, executed alone

    db.write_sync(write)

    def read(conn: Connection) -> tuple[list[Any], list[Any]]:
        fast_rows = [
            row for i in range(len(payloads)) for row in _BY_REF.rows(conn, {"b_ref": f"r{i}"})
        ]
        sa_rows = [
            tuple(r)
            for i in range(len(payloads))
            for r in conn.execute(_BY_REF.stmt, {"b_ref": f"r{i}"}).all()
        ]
        return fast_rows, sa_rows

    fast_rows, sa_rows = db.read_sync(read)
    assert fast_rows == sa_rows
    assert [p for _, p, _ in fast_rows] == payloads
    assert db.read_sync(_BY_REF.columns) == ("ref", "payload", "attempts")
    one = db.read_sync(lambda conn: _BY_REF.dicts(conn, {"b_ref": "one"}))
    assert one == [{"ref": "one", "payload": {"x": 1}, "attempts": 0}]


def test_returning_and_literals(db: Database) -> None:
    db.write_sync(lambda conn: _INSERT.many(conn, [_item("r", None)]))
    assert db.write_sync(lambda conn: _BUMP.rows(conn, {"b_ref": "r"})) == [("r", 2)]
    assert db.write_sync(lambda conn: _BUMP.dicts(conn, {"b_ref": "r"})) == [
        {"ref": "r", "attempts": 4}
    ]
    assert db.write_sync(lambda conn: _BUMP.rows(conn, {"b_ref": "nothing"})) == []


def test_booleans_come_back_as_booleans(db: Database) -> None:
    def write(conn: Connection) -> None:
        conn.execute(
            kv.insert(),
            [
                {
                    "scope": "system",
                    "owner": "",
                    "name": "a",
                    "value": "1",
                    "secret": True,
                    "updated_at": 1.0,
                },
                {
                    "scope": "system",
                    "owner": "",
                    "name": "b",
                    "value": "2",
                    "secret": False,
                    "updated_at": 1.0,
                },
            ],
        )

    db.write_sync(write)
    stmt = fast.Statement(sa.select(kv.c.name, kv.c.secret).order_by(kv.c.name))
    assert db.read_sync(stmt.rows) == [("a", True), ("b", False)]


def test_a_failing_statement_rolls_back_with_its_transaction(db: Database) -> None:
    def write(conn: Connection) -> None:
        _INSERT.many(conn, [_item("kept-out", None)])
        raise RuntimeError("the step fails")

    with pytest.raises(RuntimeError):
        db.write_sync(write)
    assert db.read_sync(lambda conn: _BY_REF.rows(conn, {"b_ref": "kept-out"})) == []


def test_missing_parameters_and_expanding_ones_are_refused(db: Database) -> None:
    with pytest.raises(KeyError):
        db.read_sync(lambda conn: _BY_REF.rows(conn, {}))
    expanding = fast.Statement(
        sa.select(work.c.id).where(work.c.ref.in_(sa.bindparam("b_refs", expanding=True)))
    )
    with pytest.raises(TypeError, match="expanding"):
        db.read_sync(lambda conn: expanding.rows(conn, {"b_refs": ["a"]}))


def test_driver_errors_come_as_sqlalchemy_errors(db: Database) -> None:
    # Wrapped as SQLAlchemy wraps them, Database translates them into the
    # errors users see: a Conflict here, not a driver's traceback.
    unique = fast.Statement(
        kv.insert(), column_keys=["scope", "owner", "name", "value", "secret", "updated_at"]
    )
    row = {"scope": "system", "owner": "", "name": "k", "value": "v", "secret": False}
    db.write_sync(lambda conn: unique.many(conn, [{**row, "updated_at": 1.0}]))
    with pytest.raises(Conflict, match="conflicts with what is stored"):
        db.write_sync(lambda conn: unique.many(conn, [{**row, "updated_at": 2.0}]))
    bad = fast.Statement(sa.select(sa.literal_column("no_such_column")).select_from(kv))
    with pytest.raises(SquallError):  # as SQLAlchemy would classify it for that driver
        db.read_sync(bad.rows)


_HELD = fast.Statement(work.insert(), column_keys=[*_COLUMNS, "created_at"], deferrable=True)


def test_deferred_inserts_are_seen_by_the_statements_after_them(db: Database) -> None:
    held_back: list[int] = []

    def write(conn: Connection) -> list[Any]:
        _HELD.many(conn, [_item("held-1", {"n": 1}), _item("held-2", None)])
        held_back.append(len(conn.info.get("squall_deferred") or []))
        seen = conn.execute(sa.select(work.c.ref).where(work.c.ref.like("held-%"))).all()
        _HELD.many(conn, [_item("held-3", [3])])
        return [*(r.ref for r in seen), *(r[0] for r in _BY_REF.rows(conn, {"b_ref": "held-3"}))]

    assert db.write_sync(write) == ["held-1", "held-2", "held-3"]
    # Held back only on PostgreSQL, where each statement is a round trip.
    assert held_back == [1 if db.dialect == "postgresql" else 0]
    assert db.read_sync(lambda conn: _BY_REF.rows(conn, {"b_ref": "held-2"})) == [
        ("held-2", None, 0)
    ]


def test_an_error_in_a_deferred_insert_fails_its_transaction(db: Database) -> None:
    unique = fast.Statement(
        kv.insert(),
        column_keys=["scope", "owner", "name", "value", "secret", "updated_at"],
        deferrable=True,
    )
    row = {"scope": "system", "owner": "", "name": "d", "value": "v", "secret": False}
    db.write_sync(lambda conn: unique.many(conn, [{**row, "updated_at": 1.0}]))

    def write(conn: Connection) -> None:
        _HELD.many(conn, [_item("not-kept", None)])
        unique.many(conn, [{**row, "updated_at": 2.0}])  # the same key again

    with pytest.raises(Conflict, match="conflicts with what is stored"):
        db.write_sync(write)
    assert db.read_sync(lambda conn: _BY_REF.rows(conn, {"b_ref": "not-kept"})) == []
    db.write_sync(lambda conn: _HELD.many(conn, [_item("after", None)]))  # the writer goes on
    assert len(db.read_sync(lambda conn: _BY_REF.rows(conn, {"b_ref": "after"}))) == 1
