"""Running something once across processes, with PostgreSQL advisory locks.

A process keeps one dedicated session (:class:`LockSession`) for its advisory
locks. A session-level advisory lock lives exactly as long as the session
that took it: when a process dies, even by ``kill -9``, its connection closes
and PostgreSQL releases every lock it held, so another process can take over
within a poll interval. TCP keepalives cover a machine that vanishes without
closing its connections.

Locks are named by a kind and a name (two 32-bit keys), which also lets
anyone count the live holders of a kind in ``pg_locks`` (the live workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from squall.store.notify import psycopg_dsn

log = logging.getLogger(__name__)

# Lock kinds (the first key): one per use, so holders of a kind can be counted.
SINGLETON = 0x5A110001
WORKER = 0x5A110002  # held by every live `squall worker` (or `squall up`) process
SENSORS = 0x5A110003  # held by every live `squall sensors` process
SENSOR = 0x5A110004  # held by the process that runs one sensor

POLL_SECONDS = 1.0  # how often a follower tries to take over, and a leader checks its session


def key(name: str) -> int:
    """A stable signed 32-bit key for ``name``."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class LockLost(Exception):
    """The lock session dropped: whatever it held is no longer ours."""


class LockSession:
    """One dedicated autocommit connection holding this process's advisory locks."""

    def __init__(self, url: str) -> None:
        self.dsn = psycopg_dsn(url)
        self._conn: Any = None
        self._use = asyncio.Lock()
        self.generation = 0  # bumped on every new connection: older locks are gone

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=5,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                application_name="squall-locks",
            )
            self.generation += 1
        return self._conn

    async def _query(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        import psycopg

        async with self._use:
            try:
                conn = await self._connection()
                cur = await conn.execute(sql, params)
                return await cur.fetchone()
            except (psycopg.Error, OSError) as exc:
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                self._conn = None
                raise LockLost(str(exc)) from exc

    async def try_lock(self, kind: int, name: str) -> bool:
        row = await self._query("SELECT pg_try_advisory_lock(%s, %s)", (kind, key(name)))
        return bool(row and row[0])

    async def unlock(self, kind: int, name: str) -> None:
        with contextlib.suppress(LockLost):
            await self._query("SELECT pg_advisory_unlock(%s, %s)", (kind, key(name)))

    async def check(self) -> int:
        """Raise LockLost unless the session is alive; its generation."""
        await self._query("SELECT 1")
        return self.generation

    async def holders(self, kind: int) -> int:
        """How many locks of ``kind`` are held right now, by anyone."""
        row = await self._query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objsubid = 2 AND granted",
            (kind & 0xFFFFFFFF,),
        )
        return int(row[0]) if row else 0

    async def close(self) -> None:
        async with self._use:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None


async def hold(session: LockSession, kind: int, name: str) -> None:
    """Hold a lock of ``kind`` for the life of the task (e.g. to be counted
    as a live worker); re-take it after the session reconnects."""
    generation = -1
    while True:
        try:
            if session.generation != generation or generation < 0:
                if await session.try_lock(kind, name):
                    generation = session.generation
            else:
                await session.check()
        except LockLost as exc:
            log.warning("lock session lost (%s); reconnecting", exc)
            generation = -1
        await asyncio.sleep(POLL_SECONDS * 5)


async def singleton(session: LockSession, name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run()`` in the one process that holds the lock ``name``; the
    others wait to take over. If the session drops, the lock is gone too, so
    the service stops here and competes for the lock again."""
    announced = False
    while True:
        try:
            got = await session.try_lock(SINGLETON, name)
        except LockLost:
            got = False
        if not got:
            if not announced:
                log.info("%s runs in another process; standing by", name)
                announced = True
            await asyncio.sleep(POLL_SECONDS)
            continue
        announced = False
        generation = session.generation
        log.info("%s: this process leads", name)
        task: asyncio.Future[None] = asyncio.ensure_future(run())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=POLL_SECONDS)
                if task.done():
                    break
                try:
                    if await session.check() != generation:
                        raise LockLost("the session reconnected")
                except LockLost as exc:
                    log.warning("%s: lost its lock (%s); stopping here", name, exc)
                    break
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s; restarting", name, task.exception())
        await session.unlock(SINGLETON, name)
        await asyncio.sleep(POLL_SECONDS)


class SensorShare:
    """Which sensors this `squall sensors` process runs: each sensor is owned
    through its own advisory lock, and a process takes at most its fair share
    (sensors / live sensor processes, rounded up), so sensors spread out, and
    a dead process's sensors are taken over at the next round."""

    def __init__(self, session: LockSession) -> None:
        self.session = session
        self.owned: set[str] = set()
        self._generation = -1

    async def choose(self, wanted: list[str]) -> set[str]:
        try:
            generation = await self.session.check()
            if generation != self._generation:
                self.owned.clear()  # a new session holds none of the old locks
                self._generation = generation
            processes = max(1, await self.session.holders(SENSORS))
            for ref in sorted(self.owned - set(wanted)):
                await self.session.unlock(SENSOR, ref)
                self.owned.discard(ref)
            share = -(-len(wanted) // processes)
            # Hand back what is over the share, for a process that joined later.
            for ref in sorted(self.owned, key=key)[share:]:
                await self.session.unlock(SENSOR, ref)
                self.owned.discard(ref)
            for ref in sorted(set(wanted) - self.owned, key=key):
                if len(self.owned) >= share:
                    break
                if await self.session.try_lock(SENSOR, ref):
                    self.owned.add(ref)
        except LockLost as exc:
            log.warning("sensor locks lost (%s); stopping this process's sensors", exc)
            self.owned.clear()
        return set(self.owned)
