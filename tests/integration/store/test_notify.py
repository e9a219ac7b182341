"""Effects between processes over PostgreSQL's LISTEN/NOTIFY: control
effects reach every process, live events only those serving the stream."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Connection

from squall.config import normalize_database_url
from squall.store import migrate
from squall.store.db import Database, after_commit
from squall.store.notify import Listener, Publisher


def test_live_events_reach_only_processes_that_watch_them(pg_url: str) -> None:
    db = Database(normalize_database_url(pg_url))
    migrate.upgrade(db.write_engine)
    db.publisher = Publisher("writer")
    watching = {"on": False}
    worker: list[Any] = []
    api: list[Any] = []

    def effects(conn: Connection, n: int) -> None:
        after_commit(conn, "wake", f"run-{n}")
        after_commit(conn, "event", ["st2.execution__update", {"n": n}])

    def marker(conn: Connection) -> None:
        after_commit(conn, "wake", "marker")

    async def until(predicate: Any) -> None:
        for _ in range(1000):
            if predicate():
                return
            await asyncio.sleep(0.01)

    async def main() -> None:
        listeners = [
            Listener(pg_url, "worker", worker.extend, lambda: None),
            Listener(pg_url, "api", api.extend, lambda: None, watched=lambda: watching["on"]),
        ]
        tasks = [asyncio.create_task(li.run()) for li in listeners]
        try:
            for li in listeners:
                await asyncio.wait_for(li.connected.wait(), 10)
            await db.write(effects, 1)  # nobody watches the stream yet
            # Notifications arrive in order: once the marker is in, the
            # first event has been seen (and skipped).
            await db.write(marker)
            await until(lambda: ("wake", "marker") in api)
            watching["on"] = True
            await db.write(effects, 2)
            await until(lambda: len(worker) >= 3 and len(api) >= 4)
            await asyncio.sleep(0.2)  # anything more that would arrive
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        db.close()
    assert worker == [("wake", "run-1"), ("wake", "marker"), ("wake", "run-2")]
    assert api == [
        ("wake", "run-1"),
        ("wake", "marker"),
        ("wake", "run-2"),
        ("event", ["st2.execution__update", {"n": 2}]),
    ]
