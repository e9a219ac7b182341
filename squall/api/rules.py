"""/api/v1/rules, /ruleenforcements, /triggertypes, /triggers,
/triggerinstances and /timers, in StackStorm's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from squall.api.deps import (
    JSON,
    check_limit,
    json_body,
    paged,
    requester,
    select_attributes,
    system,
)
from squall.core import rules as core_rules
from squall.core import templating, timers
from squall.core import triggers as core_triggers
from squall.core.timestamps import iso, parse_time
from squall.errors import InvalidInput, SquallError
from squall.services import executions as exe_service
from squall.services import rules as rule_service
from squall.store import rules as rule_store
from squall.store import triggers as trigger_store

router = APIRouter(tags=["rules"])

_RULE_FIELDS = (
    "id", "uid", "ref", "pack", "name", "description", "enabled", "type", "trigger",
    "criteria", "action", "context", "tags", "metadata_file", "throttle", "accumulate",
)  # fmt: skip


def rule_view(meta: dict[str, Any]) -> dict[str, Any]:
    view = {k: meta[k] for k in _RULE_FIELDS if meta.get(k) is not None}
    view.setdefault("metadata_file", "")
    return view


def _bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise InvalidInput(f"{name} must be true or false, got {value!r}")


# --------------------------------------------------------------------------
# Rules


@router.get("/api/v1/rules")
async def list_rules(
    request: Request,
    pack: str | None = None,
    name: str | None = None,
    enabled: str | None = None,
    action: str | None = None,
    trigger: str | None = None,
    limit: int = 0,
    offset: int = Query(0, ge=0, le=1_000_000_000),
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
) -> JSON:
    limit = check_limit(limit, maximum=100_000)
    flag = _bool(enabled, "enabled")
    metas = await system(request).db.read(
        lambda conn: rule_store.list_(conn, pack=pack, enabled=flag, action=action)
    )
    if name:
        metas = [m for m in metas if m["name"] == name]
    if trigger:  # a trigger's ref, or (a Squall convenience) a trigger type's
        metas = [m for m in metas if trigger in (m["trigger"]["ref"], m["trigger"]["type"])]
    page = metas[offset : offset + limit]
    views = [select_attributes(rule_view(m), include_attributes, exclude_attributes) for m in page]
    return paged(views, len(metas), limit)


@router.get("/api/v1/rules/views")
async def list_rule_views(request: Request, pack: str | None = None) -> JSON:
    return await list_rules(
        request,
        pack=pack,
        name=None,
        enabled=None,
        action=None,
        trigger=None,
        limit=0,
        offset=0,
        include_attributes=None,
        exclude_attributes=None,
    )


@router.get("/api/v1/rules/{ref_or_id}")
async def get_rule(request: Request, ref_or_id: str) -> JSON:
    return JSON(rule_view(await system(request).db.read(rule_store.get, ref_or_id)))


@router.post("/api/v1/rules", status_code=201)
async def create_rule(request: Request) -> JSON:
    body = await json_body(request)
    user = requester(request)
    meta = await system(request).db.write(rule_service.create, body, user)
    return JSON(rule_view(meta), status_code=201)


@router.put("/api/v1/rules/{ref_or_id}")
async def update_rule(request: Request, ref_or_id: str) -> JSON:
    body = await json_body(request)
    user = requester(request)

    meta = await system(request).db.write(rule_service.update, ref_or_id, body, user)
    return JSON(rule_view(meta))


@router.delete("/api/v1/rules/{ref_or_id}", status_code=204)
async def delete_rule(request: Request, ref_or_id: str) -> Response:
    await system(request).db.write(rule_store.delete, ref_or_id)
    return Response(status_code=204)


# --------------------------------------------------------------------------
# Rule enforcements


def enforcement_view(row: dict[str, Any], rule: dict[str, Any] | None = None) -> dict[str, Any]:
    pack, _, name = row["rule_ref"].partition(".")
    view: dict[str, Any] = {
        "id": row["id"],
        "rule": {"ref": row["rule_ref"], "id": row["rule_id"], "uid": f"rule:{pack}:{name}"},
        "trigger_instance_id": row["trigger_instance_id"],
        "execution_id": row["execution_id"],
        "failure_reason": row["failure_reason"],
        "enforced_at": iso(row["enforced_at"]),
        "status": row["status"],
        "details": row["details"],
    }
    return {k: v for k, v in view.items() if v}


@router.get("/api/v1/ruleenforcements")
async def list_enforcements(
    request: Request,
    rule_ref: str | None = None,
    rule_id: str | None = None,
    trigger_instance: str | None = None,
    execution: str | None = None,
    status: str | None = None,
    enforced_at_gt: str | None = None,
    enforced_at_lt: str | None = None,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> JSON:
    limit = check_limit(limit, maximum=10_000)
    since = parse_time(enforced_at_gt, "enforced_at_gt")
    until = parse_time(enforced_at_lt, "enforced_at_lt")
    rows, total = await system(request).db.read(
        lambda conn: rule_store.list_enforcements(
            conn,
            rule=rule_ref or rule_id,
            trigger_instance=trigger_instance,
            execution=execution,
            status=status,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    )
    return paged([enforcement_view(r) for r in rows], total, limit)


@router.get("/api/v1/ruleenforcements/{enforcement_id}")
async def get_enforcement(request: Request, enforcement_id: str) -> JSON:
    row = await system(request).db.read(rule_store.get_enforcement, enforcement_id)
    return JSON(enforcement_view(row))


# --------------------------------------------------------------------------
# Why a rule did or did not fire for an event (a Squall addition)

_HIDDEN = "********"


@router.get("/api/v1/rules/{ref_or_id}/explain")
async def explain_rule(request: Request, ref_or_id: str, trigger_instance: str) -> JSON:
    """What the rule makes of a stored trigger instance, now: whether the
    event is of the rule's trigger, each criterion's verdict (as ``squall
    rule test`` shows them), and the enforcements the event got. The rules
    engine keeps no record of events that did not match; this answers the
    question afterwards, with the datastore as it is now. A criterion whose
    pattern needed a secret is shown without its pattern."""
    sys = system(request)

    def explain(conn: Any) -> dict[str, Any]:
        meta = rule_store.get(conn, ref_or_id)
        instance = trigger_store.get_instance(conn, trigger_instance)
        rows, _ = rule_store.list_enforcements(
            conn, rule=meta["ref"], trigger_instance=trigger_instance, limit=20
        )
        used_secret = False

        def decrypt(value: str) -> str:
            nonlocal used_secret
            used_secret = True
            return sys.keyring.decrypt(value)

        user = str((meta.get("context") or {}).get("user") or "admin")
        lookup = exe_service.StoreKeyLookup(conn, user, sys.keyring)
        payload = instance["payload"]
        context = templating.build_context(
            kv=lookup,
            decrypt=decrypt,
            extra={"trigger": payload, "rule": {"id": meta["id"], "ref": meta["ref"]}},
        )

        def render(pattern: Any) -> Any:
            return templating.render_value(pattern, context, name="criteria pattern")

        try:
            compiled = core_rules.compile_rule(meta)
            verdicts = compiled.criteria.explain(payload, render)
            problem = None
        except SquallError as exc:
            verdicts, problem = [], exc.message
        shown = []
        for v in verdicts:
            item = {
                "key": v.key,
                "operator": v.operator,
                "pattern": v.pattern,
                "value": v.value,
                "passed": v.passed,
                "reason": v.reason,
            }
            if used_secret:
                item.update(pattern=_HIDDEN, reason="its pattern uses a secret")
            shown.append(item)
        trigger_matches = instance["trigger"] == meta["trigger"]["ref"]
        criteria_match = problem is None and all(v.passed for v in verdicts)
        return {
            "rule": {"ref": meta["ref"], "id": meta["id"], "enabled": meta["enabled"]},
            "trigger_instance": instance_view(instance),
            "trigger_matches": trigger_matches,
            "criteria_match": criteria_match,
            "verdicts": shown,
            "enforcements": [enforcement_view(r) for r in rows],
            "summary": _summary(meta, instance, rows, trigger_matches, verdicts, problem),
        }

    return JSON(await sys.db.read(explain))


def _summary(
    meta: dict[str, Any],
    instance: dict[str, Any],
    enforcements: list[dict[str, Any]],
    trigger_matches: bool,
    verdicts: list[Any],
    problem: str | None,
) -> str:
    if instance["status"] == trigger_store.PENDING:
        return "the event has not been processed yet"
    if instance["status"] == trigger_store.REJECTED:
        reason = (instance.get("context") or {}).get("reason")
        return f"the event was rejected{f': {reason}' if reason else ''}"
    if not trigger_matches:
        return (
            f"the event is of trigger {instance['trigger']}; "
            f"the rule listens to {meta['trigger']['ref']}"
        )
    if enforcements:
        latest = enforcements[0]
        if latest["execution_id"]:
            return f"the rule fired: execution {latest['execution_id']}"
        if latest["failure_reason"]:
            return f"the rule matched but its action could not start: {latest['failure_reason']}"
        return f"the rule matched; the event was {latest['status']}"
    if problem is not None:
        return f"the rule cannot be evaluated: {problem}"
    failed = [v for v in verdicts if not v.passed]
    if failed:
        names = ", ".join(v.key for v in failed)
        return f"the criteria do not match ({names})"
    if not meta["enabled"]:
        return "the criteria match, but the rule is disabled"
    return (
        "the criteria match now but the rule did not fire for this event: it was disabled "
        "or did not exist yet when the event came, or the datastore has changed since"
    )


# --------------------------------------------------------------------------
# Trigger types and triggers


def trigger_type_view(meta: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in meta.items() if k != "entry_point_path"}
    view["uid"] = f"trigger_type:{meta['pack']}:{meta['name']}"
    view.setdefault("tags", [])
    view.setdefault("metadata_file", "")
    return view


def trigger_view(row: dict[str, Any]) -> dict[str, Any]:
    pack, _, name = row["ref"].partition(".")
    view = {
        "id": row["id"],
        "ref": row["ref"],
        "uid": f"trigger:{pack}:{name}",
        "name": name,
        "pack": pack,
        "type": row["type"],
        "parameters": row["parameters"],
    }
    if row["type"] in core_triggers.TIMER_TYPES:
        view["description"] = timers.describe(row["type"], row["parameters"])
    return view


@router.get("/api/v1/triggertypes")
async def list_trigger_types(
    request: Request,
    pack: str | None = None,
    name: str | None = None,
    limit: int = 0,
    offset: int = Query(0, ge=0, le=1_000_000_000),
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
) -> JSON:
    limit = check_limit(limit, maximum=100_000)
    metas = await system(request).db.read(trigger_store.list_types, pack)
    if name:
        metas = [m for m in metas if m["name"] == name]
    views = [
        select_attributes(trigger_type_view(m), include_attributes, exclude_attributes)
        for m in metas[offset : offset + limit]
    ]
    return paged(views, len(metas), limit)


@router.get("/api/v1/triggertypes/{ref_or_id}")
async def get_trigger_type(request: Request, ref_or_id: str) -> JSON:
    return JSON(trigger_type_view(await system(request).db.read(trigger_store.get_type, ref_or_id)))


@router.get("/api/v1/triggers")
async def list_triggers(request: Request, type: str | None = None) -> JSON:
    rows = await system(request).db.read(trigger_store.list_triggers, type)
    return paged([trigger_view(r) for r in rows], len(rows), len(rows))


@router.get("/api/v1/triggers/{ref_or_id}")
async def get_trigger(request: Request, ref_or_id: str) -> JSON:
    return JSON(trigger_view(await system(request).db.read(trigger_store.get_trigger, ref_or_id)))


@router.get("/api/v1/timers")
async def list_timers(request: Request, timer_type: str | None = None) -> JSON:
    if timer_type and timer_type not in core_triggers.TIMER_TYPES:
        raise InvalidInput(
            f"timer type {timer_type} is not one of {', '.join(sorted(core_triggers.TIMER_TYPES))}"
        )
    rows = []
    for t in sorted(core_triggers.TIMER_TYPES):
        if timer_type in (None, t):
            rows += await system(request).db.read(trigger_store.list_triggers, t)
    return JSON([trigger_view(r) for r in rows])


@router.get("/api/v1/timers/{ref_or_id}")
async def get_timer(request: Request, ref_or_id: str) -> JSON:
    return await get_trigger(request, ref_or_id)


# --------------------------------------------------------------------------
# Trigger instances


def instance_view(row: dict[str, Any]) -> dict[str, Any]:
    view = {
        "id": row["id"],
        "trigger": row["trigger"],
        "occurrence_time": iso(row["occurrence_time"]),
        "payload": row["payload"],
        "status": row["status"],
    }
    if row.get("context"):
        view["context"] = row["context"]
    return view


@router.get("/api/v1/triggerinstances")
async def list_instances(
    request: Request,
    trigger: str | None = None,
    trigger_type: str | None = None,
    status: str | None = None,
    timestamp_gt: str | None = None,
    timestamp_lt: str | None = None,
    limit: int = 100,
    offset: int = Query(0, ge=0, le=1_000_000_000),
    include_attributes: str | None = None,
    exclude_attributes: str | None = None,
) -> JSON:
    limit = check_limit(limit, maximum=10_000)
    since = parse_time(timestamp_gt, "timestamp_gt")
    until = parse_time(timestamp_lt, "timestamp_lt")
    rows, total = await system(request).db.read(
        lambda conn: trigger_store.list_instances(
            conn,
            trigger=trigger,
            trigger_type=trigger_type,
            status=status,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    )
    views = [
        select_attributes(instance_view(r), include_attributes, exclude_attributes) for r in rows
    ]
    return paged(views, total, limit)


@router.get("/api/v1/triggerinstances/{instance_id}")
async def get_instance(request: Request, instance_id: str) -> JSON:
    row = await system(request).db.read(trigger_store.get_instance, instance_id)
    return JSON(instance_view(row))


@router.post("/api/v1/triggerinstances/{instance_id}/re_emit")
async def re_emit(request: Request, instance_id: str) -> JSON:
    user = requester(request)

    def emit(conn: Any) -> dict[str, Any]:
        old = trigger_store.get_instance(conn, instance_id)
        payload = old["payload"]
        if isinstance(payload, dict):
            payload = {**payload, "__context": {"original_id": instance_id}}
        context = {"re_emitted_from": instance_id, "user": user}
        return trigger_store.create_instance(conn, old["trigger"], payload, context)

    row = await system(request).db.write(emit)
    return JSON(
        {
            "message": f"Trigger instance {instance_id} succesfully re-sent.",
            "payload": row["payload"],
            "trigger_instance": instance_view(row),
        }
    )
