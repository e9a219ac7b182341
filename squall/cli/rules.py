"""``squall rule``, ``trigger``, ``trigger-instance``, ``rule-enforcement``,
``webhook`` and ``sensor``: the event side of Squall.

``squall rule test`` works without a server: it evaluates a rule file
against a trigger instance file, the way StackStorm's rule tester does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from squall.cli.client import Client, _q
from squall.cli.common import client_of, error, format_options, note
from squall.cli.output import emit, format_time, print_table, scalar, show, to_yaml
from squall.core import rules as core_rules
from squall.core import templating
from squall.core.criteria import Verdict
from squall.errors import InvalidInput, NotFound, SquallError
from squall.packs.loader import load_yaml
from squall.runners.registry import get_runner

EXIT_NO_MATCH = 1
EXIT_BAD_INPUT = 2


def _get(client: Client, path: str, **params: Any) -> Any:
    return client.request("GET", path, params=params)


def _enabled(value: Any) -> Text:
    return Text("yes", style="green") if value else Text("no", style="dim")


def _total_note(client_rows: list[Any], limit: int, what: str) -> None:
    if len(client_rows) >= limit:
        note(f"only the newest {limit} {what} are shown; use --limit for more")


# --------------------------------------------------------------------------
# squall rule


@click.group()
def rule() -> None:
    """Rules: when a trigger fires and criteria hold, run an action."""


@rule.command("list")
@click.option("--pack", "-p", metavar="PACK", help="Only this pack's rules.")
@click.option("--trigger", metavar="REF", help="Only rules on this trigger (or trigger type).")
@click.option("--action", "action_", metavar="REF", help="Only rules that run this action.")
@click.option("--enabled/--disabled", default=None, help="Only enabled (or disabled) rules.")
@format_options
@click.pass_context
def rule_list(
    ctx: click.Context,
    pack: str | None,
    trigger: str | None,
    action_: str | None,
    enabled: bool | None,
    fmt: str | None,
) -> None:
    """All rules, by pack."""
    rows = _get(
        client_of(ctx),
        "/api/v1/rules",
        pack=pack,
        trigger=trigger,
        action=action_,
        enabled=None if enabled is None else str(enabled).lower(),
    )
    if emit(rows, fmt):
        return
    print_table(
        ["ref", "trigger", "action", "enabled", "description"],
        [
            [
                r["ref"],
                _trigger_label(r["trigger"]),
                r["action"]["ref"],
                _enabled(r.get("enabled")),
                str(r.get("description", "")).strip(),
            ]
            for r in rows
        ],
        no_wrap=("ref", "action"),
        empty="no rules",
    )


def _trigger_label(trigger: dict[str, Any]) -> str:
    params = trigger.get("parameters") or {}
    if not params:
        return str(trigger["type"])
    inner = ", ".join(f"{k}={scalar(v)}" for k, v in params.items())
    return f"{trigger['type']}({inner})"


@rule.command("get")
@click.argument("ref")
@format_options
@click.pass_context
def rule_get(ctx: click.Context, ref: str, fmt: str | None) -> None:
    """One rule."""
    found = _get(client_of(ctx), f"/api/v1/rules/{_q(ref)}")
    if not emit(found, fmt):
        show(to_yaml(found).rstrip())


@rule.command("create")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def rule_create(ctx: click.Context, path: Path) -> None:
    """Create a rule from a YAML or JSON file."""
    created = client_of(ctx).request("POST", "/api/v1/rules", body=load_yaml(path))
    click.echo(f"rule {created['ref']} created ({'enabled' if created['enabled'] else 'disabled'})")


@rule.command("update")
@click.argument("ref")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def rule_update(ctx: click.Context, ref: str, path: Path) -> None:
    """Replace rule REF with the rule in a YAML or JSON file."""
    updated = client_of(ctx).request("PUT", f"/api/v1/rules/{_q(ref)}", body=load_yaml(path))
    click.echo(f"rule {updated['ref']} updated")


def _set_enabled(ctx: click.Context, kind: str, ref: str, enabled: bool) -> None:
    """Rules are replaced whole (as the st2 CLI does it); sensors take just the flag."""
    client = client_of(ctx)
    path = {"rule": "/api/v1/rules", "sensor": "/api/v1/sensortypes"}[kind]
    found = _get(client, f"{path}/{_q(ref)}")
    body = {**found, "enabled": enabled} if kind == "rule" else {"enabled": enabled}
    client.request("PUT", f"{path}/{_q(found['id'])}", body=body)
    click.echo(f"{kind} {found['ref']} {'enabled' if enabled else 'disabled'}")


@rule.command("enable")
@click.argument("ref")
@click.pass_context
def rule_enable(ctx: click.Context, ref: str) -> None:
    """Enable rule REF."""
    _set_enabled(ctx, "rule", ref, True)


@rule.command("disable")
@click.argument("ref")
@click.pass_context
def rule_disable(ctx: click.Context, ref: str) -> None:
    """Disable rule REF."""
    _set_enabled(ctx, "rule", ref, False)


@rule.command("delete")
@click.argument("ref")
@click.pass_context
def rule_delete(ctx: click.Context, ref: str) -> None:
    """Delete rule REF (a rule from a pack comes back when the pack is registered again)."""
    client_of(ctx).request("DELETE", f"/api/v1/rules/{_q(ref)}")
    click.echo(f"rule {ref} deleted")


# --------------------------------------------------------------------------
# squall rule test


class _ApiKeys:
    """Datastore reads for ``st2kv`` in a tested rule, from the server if one answers."""

    def __init__(self, ctx: click.Context) -> None:
        self.ctx = ctx

    def get(self, scope: str, name: str) -> Any:
        try:
            found = client_of(self.ctx).get_key(name, scope=scope)
        except NotFound:
            return None
        except SquallError as exc:
            raise InvalidInput(f"st2kv.{scope}.{name}: {exc.message}") from None
        if found.get("secret"):
            return templating.SecretValue(str(found.get("value", "")))
        return found.get("value")


def _shell_parameters(ctx: click.Context, action_ref: str) -> frozenset[str]:
    """The action's parameters that are shell commands (their insertions are
    quoted), asked of the server; a shell runner's ``cmd`` when none answers."""
    try:
        runner = client_of(ctx).get_action(action_ref).get("runner_type")
        return get_runner(str(runner)).meta.shell_parameters
    except SquallError:
        return frozenset({"cmd"})


