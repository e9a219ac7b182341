"""The database: engines, and the threads that run transactions.

Repositories are plain synchronous functions ``fn(conn, ...)`` that take an
explicit SQLAlchemy connection and have no side effects beyond it. Services
call them through :meth:`Database.read` and :meth:`Database.write`, which run
the whole transaction on a worker thread: one hop off the event loop per
transaction, not per statement.

SQLite allows one writer at a time, so on SQLite every write goes through one
thread and one connection, and writes that queue up while another commits are
committed together (group commit). PostgreSQL takes concurrent writers, so
there a small pool of threads runs them side by side.

A repository that creates work for somebody else calls :func:`after_commit`;
the effect (wake a queue consumer, publish an event) is delivered on the event
loop only once the transaction has committed, never for rolled-back work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from squall.errors import Conflict, SquallError, StoreUnavailable
from squall.store import fast

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

Effect = tuple[str, Any]  # (kind, payload), e.g. ("wake", "run") or ("event", {...})
EffectHandler = Callable[[list[Effect]], None]

_MAX_GROUP = 256
# SQLite: how often a thread of its own copies the write-ahead log into the
# database file (see checkpoint_loop).
CHECKPOINT_SECONDS = 0.1


def after_commit(conn: Connection, kind: str, payload: Any) -> None:
    """Deliver ``(kind, payload)`` to the effect handler once ``conn`` commits."""
    conn.info.setdefault("squall_effects", []).append((kind, payload))


def bulk(rows: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """``conn.execute`` parameters for ``rows``: one row runs as a plain
    execute, which costs SQLAlchemy a third less than an executemany of one
    (the usual case on the per-host path: one execution, one host)."""
    return rows[0] if len(rows) == 1 else rows


def tx_cache(conn: Connection) -> dict[Any, Any]:
    """A dict that lives as long as the current transaction: for reads that
    many jobs of one group commit repeat (the same action, its policies)."""
    cache: dict[Any, Any] = conn.info.setdefault("squall_tx_cache", {})
    return cache


def _new_transaction(conn: Connection) -> None:
    conn.info.pop("squall_effects", None)
    conn.info.pop("squall_tx_cache", None)


def _take_effects(conn: Connection) -> list[Effect]:
    effects: list[Effect] = conn.info.pop("squall_effects", [])
    return effects


def page(
    conn: Connection,
    table: sa.Table,
    where: list[Any],
    order_by: list[Any],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``table``'s rows matching ``where``, and how many match in all."""
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()
    rows = conn.execute(
        sa.select(table).where(*where).order_by(*order_by).limit(limit).offset(offset)
    ).all()
    return [dict(r._mapping) for r in rows], int(total or 0)


def translate(exc: BaseException) -> SquallError:
    """Map a database driver error to Squall's error tree."""
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict(f"that conflicts with what is stored: {exc.orig}")
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    ):
        return StoreUnavailable(f"the database is unavailable: {exc.orig}")
    # Anything else is a bug on our side: say so without showing SQL.
    log.error("database error: %s", exc)
    return SquallError("the database refused the request; the server log has the details")


