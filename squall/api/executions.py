"""/api/v1/executions: run actions, follow them, cancel and re-run them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from squall import masks
from squall.api import inventory as inventory_api
from squall.api.deps import (
    JSON,
    body_schema,
    check_limit,
    json_body,
    paged,
    requester,
    select_attributes,
    system,
)
from squall.api.runners import runner_view
from squall.core import params as core_params
from squall.core import targeting
from squall.core.hostresults import ordered_counts
from squall.core.timestamps import iso, parse_time
from squall.errors import InvalidInput, NotFound, SquallError
from squall.runners.registry import get_runner
from squall.services import executions as svc
from squall.services import workflows
from squall.services.executions import INHERITED_SECRETS
from squall.store import content
from squall.store import executions as exe_store
from squall.store import hosts as host_store

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])


def execution_view(row: dict[str, Any], children: list[str] | None = None) -> dict[str, Any]:
    """An execution as StackStorm's API shows it (ActionExecutionAPI)."""
    action = {
        k: v
        for k, v in row["action"].items()
        if k not in ("entry_point_path", "pack_path", "python", "metadata_file", INHERITED_SECRETS)
    }
    try:
        schema = svc.parameter_schema(row["action"])
        runner = runner_view(get_runner(row["runner_type"]).meta)
    except SquallError:  # a runner this Squall no longer has: show what is stored
        schema, runner = core_params.ParameterSchema({}), {"name": row["runner_type"]}
    parameters, result, context = row["parameters"], row["result"], row["context"]
    if result is None:
        result = {}
    if core_params.has_secrets(schema) or row["action"].get(INHERITED_SECRETS):
        # Secret parameters whole, and their values (and the parent
        # workflow's) wherever they travelled (an env var, the output);
        # patterns and datastore secrets are masked in every response
        # (api/deps.JSON).
        masker = masks.masker(_secret_values([row]))
        parameters = masker.data(core_params.mask_secrets(parameters, schema))
        result = masker.data(result)
        context = masker.data(context)
    start, end = row["start_timestamp"], row["end_timestamp"]
    view: dict[str, Any] = {
        "id": row["id"],
        "action": action,
        "runner": runner,
        "liveaction": {
            "id": row["id"],
            "action": row["action_ref"],
            "parameters": parameters,
            "status": row["status"],
            "callback": {},
            "runner_info": {},
        },
        "status": row["status"],
        "start_timestamp": iso(start),
        "end_timestamp": iso(end),
        "parameters": parameters,
        "result": result,
        "context": context,
        "log": [{"status": e["status"], "timestamp": iso(e["timestamp"])} for e in row["log"]],
        "web_url": f"/#/executions/{row['id']}",
    }
    if end is not None:
        view["elapsed_seconds"] = round(end - start, 6)
    if row["parent_id"]:
        view["parent"] = row["parent_id"]
    if children:
        view["children"] = children
    return view


@router.post(
    "",
    status_code=201,
    openapi_extra=body_schema(
        {
            "action": {"type": "string", "description": "Ref of the action, e.g. core.local"},
            "parameters": {"type": "object"},
            "context": {"type": "object"},
            "delay": {"type": "integer", "description": "Milliseconds to wait first"},
            "user": {"type": "string", "nullable": True},
        },
        ["action"],
    ),
)
async def create_execution(request: Request) -> JSON:
    body = await json_body(request)
    user = requester(request)
    ref = body.get("action")
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("'action' is required: the ref of the action to run, e.g. core.local")
    params = body.get("parameters") or {}
    delay_ms = body.get("delay") or 0
    if not isinstance(delay_ms, int | float) or delay_ms < 0:
        raise InvalidInput("'delay' must be a number of milliseconds, 0 or more")
    sys = system(request)
    context = body.get("context") if isinstance(body.get("context"), dict) else None
    await _check_target(request, ref, params)
    row = await sys.db.write(
        lambda conn: svc.request(
            conn,
            action_ref=ref,
            parameters=params,
            user=user,
            keyring=sys.keyring,
            context=context,
            delay=delay_ms / 1000.0,
            source=request.client.host if request.client else None,
        )
    )
    return JSON(execution_view(row), status_code=201)


