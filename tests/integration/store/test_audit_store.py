"""The audit trail on real SQLite and PostgreSQL: append-only in the
database, sealed into a hash chain, tampering found."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from squall.services import audit as sealer
from squall.store import audit, migrate
from squall.store.db import Database
from squall.store.tables import audit as audit_table


def write(db: Database, count: int, actor: str = "alice") -> None:
    def add(conn: sa.Connection) -> None:
        for i in range(count):
            audit.record(
                conn,
                actor=actor,
                kind="api",
                action=f"POST /api/v1/rules/r{i}",
                target=f"r{i}",
                details={"status": 201, "n": i, "float": 0.1 * i},
            )

    db.write_sync(add)


def test_records_are_sealed_into_a_chain_that_verifies(db: Database) -> None:
    write(db, 10)
    assert db.read_sync(audit.verify)["unsealed"] == 10
    assert db.write_sync(audit.seal) == 10
    write(db, 3, actor="bob")
    assert db.write_sync(audit.seal) == 3
    result = db.read_sync(audit.verify)
    assert result["ok"] and result["records"] == 13 and result["unsealed"] == 0
    assert result["head"]["position"] == 13
    rows, total = db.read_sync(lambda c: audit.query(c, {"actor": "bob"}, limit=2))
    assert total == 3 and [r["actor"] for r in rows] == ["bob", "bob"]
    assert rows[0]["seq"] > rows[1]["seq"]  # newest first


def test_the_sealer_seals_a_backlog_in_short_turns(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sealer, "TURN", 2)
    write(db, 5)
    assert asyncio.run(sealer.AuditSealer(db).seal_round()) == 5
    result = db.read_sync(audit.verify)
    assert result["ok"] and result["records"] == 5 and result["unsealed"] == 0


def test_the_database_refuses_to_change_or_delete_a_record(db: Database) -> None:
    write(db, 2)
    db.write_sync(audit.seal)
    for change in (
        audit_table.update().values(actor="mallory"),
        audit_table.update().values(hash="0" * 64),
        audit_table.delete(),
    ):
        with pytest.raises(Exception, match=r"append-only|refused"):
            db.write_sync(lambda c, change=change: c.execute(change))
    # Unsealed records cannot be edited either, only sealed.
    write(db, 1)
    with pytest.raises(Exception, match=r"append-only|refused"):
        db.write_sync(
            lambda c: c.execute(
                audit_table.update().where(audit_table.c.hash.is_(None)).values(actor="x")
            )
        )
    assert db.read_sync(audit.verify)["ok"]


def _drop_guards(conn: sa.Connection) -> None:
    """What someone with full database access could do first."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE audit DISABLE TRIGGER USER"))
    else:
        conn.execute(sa.text("DROP TRIGGER audit_no_delete"))
        conn.execute(sa.text("DROP TRIGGER audit_seal_only"))


def test_tampering_past_the_guards_is_found(db: Database) -> None:
    write(db, 6)
    db.write_sync(audit.seal)
    db.write_sync(_drop_guards)
    db.write_sync(
        lambda c: c.execute(
            audit_table.update().where(audit_table.c.position == 4).values(actor="mallory")
        )
    )
    result = db.read_sync(audit.verify)
    assert not result["ok"] and result["first_bad"] == 4

    db.write_sync(
        lambda c: c.execute(
            audit_table.update().where(audit_table.c.position == 4).values(actor="alice")
        )
    )
    assert db.read_sync(audit.verify)["ok"]
    db.write_sync(lambda c: c.execute(audit_table.delete().where(audit_table.c.position == 2)))
    result = db.read_sync(audit.verify)
    assert not result["ok"] and result["first_bad"] == 2 and "missing" in result["problem"]


@pytest.mark.postgres
def test_one_sealer_at_a_time_on_postgresql(pg_url: str) -> None:
    first, second = Database(pg_url), Database(pg_url)
    migrate.upgrade(first.write_engine)
    try:
        write(first, 5)
        with first.write_engine.connect() as conn, conn.begin():
            assert audit.seal(conn) == 5  # holds the sealing lock until commit
            with second.write_engine.connect() as other, other.begin():
                assert audit.seal(other) == 0  # skips this round
        assert first.read_sync(audit.verify)["ok"]
    finally:
        first.close()
        second.close()
