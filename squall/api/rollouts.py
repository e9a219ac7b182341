"""/api/v1/rollouts: plan, start, watch and steer batched rollouts.

    POST /api/v1/rollouts/plan         check a spec and lay it out; nothing is touched
    POST /api/v1/rollouts              start one (201)
    GET  /api/v1/rollouts              newest first
    GET  /api/v1/rollouts/{id}         status, per-batch counts and hosts, budget, gate
    POST /api/v1/rollouts/{id}/pause | /resume | /abort | /rollback
    POST /api/v1/rollouts/{id}/retry   {"skipped": false}: run the failed hosts again
    POST /api/v1/rollouts/{id}/skip    {"hosts": [...]}: leave hosts out before they start

A spec comes as ``{"spec": {...}}`` or as the text of a spec file,
``{"spec_text": "...", "source": "file.yaml"}`` (errors then name the file).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from squall.api import inventory as inventory_api
from squall.api.deps import JSON, body_schema, check_limit, json_body, requester, system
from squall.errors import InvalidInput
from squall.services import rollouts as svc

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])

_SPEC_BODY = body_schema(
    {
        "spec": {"type": "object", "description": "The rollout spec"},
        "spec_text": {"type": "string", "description": "The YAML text of a spec file"},
        "source": {"type": "string", "description": "The spec file's name, for messages"},
    },
    [],
)


async def _spec(request: Request) -> tuple[dict[str, Any], str]:
    body = await json_body(request)
    source = body.get("source") if isinstance(body.get("source"), str) else "spec"
    if isinstance(body.get("spec_text"), str):
        return svc.load_spec_text(body["spec_text"], source), source
    if isinstance(body.get("spec"), dict):
        return body["spec"], source
    raise InvalidInput("give the rollout spec as 'spec' (an object) or 'spec_text' (YAML text)")


@router.post("/plan", openapi_extra=_SPEC_BODY)
async def plan_rollout(request: Request) -> JSON:
    """The plan of a spec: hosts in order, batches, budgets, gates, estimate."""
    data, source = await _spec(request)
    inventory = await inventory_api.current(request)

    def plan(conn: Any) -> dict[str, Any]:
        spec, laid_out = svc.prepare(conn, data, inventory, source=source)
        return svc.plan_view(spec, laid_out)

    return JSON(await system(request).db.read(plan))


@router.post("", status_code=201, openapi_extra=_SPEC_BODY)
async def start_rollout(request: Request) -> JSON:
    data, source = await _spec(request)
    user = requester(request)
    inventory = await inventory_api.current(request)
    sys = system(request)

    def start(conn: Any) -> dict[str, Any]:
        row = svc.start(conn, data, inventory, user=user, source=source)
        return svc.view(conn, row["id"])

    return JSON(await sys.db.write(start), status_code=201)


@router.get("")
async def list_rollouts(
    request: Request,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    limit = check_limit(limit)
    return JSON(
        await system(request).db.read(lambda conn: svc.list_view(conn, limit=limit, offset=offset))
    )


@router.get("/{rollout_id}")
async def get_rollout(request: Request, rollout_id: str, hosts: bool = True) -> JSON:
    """The rollout; ``hosts=false`` leaves out the per-host lists (cheap to poll)."""
    if not hosts:
        return JSON(
            await system(request).db.read(lambda conn: svc.view(conn, rollout_id, with_hosts=False))
        )
    inventory = await inventory_api.current(request)
    return JSON(await system(request).db.read(svc.view, rollout_id, inventory))


async def _control(request: Request, rollout_id: str, action: str) -> JSON:
    user = requester(request)
    body = await json_body(request) if action == "abort" else {}
    cancel = bool(body.get("cancel")) if isinstance(body, dict) else False
    sys = system(request)
    await sys.db.write(lambda conn: svc.control(conn, rollout_id, action, user, cancel=cancel))
    return JSON(await sys.db.read(svc.view, rollout_id))


@router.post("/{rollout_id}/pause")
async def pause_rollout(request: Request, rollout_id: str) -> JSON:
    """No new host starts; hosts in flight finish."""
    return await _control(request, rollout_id, "pause")


@router.post("/{rollout_id}/resume")
async def resume_rollout(request: Request, rollout_id: str) -> JSON:
    """Go on after a pause or a hold gate."""
    return await _control(request, rollout_id, "resume")


@router.post(
    "/{rollout_id}/abort",
    openapi_extra=body_schema(
        {"cancel": {"type": "boolean", "description": "Cancel the hosts in flight too"}}, []
    ),
)
async def abort_rollout(request: Request, rollout_id: str) -> JSON:
    """No new host starts; the hosts never started are skipped."""
    return await _control(request, rollout_id, "abort")


@router.post("/{rollout_id}/rollback")
async def rollback_rollout(request: Request, rollout_id: str) -> JSON:
    """Undo the change on the hosts it reached, last batch first (the spec's
    ``rollback``); a running rollout stops first, an ended one comes back."""
    return await _control(request, rollout_id, "rollback")


@router.post(
    "/{rollout_id}/retry",
    openapi_extra=body_schema(
        {
            "skipped": {
                "type": "boolean",
                "description": "Also the hosts skipped because the rollout stopped",
            }
        },
        [],
    ),
)
async def retry_rollout(request: Request, rollout_id: str) -> JSON:
    """Run an ended rollout's failed hosts again."""
    body = await json_body(request)
    skipped = body.get("skipped", False) if isinstance(body, dict) else False
    if not isinstance(skipped, bool):
        raise InvalidInput("'skipped' must be true or false")
    user = requester(request)
    sys = system(request)
    await sys.db.write(lambda conn: svc.retry(conn, rollout_id, user, skipped=skipped))
    return JSON(await sys.db.read(svc.view, rollout_id))


@router.post(
    "/{rollout_id}/skip",
    openapi_extra=body_schema(
        {"hosts": {"type": "array", "items": {"type": "string"}, "description": "Host names"}},
        ["hosts"],
    ),
)
async def skip_hosts(request: Request, rollout_id: str) -> JSON:
    """Leave hosts that have not started out of the rollout."""
    body = await json_body(request)
    hosts = body.get("hosts") if isinstance(body, dict) else None
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise InvalidInput("'hosts' must be a non-empty list of host names")
    user = requester(request)
    sys = system(request)
    await sys.db.write(lambda conn: svc.skip(conn, rollout_id, hosts, user))
    return JSON(await sys.db.read(svc.view, rollout_id))
