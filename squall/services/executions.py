"""Requesting, canceling and re-running executions: the logic the API and the
CLI share. Each function is one transaction."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from squall import masks
from squall.core import params as core_params
from squall.core import templating
from squall.core.executions import WAITING, Status, is_final
from squall.crypto import KeyRing
from squall.errors import Conflict, InvalidInput, NotFound
from squall.runners.registry import get_runner
from squall.services import definitions, events
from squall.store import audit, content, queue
from squall.store import executions as exe_store
from squall.store import kv as kv_store
from squall.store import rollouts as rollouts_store
from squall.store import workflows as wf_store
from squall.store.db import after_commit
from squall.store.executions import RUN, SCHEDULE
from squall.store.rollouts import ROLLOUT_RUNNER


class StoreKeyLookup:
    """Datastore reads for templates, inside the caller's transaction."""

    def __init__(self, conn: Connection, user: str | None, keyring: KeyRing) -> None:
        self.conn, self.user, self.keyring = conn, user, keyring

    def get(self, scope: str, name: str) -> Any:
        try:
            row = kv_store.get(self.conn, scope=scope, user=self.user, name=name)
        except NotFound:
            return None
        if row["secret"]:
            return templating.SecretValue(row["value"])
        return row["value"]

    def decrypt(self, value: str) -> str:
        plain = self.keyring.decrypt(value)
        masks.remember(plain)  # wherever the template puts it, it is masked
        return plain


def parameter_schema(action: dict[str, Any]) -> core_params.ParameterSchema:
    """The action's parameters merged with its runner's (treat as read-only)."""
    key = orjson.dumps(action.get("parameters") or {}, option=orjson.OPT_SORT_KEYS)
    return _merged_schema(action["runner_type"], key)


# Where a child execution keeps the secret values of the workflow that started
# it: a workflow's secret input rendered into a task's ordinary parameter
# (``cmd: echo <% ctx().password %>``) is masked in that task too. It sits in
# the stored copy of the action, which no view shows.
INHERITED_SECRETS = "inherited_secrets"


def execution_secrets(parameters: dict[str, Any], action: dict[str, Any]) -> list[str]:
    """The secret values an execution knows: its secret parameters', and its
    parent workflows'."""
    own = core_params.secret_values(parameters, parameter_schema(action))
    return own + [str(v) for v in action.get(INHERITED_SECRETS) or []]


@functools.lru_cache(maxsize=1024)
def _merged_schema(runner_type: str, action_params: bytes) -> core_params.ParameterSchema:
    # Merging deep-copies both schemas; every request and event needs the
    # result, so it is kept per distinct (runner, parameters) pair.
    runner = get_runner(runner_type)
    return core_params.merge_schemas(runner.meta.runner_parameters, orjson.loads(action_params))


def prepare_parameters(
    conn: Connection,
    action: dict[str, Any],
    given: dict[str, Any],
    user: str | None,
    keyring: KeyRing,
    context: dict[str, Any] | None = None,
    extra_context: dict[str, Any] | None = None,
    render: bool = True,
) -> dict[str, Any]:
    """Cast, render and validate ``given`` for ``action``; the stored parameters.

    ``extra_context`` adds names for the templates, such as ``trigger`` for a
    rule's action parameters: they are rendered in this one pass, so text
    that came from an event is never rendered again as a template. With
    ``render=False`` the given values are final (a workflow rendered them
    already) and only the schema's defaults are rendered."""
    if not isinstance(given, dict):
        raise InvalidInput("parameters must be a JSON object")
    schema = parameter_schema(action)
    cast = core_params.cast_parameters(schema, given)
    lookup = StoreKeyLookup(conn, user, keyring)
    config = pack_config(conn, action["pack"], user, keyring) if _reads_config(schema, cast) else {}
    render_ctx = templating.build_context(
        kv=lookup,
        config=config,
        action_context=context or {},
        decrypt=lookup.decrypt,
        extra=extra_context,
    )
    shell = get_runner(action["runner_type"]).meta.shell_parameters
    rendered = templating.render_parameters(
        schema, cast, render_ctx, shell_parameters=shell, literal=not render
    )
    action_params, runner_params = core_params.validate_parameters(schema, rendered)
    return {k: v for k, v in {**runner_params, **action_params}.items() if v is not None}


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value``, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _reads_config(schema: dict[str, Any], given: dict[str, Any]) -> bool:
    """Whether the parameters' templates read ``config_context`` (the pack
    config is only loaded, and its own templates rendered, when they do)."""
    return _defaults_read_config(schema) or any(
        "config_context" in s and _is_template(s) for s in _strings(given)
    )


