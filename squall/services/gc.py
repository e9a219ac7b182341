"""Garbage collection: old executions, their output, trigger instances,
expired keys and tokens, on a timer."""

from __future__ import annotations

import asyncio
import logging
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.config import Settings
from squall.store import auth, kv
from squall.store import executions as exe_store
from squall.store.db import Database
from squall.store.tables import trigger_instances

log = logging.getLogger(__name__)

DAY = 86400.0


def collect(conn: Connection, settings: Settings, now: float) -> dict[str, int]:
    counts = {
        "executions": exe_store.delete_older_than(
            conn, now - settings.gc_executions_ttl_days * DAY
        ),
        "output": exe_store.delete_output_older_than(conn, now - settings.gc_output_ttl_days * DAY),
        "trigger_instances": conn.execute(
            sa.delete(trigger_instances).where(
                trigger_instances.c.occurrence_time
                < now - settings.gc_trigger_instances_ttl_days * DAY
            )
        ).rowcount
        or 0,
        "keys": kv.delete_expired(conn),
        "tokens": auth.delete_expired_tokens(conn),
    }
    return counts


class GarbageCollector:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gc_interval_seconds)
            try:
                counts = await self.db.write(collect, self.settings, time.time())
                if any(counts.values()):
                    log.info("garbage collected %s", counts)
            except Exception:
                log.exception("garbage collection failed")
