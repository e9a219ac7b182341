"""The worker's copy of the inventory: the remote runs that start together
(a batch of a rollout) read it, and every host's gathered facts, once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from squall.config import Settings
from squall.core.inventory import Host, Inventory
from squall.services.bus import Bus
from squall.services.worker import Worker


class _Inventory:
    def __init__(self) -> None:
        self.reads = 0

    def get(self) -> Inventory:
        self.reads += 1
        time.sleep(0.05)  # as reading files does, on a thread
        return Inventory(hosts={"h1": Host(name="h1", address="127.0.0.1")})


class _Db:
    def __init__(self) -> None:
        self.reads = 0

    async def read(self, fn: Any, *args: Any) -> dict[str, dict[str, Any]]:
        self.reads += 1
        await asyncio.sleep(0.01)
        return {"h1": {"os": "debian", "gathered_at": 1.0}}


def _worker(tmp_path: Path, inventory: _Inventory, db: _Db) -> Worker:
    settings = Settings(data_dir=tmp_path, database_url="sqlite://")
    return Worker(db, Bus(), settings, "w1", keyring=None, inventory=inventory)  # type: ignore[arg-type]


def test_runs_starting_together_read_the_inventory_once(tmp_path: Path) -> None:
    inventory, db = _Inventory(), _Db()

    async def main() -> None:
        worker = _worker(tmp_path, inventory, db)
        got = await asyncio.gather(*(worker._inventory() for _ in range(50)))
        assert inventory.reads == 1 and db.reads == 1
        assert all(g is got[0] for g in got)
        assert got[0].hosts["h1"].facts["os"] == "debian"
        assert await worker._inventory() is got[0]  # kept a few seconds
        assert inventory.reads == 1

    asyncio.run(main())


def test_a_canceled_run_does_not_cancel_the_others_read(tmp_path: Path) -> None:
    inventory, db = _Inventory(), _Db()

    async def main() -> None:
        worker = _worker(tmp_path, inventory, db)
        first = asyncio.create_task(worker._inventory())
        second = asyncio.create_task(worker._inventory())
        await asyncio.sleep(0.01)
        first.cancel()
        merged = await second
        assert merged.hosts["h1"].facts["os"] == "debian"
        assert first.cancelled()
        assert inventory.reads == 1

    asyncio.run(main())
