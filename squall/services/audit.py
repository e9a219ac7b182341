"""The audit trail as a service: the sealer that chains new records, and the
record of every API call that changes something."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from squall.store import audit as store
from squall.store.db import Database

log = logging.getLogger(__name__)

SEAL_INTERVAL = 1.0  # seconds between sealing rounds
# Records chained per transaction: hashing them holds the single writer, so
# a busy second's records are sealed in short turns with other work between
# (one turn for them all held webhooks and API calls up for ~100 ms).
TURN = 200


class AuditSealer:
    """Chains the records written since the last round (see squall.core.audit)."""

    def __init__(self, db: Database, interval: float = SEAL_INTERVAL) -> None:
        self.db, self.interval = db, interval

    async def run(self) -> None:
        while True:
            try:
                await self.seal_round()
            except Exception:
                log.exception("sealing the audit trail failed; will retry")
            await asyncio.sleep(self.interval)

    async def seal_round(self) -> int:
        """Seal everything pending, a turn at a time; how many were sealed."""
        total = 0
        while True:
            sealed = await self.db.write(store.seal, TURN)
            total += sealed
            if sealed < TURN:
                return total


async def record_call(db: Database, **fields: Any) -> None:
    """Record an API call; a failure to record is logged, never raised (the
    call itself has happened and answered)."""
    try:
        await db.write(lambda conn: store.record(conn, **fields))
    except Exception:
        log.exception("could not record %s in the audit trail", fields.get("action"))