# id(schema) -> (schema, whether its defaults read the pack config): the
# merged schemas are cached objects, the same for every execution of an
# action. Holding the schema keeps its id from being reused.
_DEFAULTS_READ_CONFIG: dict[int, tuple[dict[str, Any], bool]] = {}


def _defaults_read_config(schema: dict[str, Any]) -> bool:
    hit = _DEFAULTS_READ_CONFIG.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    defaults = [m.get("default") for m in schema.values()]
    found = any("config_context" in s and _is_template(s) for s in _strings(defaults))
    if len(_DEFAULTS_READ_CONFIG) > 1024:
        _DEFAULTS_READ_CONFIG.clear()
    _DEFAULTS_READ_CONFIG[id(schema)] = (schema, found)
    return found


def pack_config(conn: Connection, pack: str, user: str | None, keyring: KeyRing) -> dict[str, Any]:
    """The pack's config as actions see it: templates in its values (such as
    ``{{ st2kv.system.api_token | decrypt_kv }}``) rendered for ``user``."""
    config = content.pack_config(conn, pack)
    if not any(_is_template(s) for s in _strings(config)):
        return config
    lookup = StoreKeyLookup(conn, user, keyring)
    context = templating.build_context(kv=lookup, decrypt=lookup.decrypt)
    rendered: dict[str, Any] = templating.render_value(config, context)
    return rendered


