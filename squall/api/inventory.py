"""/api/v1/inventory: the fleet's hosts, groups and facts, and targeting.

GET  /api/v1/inventory/hosts?target=EXPR   the hosts that match (all without a target)
GET  /api/v1/inventory/hosts/{name}        one host, with its facts
GET  /api/v1/inventory/groups              groups and their members
POST /api/v1/inventory/facts               gather facts now: {"target", "packages"}
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from squall.api.deps import JSON, body_schema, check_limit, json_body, system
from squall.core import targeting
from squall.core.inventory import Inventory
from squall.errors import InvalidInput, NotFound
from squall.runners.ssh import SshOptions
from squall.services import facts as facts_service
from squall.store import hosts as host_store

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])


async def current(request: Request) -> Inventory:
    """The inventory as it is now, with the facts gathered from its hosts."""
    sys = system(request)
    if sys.inventory is None:
        return Inventory()
    inventory = await asyncio.to_thread(sys.inventory.get)
    gathered = await sys.db.read(host_store.facts, list(inventory.hosts))
    return inventory.with_facts(gathered)


def _sources(request: Request) -> list[str]:
    return [str(p) for p in system(request).settings.inventory_paths]


@router.get("/hosts")
async def list_hosts(
    request: Request,
    target: str | None = None,
    limit: int = 100,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    """Hosts matching ``target`` (a targeting expression), in inventory order.

    A target that matches nothing, names an unknown group or fact, or has a
    syntax error is a 400 with the position of the problem."""
    limit = check_limit(limit, maximum=100_000)
    inventory = await current(request)
    hosts = targeting.resolve(target, inventory) if target else list(inventory.hosts.values())
    page = hosts[offset : offset + limit] if limit else hosts[offset:]
    return JSON(
        {
            "target": target,
            "count": len(hosts),
            "total": len(inventory.hosts),
            "hosts": [h.to_dict() for h in page],
            "problems": [str(p) for p in inventory.problems],
            "sources": _sources(request),
        }
    )


@router.get("/hosts/{name}")
async def get_host(request: Request, name: str) -> JSON:
    inventory = await current(request)
    host = inventory.hosts.get(name)
    if host is None:
        raise NotFound(f"no host named '{name}' in the inventory")
    return JSON(host.to_dict())


@router.get("/groups")
async def list_groups(request: Request) -> JSON:
    inventory = await current(request)
    return JSON(
        [
            {
                "name": g.name,
                "hosts": sorted(inventory.members(g.name)),
                "children": list(g.children),
                "vars": dict(g.vars),
                "source": g.source,
            }
            for g in inventory.groups.values()
        ]
    )


@router.post(
    "/facts",
    openapi_extra=body_schema(
        {
            "target": {"type": "string", "description": "Targeting expression"},
            "packages": {"type": "array", "items": {"type": "string"}},
        },
        ["target"],
    ),
)
async def gather_facts(request: Request) -> JSON:
    """Gather facts from the hosts ``target`` matches, store them, and say how it went."""
    body = await json_body(request)
    target = body.get("target")
    if not isinstance(target, str) or not target.strip():
        raise InvalidInput("'target' is required: a targeting expression, e.g. 'role=web' or '*'")
    packages = body.get("packages") or []
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise InvalidInput("'packages' must be a list of package names")
    sys = system(request)
    inventory = await current(request)
    hosts = targeting.resolve(target, inventory)
    settings = sys.settings
    try:
        gathered, failed = await facts_service.gather(
            hosts,
            packages=packages,
            options=SshOptions(
                known_hosts=settings.ssh_known_hosts,
                host_key_check=settings.ssh_host_key_check,
                connect_timeout=settings.ssh_connect_timeout,
            ),
            concurrency=settings.ssh_concurrency,
            inventory=inventory,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    await sys.db.write(host_store.save_facts, gathered)
    stored = await sys.db.read(host_store.facts, list(gathered))
    return JSON(
        {
            "target": target,
            "count": len(hosts),
            "gathered": len(gathered),
            "failed": failed,
            "facts": stored,
        }
    )
