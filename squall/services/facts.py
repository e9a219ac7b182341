"""Gathering facts from hosts over SSH (``squall inventory facts``).

One SSH command per host runs :data:`squall.core.facts.FACTS_SCRIPT`; the
parsed facts are stored with a timestamp (``store.hosts.save_facts``) and
from then on targeting sees them under the facts the inventory declares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from squall.core import facts as core_facts
from squall.core.inventory import Host, Inventory
from squall.runners.remote import endpoint_of
from squall.runners.ssh import Connector, SshFailure, SshOptions

DEFAULT_TIMEOUT = 30.0


async def gather(
    hosts: Sequence[Host],
    *,
    packages: Sequence[str] = (),
    options: SshOptions | None = None,
    concurrency: int = 100,
    timeout: float = DEFAULT_TIMEOUT,
    inventory: Inventory | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """Facts of every host that answered, and ``{host: {status, error}}`` for the rest."""
    script = core_facts.facts_script(packages)
    connector = Connector(options)
    gathered: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, str]] = {}
    queue = iter(hosts)

    async def one(host: Host) -> None:
        ep = endpoint_of(host, inventory)
        try:
            conn = await connector.connect(ep)
            result = await asyncio.wait_for(conn.run(script, check=False), timeout)
        except SshFailure as exc:
            failed[host.name] = {"status": exc.kind, "error": exc.message}
            return
        except TimeoutError:
            failed[host.name] = {"status": "timeout", "error": f"no answer in {timeout:g}s"}
            return
        except Exception as exc:  # this host only
            failed[host.name] = {"status": "unreachable", "error": f"{type(exc).__name__}: {exc}"}
            return
        finally:
            connector.release(ep)
        text = result.stdout if isinstance(result.stdout, str) else ""
        facts = core_facts.parse(text, packages)
        if not facts.get("kernel"):
            error = (result.stderr or "").strip()[-300:] if isinstance(result.stderr, str) else ""
            failed[host.name] = {"status": "failed", "error": f"no facts came back: {error}"}
            return
        gathered[host.name] = facts

    async def worker() -> None:
        for host in queue:
            await one(host)

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(hosts))))))
    finally:
        await connector.close()
    return gathered, failed