def request(
    conn: Connection,
    *,
    action_ref: str,
    parameters: dict[str, Any],
    user: str | None,
    keyring: KeyRing,
    context: dict[str, Any] | None = None,
    parent_id: str | None = None,
    delay: float = 0.0,
    extra_context: dict[str, Any] | None = None,
    defer: list[dict[str, Any]] | None = None,
    render: bool = True,
    inherited_secrets: list[str] | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Check and record a new execution of ``action_ref``.

    With ``defer``, the row is appended to it instead of being inserted: the
    caller inserts a batch at once with ``exe_store.create_many`` (only
    without ``delay``). ``inherited_secrets`` are the secret values of the
    workflow starting it (:func:`execution_secrets` of its execution).
    ``source``: the client address of an API call, for the audit record."""
    action = content.get_action(conn, action_ref)
    if inherited_secrets:
        action = {**action, INHERITED_SECRETS: inherited_secrets}
    if not action.get("enabled", True):
        raise InvalidInput(f"action {action['ref']} is disabled; enable it before running it")
    if action["runner_type"] in wf_store.WORKFLOW_RUNNERS:
        definitions.check(conn, action)  # refused before anything runs
    ctx = {"user": user, **(context or {})}
    final = prepare_parameters(
        conn, action, parameters, user, keyring, ctx, extra_context, render=render
    )
    # Only a concurrency policy can hold an execution back; without one the
    # scheduler would have nothing to decide, so the execution skips it.
    held = any(
        p["policy_type"].startswith("action.concurrency")
        for p in content.policies_for(conn, action["ref"])
    )
    if defer is not None and not delay:
        row = exe_store.new_row(
            action=action, parameters=final, context=ctx, user=user, parent_id=parent_id,
            direct=not held,
        )  # fmt: skip
        defer.append(row)
    else:
        row = exe_store.create(
            conn,
            action=action,
            parameters=final,
            context=ctx,
            user=user,
            parent_id=parent_id,
            delay=delay,
            schedule=held,
        )
    _audit(conn, row, action, source)
    return row


def masked_parameters(parameters: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """Parameters with secrets masked, also where a secret travelled into
    another parameter (an ``env`` rendered from ``{{ password }}``)."""
    masked = core_params.mask_secrets(parameters, parameter_schema(action))
    return dict(masks.masker(execution_secrets(parameters, action)).data(masked))


def _audit(
    conn: Connection, row: dict[str, Any], action: dict[str, Any], source: str | None = None
) -> None:
    """Who (or which rule, workflow, rollout) started an execution, with what."""
    ctx = row["context"] or {}
    rule = (ctx.get("rule") or {}).get("ref")
    details: dict[str, Any] = {
        "action": action["ref"],
        "parameters": masked_parameters(row["parameters"], action),
    }
    if rule:
        details["rule"] = rule
        details["trigger_instance"] = (ctx.get("trigger_instance") or {}).get("id")
    if row.get("parent_id"):
        details["parent"] = row["parent_id"]
    if ctx.get("rollout"):
        details["rollout"] = ctx["rollout"].get("id")
    audit.record(
        conn,
        actor=f"rule:{rule}" if rule else row["user"],
        kind="execution",
        action=f"run {action['ref']}",
        target=row["id"],
        source=source,
        details=details,
    )


def cancel(conn: Connection, execution_id: str, user: str | None) -> dict[str, Any]:
    row = exe_store.get(conn, execution_id)
    status = Status(row["status"])
    if is_final(status):
        raise Conflict(f"execution {execution_id} is already {status}; there is nothing to cancel")
    if status == Status.CANCELING:
        return row
    extra = {"canceled_by": user}
    if status in WAITING:
        queue.ack_ref(conn, SCHEDULE, execution_id)
        queue.ack_ref(conn, RUN, execution_id)
        canceled = exe_store.set_status(
            conn,
            row,
            Status.CANCELED,
            extra_context=extra,
            result={"error": f"canceled by {user}"} if user else None,
        )
        events.executions_finished(conn, [canceled])
        if status == Status.SCHEDULED:
            # A worker may have started it already (its start is stored lazily).
            after_commit(conn, "cancel", execution_id)
        return canceled
    new = exe_store.set_status(conn, row, Status.CANCELING, extra_context=extra)
    if row["runner_type"] in wf_store.WORKFLOW_RUNNERS:
        # The engine cancels the children, then the workflow.
        wf_store.send(conn, execution_id, {"control": Status.CANCELING.value, "user": user})
    elif row["runner_type"] == ROLLOUT_RUNNER:
        # Its rollout is aborted; the execution ends with the rollout.
        rollout_id = (row["context"] or {}).get("rollout_id")
        if rollout_id:
            rollouts_store.send(conn, rollout_id, {"control": "abort", "user": user})
    else:
        after_commit(conn, "cancel", execution_id)
    return new


def rerun(
    conn: Connection,
    execution_id: str,
    *,
    parameters: dict[str, Any] | None,
    user: str | None,
    keyring: KeyRing,
    tasks: list[str] | None = None,
    reset: list[str] | None = None,
) -> dict[str, Any]:
    """A new execution of the same action, with the old parameters updated by ``parameters``.

    For a workflow, ``tasks`` re-runs it from those tasks, keeping what
    succeeded before them (``reset`` names with-items tasks whose items all
    run again, not only the failed ones)."""
    old = exe_store.get(conn, execution_id)
    rerun_ctx: dict[str, Any] = {"ref": execution_id}
    if tasks or reset:
        if old["runner_type"] not in wf_store.WORKFLOW_RUNNERS:
            raise InvalidInput("re-running from chosen tasks applies to workflows only")
        if not is_final(old["status"]):
            raise Conflict(
                f"execution {execution_id} is {old['status']}; "
                "a workflow is re-run from a task only once it has finished"
            )
        if reset and not set(reset) <= set(tasks or []):
            raise InvalidInput("every task in 'reset' must also be in 'tasks'")
        if parameters:
            raise InvalidInput(
                "a workflow re-run from tasks continues with the inputs of the run it "
                "continues; to change parameters, run the workflow again instead"
            )
        ran = {
            f"{r.get('id') or r.get('name')}" + (f"__r{r['route']}" if r.get("route") else "")
            for r in wf_store.records_of(conn, execution_id, "task").values()
        }
        unknown = [t for t in tasks or [] if t not in ran and f"{t}__r0" not in ran]
        if unknown:
            raise InvalidInput(
                f"cannot re-run from {', '.join(unknown)}: no such task ran in execution "
                f"{execution_id} (tasks that ran: {', '.join(sorted(ran)) or 'none'})"
            )
        rerun_ctx.update(tasks=list(tasks or []), reset=list(reset or []))
    action = content.get_action(conn, old["action_ref"])
    schema = parameter_schema(action)
    # Immutable parameters were filled in from the schema; they cannot be given.
    base = {k: v for k, v in old["parameters"].items() if not schema.get(k, {}).get("immutable")}
    merged = {**base, **(parameters or {})}
    return request(
        conn,
        action_ref=old["action_ref"],
        parameters=merged,
        user=user,
        keyring=keyring,
        context={"re-run": rerun_ctx},
    )