class Database:
    def __init__(self, url: str, *, readers: int = 4, writes: bool = True) -> None:
        """``writes=False``: reads only, no writer (``squall intake`` reads
        credentials and webhooks from a database another process writes)."""
        self.url = url
        self.writes = writes
        self.is_sqlite = url.startswith("sqlite")
        self._effect_handler: EffectHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Sends a transaction's effects to other processes before it commits
        # (PostgreSQL NOTIFY, see store/notify.py); None in one process.
        self.publisher: Callable[[Connection, list[Effect]], None] | None = None
        common: dict[str, Any] = {
            "json_serializer": fast.dump_json,
            "json_deserializer": fast.load_json,
        }
        if self.is_sqlite:
            self.engine = sa.create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=readers + 1,
                max_overflow=4,
                **common,
            )
            _sqlite_setup(self.engine, immediate=False)
            # The single writer connection begins with BEGIN IMMEDIATE so a
            # transaction never fails half-way on a lock upgrade.
            self.write_engine = sa.create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=1,
                max_overflow=0,
                **common,
            )
            _sqlite_setup(self.write_engine, immediate=True)
            self._stopping = threading.Event()
            self._checkpointer = threading.Thread(
                target=checkpoint_loop,
                args=(self.write_engine.url.database, self._stopping),
                name="db-checkpoint",
                daemon=True,
            )
            if writes:
                self._checkpointer.start()
        else:
            self.engine = sa.create_engine(
                url,
                pool_size=readers + 4,
                max_overflow=8,
                pool_pre_ping=True,
                # While the server is down or failing over, fail a request
                # fast (503) rather than hang on a connection attempt.
                connect_args={"connect_timeout": 5},
                **common,
            )
            self.write_engine = self.engine
            event.listen(self.engine, "before_cursor_execute", fast.flush_before_execute)
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="db-read")
        # One writer thread per process, on both databases: the transactions
        # waiting when it is free commit together (group commit). SQLite has
        # one writer anyway; on PostgreSQL a commit per API call or engine
        # step costs a WAL flush and several round trips each, and this
        # process's Python, not the server, is what runs out first.
        self._write_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer_thread = threading.Thread(
            target=self._writer_loop, name="db-write", daemon=True
        )
        if writes:
            self._writer_thread.start()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def set_effect_handler(self, handler: EffectHandler | None) -> None:
        """Effects are delivered on the loop that is running when this is called."""
        self._effect_handler = handler
        self._loop = asyncio.get_running_loop() if handler else None

    # -- running transactions -------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_sync, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.writes:
            raise SquallError("this process only reads the database")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._write_queue.put((fn, args, loop, fut))
        return await fut

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._read_sync(fn, args)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """For start-up, tools and tests: blocks the calling thread."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._write_queue.put((fn, args, None, done))
        return done.result()

    def _read_sync(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            with self.engine.connect() as conn, conn.begin():
                _new_transaction(conn)
                return fn(conn, *args)
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def _deliver(self, effects: list[Effect]) -> None:
        if not effects or self._effect_handler is None:
            return
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._effect_handler, effects)

    # -- the writer thread ------------------------------------------------------

    def _writer_connection(self, conn: Connection | None, idle: float) -> Connection:
        """The writer's connection, checked after a quiet spell: a database
        server restarted meanwhile costs a reconnect, not a failed batch."""
        if conn is not None and not (conn.closed or conn.invalidated):
            if self.is_sqlite or idle < 1.0:
                return conn
            try:
                conn.exec_driver_sql("SELECT 1")
                conn.rollback()
                return conn
            except sa.exc.SQLAlchemyError:
                conn.invalidate()
                conn.close()
        return self.write_engine.connect()

    def _writer_loop(self) -> None:
        conn: Connection | None = None
        last = time.monotonic()
        while True:
            job = self._write_queue.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < _MAX_GROUP:
                try:
                    more = self._write_queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write_queue.put(None)
                    break
                batch.append(more)
            try:
                conn = self._writer_connection(conn, time.monotonic() - last)
                self._run_group(conn, batch)
                last = time.monotonic()
            except Exception as exc:  # the connection itself failed: fail the batch
                log.exception("database writer failed")
                err = translate(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else exc
                _settle([(job, None, err) for job in batch])
                if conn is not None:
                    conn.invalidate()
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _run_group(self, conn: Connection, batch: list[Any]) -> None:
        _settle(self._commit_group(conn, batch))

    def _commit_group(self, conn: Connection, batch: list[Any]) -> list[Any]:
        """Run ``batch`` in one transaction; ``(job, result, error)`` for each."""
        _new_transaction(conn)
        results: list[Any] = []
        tx = conn.begin()
        if not self.is_sqlite:
            fast.defer(conn)  # a round trip per statement is what the writer waits on
        try:
            for fn, args, _loop, _fut in batch:
                results.append(fn(conn, *args))
            effects = conn.info.get("squall_effects")
            if effects and self.publisher is not None:
                # Sent inside the transaction: delivered only if it commits.
                self.publisher(conn, effects)
            fast.flush(conn)
            fast.discard(conn)
            tx.commit()
        except Exception as exc:
            fast.discard(conn)
            tx.rollback()
            _new_transaction(conn)
            if len(batch) == 1:
                err = translate(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else exc
                return [(batch[0], None, err)]
            # One job failed: run each alone so the others still commit.
            return [outcome for job in batch for outcome in self._commit_group(conn, [job])]
        self._deliver(_take_effects(conn))
        return [(job, result, None) for job, result in zip(batch, results, strict=True)]

    def close(self) -> None:
        if self.is_sqlite and self.writes:
            self._stopping.set()
            self._checkpointer.join(timeout=10)
        if self.writes:
            self._write_queue.put(None)
            self._writer_thread.join(timeout=10)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


def checkpoint_loop(path: str | None, stopping: threading.Event) -> None:
    """SQLite: copy the write-ahead log into the database file as it grows,
    off the writer, until ``stopping`` is set.

    SQLite does it in the commit that finds the log past 1,000 pages,
    with two fsyncs: under load the writer (and every webhook waiting on
    it) stopped for about 10 ms several times a second. Passive
    checkpoints here never block the writer or the readers; the commit's
    own checkpoint then finds the log all but copied already, and it is
    still that one which lets the writer start the log over, so it never
    grows past its usual size."""
    if not path or path == ":memory:":
        return
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        while not stopping.wait(CHECKPOINT_SECONDS):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.warning("checkpointing %s failed: %s", path, exc)
    finally:
        conn.close()


def _settle(outcomes: list[Any]) -> None:
    """Complete the futures of finished jobs: one wake-up per event loop for
    the whole group, rather than one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for (_fn, _args, loop, fut), result, exc in outcomes:
        if loop is None:  # a blocking caller's concurrent future
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
        else:
            by_loop.setdefault(loop, []).append((fut, result, exc))
    for loop, items in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_complete, items)


def _complete(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


def _sqlite_setup(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Keep hot pages in memory: the queue and recent executions are read
        # and rewritten constantly.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
