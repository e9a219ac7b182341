"""Managing rules and trigger types: the checks and changes the API, the CLI
and pack registration share. Each function runs inside the caller's
transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from squall.core import rules as core_rules
from squall.core import timers
from squall.core import triggers as core_triggers
from squall.errors import Conflict, ContentError, InvalidInput, NotFound
from squall.packs.loader import LoadedPack
from squall.store import content
from squall.store import rules as rule_store
from squall.store import triggers as trigger_store


def validate(
    conn: Connection, data: Any, *, pack: str | None = None, user: str | None = None
) -> dict[str, Any]:
    """The stored form of rule ``data`` after every check that needs the
    store: its trigger type exists and takes these parameters, its action
    exists, its criteria and hygiene compile."""
    meta = core_rules.normalize(data, pack=pack)
    ref = meta["ref"]
    type_ref = meta["trigger"]["type"]
    try:
        trigger_type = trigger_store.get_type(conn, type_ref)
    except NotFound:
        raise InvalidInput(f"rule {ref}: trigger type {type_ref!r} is not registered") from None
    try:
        core_triggers.validate_parameters(trigger_type, meta["trigger"]["parameters"])
        if type_ref in core_triggers.TIMER_TYPES:
            timers.check(type_ref, meta["trigger"]["parameters"])
    except InvalidInput as exc:
        raise InvalidInput(f"rule {ref}: {exc.message}") from None
    try:
        content.get_action(conn, meta["action"]["ref"])
    except NotFound:
        raise InvalidInput(
            f"rule {ref}: action {meta['action']['ref']!r} is not registered"
        ) from None
    core_rules.compile_rule(meta)
    if user:
        # The rule's owner, whose permissions its action runs with: whoever
        # created or last changed it, never what the rule itself claims.
        meta["context"]["user"] = user
    return meta


def create(conn: Connection, data: Any, user: str | None) -> dict[str, Any]:
    meta = validate(conn, data, user=user)
    try:
        rule_store.get(conn, meta["ref"])
    except NotFound:
        return rule_store.put(conn, meta, source="api")
    raise Conflict(f"rule {meta['ref']} already exists; update it instead")


def update(conn: Connection, ref_or_id: str, data: Any, user: str | None) -> dict[str, Any]:
    old = rule_store.get(conn, ref_or_id)
    if not isinstance(data, dict):
        raise InvalidInput("a rule must be a JSON object")
    merged = {
        **data,
        "name": data.get("name") or old["name"],
        "pack": data.get("pack") or old["pack"],
    }
    meta = validate(conn, merged, user=user)
    if meta["ref"] != old["ref"]:
        raise InvalidInput(
            f"a rule cannot be renamed by an update ({old['ref']} -> {meta['ref']}); "
            "create the new one and delete the old one"
        )
    return rule_store.put(conn, {**meta, "id": old["id"]})


def set_enabled(conn: Connection, ref_or_id: str, enabled: bool) -> dict[str, Any]:
    meta = rule_store.get(conn, ref_or_id)
    if meta["enabled"] == enabled:
        return meta
    return rule_store.put(conn, {**meta, "enabled": enabled})


def register_pack_content(conn: Connection, pack: LoadedPack) -> list[ContentError]:
    """Store the trigger types a pack declares (rules come later, once every
    pack's actions and trigger types are known)."""
    types = [{k: v for k, v in t.items() if k != "metadata_file"} for t in pack.triggers]
    trigger_store.sync_types(conn, pack.ref, types)
    trigger_store.ensure_builtin_types(conn)
    return []


def register_pack_rules(
    conn: Connection, pack: LoadedPack, owner: str | None = None
) -> tuple[int, list[ContentError]]:
    """Replace the pack's rules with those on disk; a broken rule is reported
    and skipped, the others are registered. ``owner`` is the user the
    pack's rules run as (None: the system)."""
    errors: list[ContentError] = []
    stored = []
    for rule in pack.rules:
        path = str(Path(pack.path) / rule.get("metadata_file", ""))
        try:
            meta = validate(conn, rule, pack=pack.ref, user=owner)
        except InvalidInput as exc:
            errors.append(ContentError(path, exc.message))
            continue
        # As in StackStorm, the file wins: registering again resets an
        # enable or disable made through the API.
        stored.append(rule_store.put(conn, meta, source="pack", refresh=False)["ref"])
    rule_store.delete_pack_rules(conn, pack.ref, keep=stored, refresh=False)
    rule_store.changed(conn)
    return len(stored), errors