def _load_test_inputs(
    ctx: click.Context,
    rule_file: Path | None,
    instance_file: Path | None,
    rule_ref: str | None,
    instance_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    if (rule_file is None) == (rule_ref is None):
        raise click.UsageError("give a RULE_FILE or --rule NAME (one of them)")
    if (instance_file is None) == (instance_id is None):
        raise click.UsageError("give a TRIGGER_INSTANCE_FILE or --trigger-instance ID")
    if rule_file is not None:
        data = load_yaml(rule_file)
        if not isinstance(data, dict):
            raise InvalidInput(f"{rule_file}: a rule must be a mapping")
        rule_meta = core_rules.normalize(data)
    else:
        rule_meta = _get(client_of(ctx), f"/api/v1/rules/{_q(str(rule_ref))}")
    if instance_file is not None:
        instance = load_yaml(instance_file)
        if not isinstance(instance, dict):
            raise InvalidInput(f"{instance_file}: a trigger instance must be a mapping")
        if "payload" not in instance:
            instance = {"payload": instance}  # a bare payload is fine too
    else:
        instance = _get(client_of(ctx), f"/api/v1/triggerinstances/{_q(str(instance_id))}")
    return rule_meta, instance


def _verdict_rows(verdicts: list[Verdict]) -> list[list[str | Text]]:
    rows: list[list[str | Text]] = []
    for v in verdicts:
        mark = Text("pass", style="green") if v.passed else Text("FAIL", style="red bold")
        rows.append([v.key, v.operator, scalar(v.pattern), scalar(v.value), mark, v.reason])
    return rows


@rule.command("test")
@click.argument(
    "rule_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.argument(
    "instance_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--rule", "rule_ref", metavar="REF", help="A stored rule instead of a file.")
@click.option("--trigger-instance", "instance_id", metavar="ID", help="A stored trigger instance.")
@click.pass_context
def rule_test(
    ctx: click.Context,
    rule_file: Path | None,
    instance_file: Path | None,
    rule_ref: str | None,
    instance_id: str | None,
) -> None:
    """Would RULE_FILE fire for TRIGGER_INSTANCE_FILE? Exit 0 if it matches, 1 if not
    (2 when the rule or the event cannot be used).

    Prints each criterion's verdict and, on a match, the action parameters
    the rule would render. The trigger instance file holds
    {trigger: REF, payload: {...}} (or just the payload).
    """
    try:
        rule_meta, instance = _load_test_inputs(
            ctx, rule_file, instance_file, rule_ref, instance_id
        )
        compiled = core_rules.compile_rule({**rule_meta, "id": rule_meta.get("id", "")})
    except InvalidInput as exc:
        # Not "no match": a broken rule or event must not pass for one in a pack's tests.
        error(exc.message)
        ctx.exit(EXIT_BAD_INPUT)
    payload = instance.get("payload")
    trigger = instance.get("trigger")
    wanted = (compiled.trigger_ref, compiled.trigger_type)
    if trigger and trigger not in wanted:
        click.echo(f"no match: the instance is of trigger {trigger}; the rule wants {wanted[0]}")
        ctx.exit(EXIT_NO_MATCH)
    keys = _ApiKeys(ctx)
    context = templating.build_context(
        kv=keys, extra={"trigger": payload, "rule": {"ref": compiled.ref}}
    )

    def render(pattern: Any) -> Any:
        return templating.render_value(pattern, context, name="criteria pattern")

    verdicts = compiled.criteria.explain(payload, render)
    if verdicts:
        print_table(["criterion", "operator", "pattern", "value", "verdict", "reason"],
                    _verdict_rows(verdicts))  # fmt: skip
    matched = all(v.passed for v in verdicts)
    if not matched:
        click.echo(f"rule {compiled.ref} does NOT match")
        ctx.exit(EXIT_NO_MATCH)
    click.echo(f"rule {compiled.ref} matches: it would run {compiled.action_ref} with:")
    try:
        shell = _shell_parameters(ctx, compiled.action_ref)
        params = {
            name: templating.render_value(
                value, context, name=f"action parameters.{name}", shell=name in shell
            )
            for name, value in compiled.action_parameters.items()
        }
    except SquallError as exc:
        click.echo(f"  (but its parameters do not render: {exc.message})")
        ctx.exit(EXIT_NO_MATCH)
    click.echo(to_yaml(params).rstrip() if params else "  (no parameters)")


# --------------------------------------------------------------------------
# squall trigger, trigger-instance, rule-enforcement


@click.group()
def trigger() -> None:
    """Trigger types: the kinds of events rules can listen to."""


@trigger.command("list")
@click.option("--pack", "-p", metavar="PACK", help="Only this pack's trigger types.")
@format_options
@click.pass_context
def trigger_list(ctx: click.Context, pack: str | None, fmt: str | None) -> None:
    """All trigger types."""
    rows = _get(client_of(ctx), "/api/v1/triggertypes", pack=pack)
    if emit(rows, fmt):
        return
    print_table(
        ["ref", "description"],
        [[r["ref"], str(r.get("description", "")).strip()] for r in rows],
        no_wrap=("ref",),
        empty="no trigger types",
    )


@trigger.command("get")
@click.argument("ref")
@format_options
@click.pass_context
def trigger_get(ctx: click.Context, ref: str, fmt: str | None) -> None:
    """One trigger type, with its parameter and payload schemas."""
    found = _get(client_of(ctx), f"/api/v1/triggertypes/{_q(ref)}")
    if not emit(found, fmt):
        show(to_yaml(found).rstrip())


@click.group("trigger-instance")
def trigger_instance() -> None:
    """Trigger instances: every event Squall received."""


@trigger_instance.command("list")
@click.option("--trigger", metavar="REF", help="Only events of this trigger (or trigger type).")
@click.option("--status", metavar="STATUS", help="pending, processed, processing_failed, rejected")
@click.option("--limit", "-n", type=click.IntRange(1, 10000), default=50, show_default=True)
@format_options
@click.pass_context
def trigger_instance_list(
    ctx: click.Context, trigger: str | None, status: str | None, limit: int, fmt: str | None
) -> None:
    """The newest events."""
    rows = _get(
        client_of(ctx), "/api/v1/triggerinstances", trigger=trigger, status=status, limit=limit
    )
    if emit(rows, fmt):
        return
    print_table(
        ["id", "trigger", "time", "status"],
        [[r["id"], r["trigger"], format_time(r["occurrence_time"]), r["status"]] for r in rows],
        no_wrap=("id", "trigger"),
        empty="no trigger instances",
    )
    _total_note(rows, limit, "trigger instances")


@trigger_instance.command("get")
@click.argument("instance_id", metavar="ID")
@format_options
@click.pass_context
def trigger_instance_get(ctx: click.Context, instance_id: str, fmt: str | None) -> None:
    """One event with its payload, and what the rules did with it."""
    client = client_of(ctx)
    found = _get(client, f"/api/v1/triggerinstances/{_q(instance_id)}")
    if emit(found, fmt):
        return
    show(to_yaml(found).rstrip())
    done = _get(client, "/api/v1/ruleenforcements", trigger_instance=instance_id, limit=100)
    if done:
        click.echo("")
        _print_enforcements(done)


@trigger_instance.command("re-emit")
@click.argument("instance_id", metavar="ID")
@click.pass_context
def trigger_instance_re_emit(ctx: click.Context, instance_id: str) -> None:
    """Send a stored event through the rules again, as a new trigger instance."""
    result = client_of(ctx).request("POST", f"/api/v1/triggerinstances/{_q(instance_id)}/re_emit")
    new = result.get("trigger_instance") or {}
    click.echo(f"trigger instance {instance_id} re-emitted as {new.get('id', '?')}")


@click.group("rule-enforcement")
def rule_enforcement() -> None:
    """Rule enforcements: which rule fired for which event, and what came of it."""


def _print_enforcements(rows: list[dict[str, Any]]) -> None:
    print_table(
        ["id", "rule", "trigger instance", "status", "execution / reason", "time"],
        [
            [
                r["id"],
                r["rule"]["ref"],
                r["trigger_instance_id"],
                Text(r["status"], style="green" if r["status"] == "succeeded" else "yellow"),
                r.get("execution_id") or r.get("failure_reason") or "",
                format_time(r["enforced_at"]),
            ]
            for r in rows
        ],
        no_wrap=("id", "rule", "trigger instance"),
        empty="no rule enforcements",
    )


@rule_enforcement.command("list")
@click.option("--rule", "rule_ref", metavar="REF", help="Only this rule's enforcements.")
@click.option("--trigger-instance", metavar="ID", help="Only for this trigger instance.")
@click.option("--execution", metavar="ID", help="Only the one that started this execution.")
@click.option("--status", metavar="STATUS", help="succeeded, failed, throttled, deferred")
@click.option("--limit", "-n", type=click.IntRange(1, 10000), default=50, show_default=True)
@format_options
@click.pass_context
def rule_enforcement_list(
    ctx: click.Context,
    rule_ref: str | None,
    trigger_instance: str | None,
    execution: str | None,
    status: str | None,
    limit: int,
    fmt: str | None,
) -> None:
    """The newest enforcements."""
    rows = _get(
        client_of(ctx),
        "/api/v1/ruleenforcements",
        rule_ref=rule_ref,
        trigger_instance=trigger_instance,
        execution=execution,
        status=status,
        limit=limit,
    )
    if emit(rows, fmt):
        return
    _print_enforcements(rows)
    _total_note(rows, limit, "enforcements")


# --------------------------------------------------------------------------
# squall webhook, sensor


@click.group()
def webhook() -> None:
    """Webhooks: URLs under /api/v1/webhooks/ that rules listen to."""


@webhook.command("list")
@format_options
@click.pass_context
def webhook_list(ctx: click.Context, fmt: str | None) -> None:
    """Every registered webhook URL."""
    client = client_of(ctx)
    rows = _get(client, "/api/v1/webhooks")
    if emit(rows, fmt):
        return
    print_table(
        ["url", "signed", "endpoint"],
        [
            [
                r["url"],
                "HMAC" if r.get("signed") else "",
                f"{client.url}/api/v1/webhooks/{r['url']}",
            ]
            for r in sorted(rows, key=lambda r: str(r["url"]))
        ],
        no_wrap=("url", "endpoint"),
        empty="no webhooks: create a rule on core.st2.webhook",
    )


@click.group()
def sensor() -> None:
    """Sensors: pack code that watches something and emits events."""


@sensor.command("list")
@click.option("--pack", "-p", metavar="PACK", help="Only this pack's sensors.")
@format_options
@click.pass_context
def sensor_list(ctx: click.Context, pack: str | None, fmt: str | None) -> None:
    """All sensors and the state of their processes."""
    rows = _get(client_of(ctx), "/api/v1/sensortypes", pack=pack)
    if emit(rows, fmt):
        return
    print_table(
        ["ref", "enabled", "state", "restarts", "last error"],
        [
            [
                r["ref"],
                _enabled(r.get("enabled")),
                str(r.get("status", {}).get("state", "")),
                str(r.get("status", {}).get("restarts", "")),
                _last_line(r.get("status", {}).get("last_error")),
            ]
            for r in rows
        ],
        no_wrap=("ref",),
        empty="no sensors",
    )


def _last_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1] if lines else ""


@sensor.command("enable")
@click.argument("ref")
@click.pass_context
def sensor_enable(ctx: click.Context, ref: str) -> None:
    """Start sensor REF."""
    _set_enabled(ctx, "sensor", ref, True)


@sensor.command("disable")
@click.argument("ref")
@click.pass_context
def sensor_disable(ctx: click.Context, ref: str) -> None:
    """Stop sensor REF."""
    _set_enabled(ctx, "sensor", ref, False)
