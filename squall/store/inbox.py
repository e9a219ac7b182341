"""The webhook inbox: a SQLite file of its own (``inbox.db`` in the data
directory) where ``squall intake`` keeps the webhook calls it has answered.

SQLite lets one process write a file at a time. With the intake writing its
own file, a webhook's answer waits for nothing but its own commit, never for
the rules engine's or the workers' transactions in the main database, and
the intake can run in a process (and on a core) of its own.

``squall up`` moves what the inbox holds into the main database. Each row
has a sequence number that only grows (AUTOINCREMENT: never reused, even
after the rows before it are deleted); the main database keeps, per inbox,
the last number it has taken, in the same transaction as what it made of
the rows. So a crash on either side loses nothing and takes nothing twice.
The intake deletes the rows up to that number now and then.

The inbox file is read and written with plain ``sqlite3``: a few
statements and no schema history to speak of. The marks live in the main
database (``inbox_marks``).
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.store import fast
from squall.store.tables import inbox_marks

FILE_NAME = "inbox.db"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

Record = tuple[int, str, Any]  # (seq, kind, data)


def path_in(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the inbox, made (with its identity) if it is new."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives the process being killed (what "answered 202
    # means stored" asks), as in the main database.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA:
            conn.execute(statement)
        # A new file is a new inbox: marks kept for an older one must not apply.
        conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('id', ?)", (secrets.token_hex(8),)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return conn


def identity(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE name = 'id'").fetchone()
    return str(row[0])


def append(conn: sqlite3.Connection, records: list[tuple[str, Any]]) -> None:
    """Store ``(kind, data)`` records in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO inbox (kind, data) VALUES (?, ?)",
            [(kind, orjson.dumps(data)) for kind, data in records],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def after(conn: sqlite3.Connection, mark: int, limit: int) -> list[Record]:
    """Records past ``mark``, oldest first."""
    rows = conn.execute(
        "SELECT seq, kind, data FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?", (mark, limit)
    ).fetchall()
    return [(seq, kind, orjson.loads(data)) for seq, kind, data in rows]


def prune(conn: sqlite3.Connection, mark: int) -> int:
    """Delete the records up to ``mark`` (taken into the main database)."""
    return conn.execute("DELETE FROM inbox WHERE seq <= ?", (mark,)).rowcount


# -- the main database's side ---------------------------------------------------


def mark(conn: Connection, inbox: str) -> int:
    """The last sequence number of ``inbox`` taken into this database."""
    seq = conn.execute(
        sa.select(inbox_marks.c.seq).where(inbox_marks.c.inbox == inbox)
    ).scalar_one_or_none()
    return int(seq or 0)


_SET_MARK = fast.Statement(
    sa.update(inbox_marks)
    .where(inbox_marks.c.inbox == sa.bindparam("b_inbox"))
    .values(seq=sa.bindparam("b_seq"))
)


def set_mark(conn: Connection, inbox: str, seq: int) -> None:
    # Set with every batch taken: the quick statement.
    if not _SET_MARK.many(conn, [{"b_inbox": inbox, "b_seq": seq}]):
        conn.execute(sa.insert(inbox_marks).values(inbox=inbox, seq=seq))
