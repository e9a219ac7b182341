"""The scheduler: requested executions become scheduled, after policies.

``action.concurrency`` policies are applied here, in the same transaction that
counts what is in flight, so two schedulers can never both let one through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy.engine import Connection

from squall.core.executions import Status
from squall.core.policies import concurrency_decision
from squall.services import events
from squall.services.bus import Bus, wait_for_wake
from squall.store import content, queue
from squall.store import executions as exe_store
from squall.store.db import Database
from squall.store.executions import SCHEDULE

log = logging.getLogger(__name__)

BATCH = 256
# A delayed execution is looked at again this often (and whenever one ends).
DELAY_RECHECK_SECONDS = 0.5
_ACTIVE = (Status.SCHEDULED.value, Status.RUNNING.value, Status.CANCELING.value)


def schedule_batch(conn: Connection, owner: str, lease_seconds: float) -> int:
    items = queue.claim(conn, SCHEDULE, owner, limit=BATCH, lease_seconds=lease_seconds)
    if not items:
        return 0
    rows = exe_store.get_many(conn, (i.ref for i in items))
    policy_cache: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        row = rows.get(item.ref)
        if row is None or row["status"] not in (Status.REQUESTED, Status.DELAYED):
            queue.ack(conn, item.id)  # canceled meanwhile, or already handled
            continue
        ref = row["action_ref"]
        if ref not in policy_cache:
            policy_cache[ref] = content.policies_for(conn, ref)
        decision = "run"
        for policy in policy_cache[ref]:
            if not policy["policy_type"].startswith("action.concurrency"):
                continue
            active = exe_store.count_active(conn, ref, _ACTIVE)
            decision = concurrency_decision(
                policy, row["parameters"], [a["parameters"] for a in active]
            )
            if decision != "run":
                break
        if decision == "delay":
            if row["status"] != Status.DELAYED:
                exe_store.set_status(conn, row, Status.DELAYED)
            queue.release(conn, item.id, delay=DELAY_RECHECK_SECONDS)
        elif decision == "cancel":
            canceled = exe_store.set_status(
                conn,
                row,
                Status.CANCELED,
                result={"error": "canceled by the action.concurrency policy: too many running"},
            )
            events.executions_finished(conn, [canceled])
            queue.ack(conn, item.id)
        else:
            exe_store.set_status(conn, row, Status.SCHEDULED)
            queue.ack(conn, item.id)
            exe_store.dispatch(conn, [row])
    return len(items)


class Scheduler:
    def __init__(self, db: Database, bus: Bus, owner: str, lease_seconds: float = 30.0) -> None:
        self.db, self.bus, self.owner, self.lease = db, bus, owner, lease_seconds

    async def run(self) -> None:
        wake = self.bus.waker(SCHEDULE)
        while True:
            wake.clear()
            try:
                n = await self.db.write(schedule_batch, self.owner, self.lease)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if n >= BATCH:
                continue
            try:
                due = await self.db.read(queue.next_due, SCHEDULE)
            except Exception:
                due = None  # the database is away: the next round reports it
            await wait_for_wake(wake, 5.0 if due is None else min(5.0, until(due)))


def until(ts: float) -> float:
    """Seconds from now until epoch time ``ts``, at least a little."""
    return max(0.01, ts - time.time())