REMOTE_RUNNERS = frozenset({"remote-shell-cmd", "remote-shell-script", "remote-reboot"})


async def _check_target(request: Request, ref: str, params: Any) -> None:
    """A remote action's target must resolve before anything runs: a syntax
    error, an unknown group or fact, or no match at all is a 400 now."""
    if not isinstance(params, dict) or not isinstance(params.get("target"), str):
        return
    try:
        action = await system(request).db.read(content.get_action, ref)
    except NotFound:
        return  # the request itself reports it
    if action["runner_type"] in REMOTE_RUNNERS:
        targeting.resolve(params["target"], await inventory_api.current(request))


@router.get("/{execution_id}/hosts")
async def get_hosts(
    request: Request,
    execution_id: str,
    status: str | None = None,
    limit: int = 0,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    """Per-host results of a remote execution as they arrive, with counts by status."""
    limit = check_limit(limit, maximum=100_000)

    def read(conn: Any) -> dict[str, Any]:
        exe_store.get(conn, execution_id)  # 404 for an unknown execution
        counts = host_store.summary(conn, execution_id)
        rows = host_store.results(conn, execution_id, status=status, limit=limit, offset=offset)
        return {"summary": ordered_counts(counts), "hosts": rows}

    return JSON(await system(request).db.read(read))


@router.get("")
async def list_executions(
    request: Request,
    action: str | None = None,
    status: str | None = None,
    parent: str | None = None,
    user: str | None = None,
    runner: str | None = None,
    rule: str | None = None,
    trigger_instance: str | None = None,
    q: str | None = Query(None, max_length=200),
    timestamp_gt: str | None = None,
    timestamp_lt: str | None = None,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=1_000_000_000),
    sort_desc: bool = True,
    sort_asc: bool = False,
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
    show_all: bool = Query(False, alias="show_all"),
) -> JSON:
    """Executions, newest first, StackStorm's filters and a few more: ``rule``
    (a rule's ref or name) and ``trigger_instance`` (what the rule enforcement
    recorded), and ``q``, a search for the beginning of an id or part of an
    action's ref. ``parent=null`` lists top-level executions only."""
    limit = check_limit(limit)
    rows, total = await system(request).db.read(
        lambda conn: exe_store.list_(
            conn,
            action=action,
            status=status,
            parent=parent,
            user=user,
            runner=runner,
            rule=rule,
            trigger_instance=trigger_instance,
            search=q,
            since=parse_time(timestamp_gt, "timestamp_gt"),
            until=parse_time(timestamp_lt, "timestamp_lt"),
            limit=limit,
            offset=offset,
            sort_desc=sort_desc and not sort_asc,
        )
    )
    return paged(
        [
            select_attributes(execution_view(r), include_attributes, exclude_attributes)
            for r in rows
        ],
        total,
        limit,
    )


async def _get(request: Request, execution_id: str) -> tuple[dict[str, Any], list[str]]:
    def read(conn: Any) -> tuple[dict[str, Any], list[str]]:
        return exe_store.get(conn, execution_id), exe_store.children(conn, execution_id)

    return await system(request).db.read(read)


@router.get("/{execution_id}")
async def get_execution(
    request: Request,
    execution_id: str,
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
) -> JSON:
    row, kids = await _get(request, execution_id)
    return JSON(
        select_attributes(execution_view(row, kids), include_attributes, exclude_attributes)
    )


@router.get("/{execution_id}/children")
async def get_children(request: Request, execution_id: str) -> JSON:
    def read(conn: Any) -> list[dict[str, Any]]:
        ids = exe_store.children(conn, execution_id)
        found = exe_store.get_many(conn, ids)
        return [found[i] for i in ids if i in found]

    return JSON([execution_view(r) for r in await system(request).db.read(read)])


@router.get("/{execution_id}/workflow")
async def get_workflow(request: Request, execution_id: str) -> JSON:
    """A workflow's graph (tasks, transitions and their conditions) and the
    state, execution and timings of every task instance."""

    def read(conn: Any) -> dict[str, Any]:
        view = workflows.view(conn, execution_id)
        # Task inputs and variables hold the secret parameters of the
        # workflow and of its tasks' actions: masked like in those executions.
        rows = exe_store.get_many(conn, [execution_id, *exe_store.children(conn, execution_id)])
        return masks.masker(_secret_values(rows.values())).data(view)

    return JSON(await system(request).db.read(read))


def _secret_values(rows: Any) -> list[str]:
    values: list[str] = []
    for row in rows:
        try:
            values += svc.execution_secrets(row["parameters"], row["action"])
        except SquallError:  # a runner this Squall no longer has
            values += [str(v) for v in row["action"].get(INHERITED_SECRETS) or []]
    return values


@router.get("/{execution_id}/output", response_class=PlainTextResponse)
async def get_output(
    request: Request,
    execution_id: str,
    output_type: str | None = None,
    output_format: str = Query("raw", pattern="^(raw|json)$"),
) -> Any:
    """The stored output as text; with ``output_format=json``, the chunks as
    the stream sent them (``output_type``, ``data``, ``timestamp``), so that a
    client following the stream can tell which chunks it already has."""

    def read(conn: Any) -> list[dict[str, Any]]:
        exe_store.get(conn, execution_id)  # 404 for an unknown id
        return exe_store.output(conn, execution_id, stream=output_type)

    chunks = await system(request).db.read(read)
    if output_format == "json":
        return JSON(
            [
                {"output_type": c["stream"], "data": c["data"], "timestamp": iso(c["timestamp"])}
                for c in chunks
            ]
        )
    return PlainTextResponse(masks.masker().text("".join(c["data"] for c in chunks)))


@router.delete("/{execution_id}")
async def cancel_execution(request: Request, execution_id: str) -> JSON:
    user = requester(request)
    row = await system(request).db.write(lambda conn: svc.cancel(conn, execution_id, user))
    return JSON(execution_view(row))


@router.post(
    "/{execution_id}/re_run",
    status_code=201,
    openapi_extra=body_schema({"parameters": {"type": "object"}}),
)
async def rerun_execution(request: Request, execution_id: str) -> JSON:
    body = await json_body(request)
    user = requester(request)
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object")
    tasks, reset = body.get("tasks"), body.get("reset")
    for name, value in (("tasks", tasks), ("reset", reset)):
        if value is not None and not (
            isinstance(value, list) and all(isinstance(t, str) for t in value)
        ):
            raise InvalidInput(f"'{name}' must be a list of task names")
    sys = system(request)
    row = await sys.db.write(
        lambda conn: svc.rerun(
            conn,
            execution_id,
            parameters=params,
            user=user,
            keyring=sys.keyring,
            tasks=tasks or None,
            reset=reset or None,
        )
    )
    return JSON(execution_view(row), status_code=201)


_CONTROL = {
    "pausing": "pausing",
    "paused": "pausing",
    "resuming": "resuming",
    "running": "resuming",
}


@router.put(
    "/{execution_id}",
    openapi_extra=body_schema(
        {"status": {"type": "string", "enum": ["pausing", "resuming", "canceled"]}}, ["status"]
    ),
)
async def update_execution(request: Request, execution_id: str) -> JSON:
    """Pause or resume a workflow (``st2 execution pause/resume``), or cancel any execution."""
    body = await json_body(request)
    user = requester(request)
    status = body.get("status")
    db = system(request).db
    if status in ("canceled", "canceling"):
        row = await db.write(lambda conn: svc.cancel(conn, execution_id, user))
    elif isinstance(status, str) and status in _CONTROL:
        wanted = _CONTROL[status]
        row = await db.write(lambda conn: workflows.control(conn, execution_id, wanted, user))
    else:
        raise InvalidInput("'status' must be pausing, resuming or canceled")
    return JSON(execution_view(row))
