"""The rules engine: turns stored events into rule enforcements and executions.

Each step is one write transaction that takes a small batch of due work off
the queue — pending trigger instances, timers that are due, hygiene windows
that close — and records everything it decides (enforcements, executions,
the next timer firing, the instances' status) before the commit. A crash
before the commit leaves the work queued, so no event is lost, and none is
handled twice.

Steps are kept small (a few milliseconds): SQLite has one writer, and a
webhook's answer waits for its event to be committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from squall import metrics
from squall.core import rules as core_rules
from squall.core import templating, timers
from squall.core.rbac import Role, has_permission, resource_from_ref
from squall.core.rules import CompiledRule, Decision, RuleIndex
from squall.core.timestamps import iso
from squall.crypto import KeyRing
from squall.errors import SquallError
from squall.services import executions as exe_service
from squall.services import inbox as calls
from squall.services.bus import Bus
from squall.services.inbox import InboxReader
from squall.store import auth, queue
from squall.store import executions as exe_store
from squall.store import rbac as rbac_store
from squall.store import rules as rule_store
from squall.store import triggers as trigger_store
from squall.store.db import Database
from squall.store.queue import WorkItem

log = logging.getLogger(__name__)

EVENTS_PER_STEP = 32
# Timers and windows are looked for at most this often while events flow
# (and at once when one is queued): a second of timer resolution is what
# StackStorm offers, and the lookups are not free under load.
DUE_CHECK_SECONDS = 0.2
IDLE_POLL_SECONDS = 5.0  # safety net; wake-ups normally come from the bus
DEFAULT_RULE_USER = "admin"


def _rule_info(rule: CompiledRule) -> dict[str, Any]:
    return {"id": rule.id, "ref": rule.ref, "name": rule.meta.get("name")}


class _Cache:
    """The compiled rule index, rebuilt when the rules change."""

    def __init__(self) -> None:
        self.generation: tuple[int, float] | None = None
        self.index = RuleIndex([])

    def get(self, conn: Connection) -> RuleIndex:
        generation = rule_store.generation(conn)
        if generation != self.generation:
            compiled = []
            for meta in rule_store.list_(conn):
                try:
                    compiled.append(core_rules.compile_rule(meta))
                except SquallError as exc:  # stored before a stricter check: skip it, loudly
                    log.error("rule %s cannot be used: %s", meta.get("ref"), exc.message)
            self.index = RuleIndex(compiled)
            self.generation = generation
        return self.index


@dataclass
class _Event:
    id: str
    trigger: str
    payload: Any


class RulesEngine:
    def __init__(
        self, db: Database, bus: Bus, keyring: KeyRing, inbox: InboxReader | None = None
    ) -> None:
        self.db, self.bus, self.keyring = db, bus, keyring
        # Webhook calls answered by `squall intake` (services/inbox.py).
        self.inbox = inbox
        self.cache = _Cache()
        self.check_due_at = 0.0
        # Rule owners: (enabled, roles, until) - looked up once a few seconds.
        self.owners: dict[str, tuple[bool, list[Role], float]] = {}

    # ------------------------------------------------------------------
    # The loop

    async def run(self) -> None:
        due_wakers = [self.bus.waker(t) for t in (rule_store.TIMER, rule_store.WINDOW)]
        wakers = [self.bus.waker(trigger_store.RULES), *due_wakers]
        while True:
            if any(w.is_set() for w in due_wakers):
                self.check_due_at = 0.0
            for w in wakers:
                w.clear()
            if self.inbox is not None:
                self.inbox.drain()  # this step reads the inbox
            try:
                busy = await self.db.write(self.step)
            except SquallError as exc:
                log.warning("rules engine: %s; retrying", exc.message)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("rules engine step failed; handling its events one by one")
                await self.db.write(self.quarantine_one)
                continue
            if busy:
                await asyncio.sleep(0)  # let webhook writes in between steps
                continue
            self.check_due_at = 0.0  # idle: the next step looks at timers and windows
            wait = await self.db.read(self._next_due)
            if self.inbox is None:
                await _wait_any(wakers, wait)
                continue
            with self.inbox.arrivals() as arrived:
                await _wait_any([*wakers, arrived], wait)

    @staticmethod
    def _next_due(conn: Connection) -> float:
        due = [queue.next_due(conn, t) for t in (rule_store.TIMER, rule_store.WINDOW)]
        soonest = min((d for d in due if d is not None), default=None)
        if soonest is None:
            return IDLE_POLL_SECONDS
        return max(0.0, min(IDLE_POLL_SECONDS, soonest - time.time()))

    # ------------------------------------------------------------------
    # One step (inside a write transaction)

    def step(self, conn: Connection) -> bool:
        index = self.cache.get(conn)
        now = time.time()
        check_due = now >= self.check_due_at
        if check_due:
            self.check_due_at = now + DUE_CHECK_SECONDS
        events = self._due_timers(conn, now) if check_due else []
        if self.inbox is not None:
            events += self._from_inbox(conn, self.inbox.take(conn, EVENTS_PER_STEP))
        pending = trigger_store.take_pending(conn, EVENTS_PER_STEP)
        events += [_Event(r["id"], r["trigger"], r["payload"]) for r in pending]
        enforcements: list[dict[str, Any]] = []
        statuses: dict[str, str] = {}
        executions: list[dict[str, Any]] = []
        for event in events:
            enforcements += self._handle(conn, index, event, now, executions)
            statuses[event.id] = trigger_store.PROCESSED
        windows = queue.take(conn, rule_store.WINDOW, limit=EVENTS_PER_STEP) if check_due else []
        for item in windows:
            enforcements += self._close_window(conn, index, item, now, executions)
        exe_store.create_many(conn, executions)
        rule_store.add_enforcements(conn, enforcements)
        trigger_store.set_statuses(conn, statuses)
        metrics.RULE_MATCHES.inc(len(enforcements))
        return bool(pending or windows or events)

    def _from_inbox(
        self, conn: Connection, records: list[Any], status: str = trigger_store.PROCESSED
    ) -> list[_Event]:
        """The events of accepted calls, stored as instances handled in this
        step (as a timer's are); other records are kept as they are."""
        events = []
        for seq, kind, data in records:
            try:
                if kind == calls.ACCEPTED:
                    rows = trigger_store.create_instances(
                        conn, calls.accepted_events(data), status=status, at=data.get("at")
                    )
                    events += [_Event(r["id"], r["trigger"], r["payload"]) for r in rows]
                else:
                    calls.keep(conn, kind, data)
            except calls.UNKEEPABLE as exc:
                log.error("webhook inbox record %s (%s) is dropped: %s", seq, kind, exc)
        return events

    def quarantine_one(self, conn: Connection) -> None:
        """After a failed step: handle one event alone; if it fails again,
        mark it failed so it cannot block the others."""
        if self.inbox is not None and self._quarantine_inbox(conn):
            return
        pending = trigger_store.take_pending(conn, 1)
        if not pending:
            return
        event = _Event(pending[0]["id"], pending[0]["trigger"], pending[0]["payload"])
        try:
            with conn.begin_nested():
                executions: list[dict[str, Any]] = []
                found = self._handle(conn, self.cache.get(conn), event, time.time(), executions)
                exe_store.create_many(conn, executions)
                rule_store.add_enforcements(conn, found)
                trigger_store.set_statuses(conn, {event.id: trigger_store.PROCESSED})
        except Exception:
            log.exception("trigger instance %s could not be processed", event.id)
            trigger_store.set_statuses(conn, {event.id: trigger_store.PROCESSING_FAILED})

    def _quarantine_inbox(self, conn: Connection) -> bool:
        """:meth:`quarantine_one` for the inbox's next record: its instances
        are kept, marked failed, when handling them fails again."""
        assert self.inbox is not None
        records = self.inbox.take(conn, 1)
        if not records:
            return False
        try:
            with conn.begin_nested():
                executions: list[dict[str, Any]] = []
                found: list[dict[str, Any]] = []
                index, now = self.cache.get(conn), time.time()
                for event in self._from_inbox(conn, records):
                    found += self._handle(conn, index, event, now, executions)
                exe_store.create_many(conn, executions)
                rule_store.add_enforcements(conn, found)
        except Exception:
            log.exception("webhook inbox record %s could not be processed", records[0][0])
            self._from_inbox(conn, records, trigger_store.PROCESSING_FAILED)
        return True

    def _due_timers(self, conn: Connection, now: float) -> list[_Event]:
        events = []
        for item in queue.take(conn, rule_store.TIMER, limit=EVENTS_PER_STEP):
            spec = item.payload or {}
            payload = {"executed_at": iso(now), "schedule": spec.get("parameters")}
            row = trigger_store.create_instance(
                conn, item.ref, payload, {"source": "timer"}, status=trigger_store.PROCESSED
            )
            events.append(_Event(row["id"], item.ref, payload))
            try:
                at = timers.next_fire(spec["type"], spec["parameters"], now)
            except (SquallError, KeyError) as exc:
                log.error("timer %s stopped: %s", item.ref, exc)
                continue
            if at is not None:
                queue.enqueue(conn, rule_store.TIMER, item.ref, spec, at=at)
        return events

    def _handle(
        self,
        conn: Connection,
        index: RuleIndex,
        event: _Event,
        now: float,
        executions: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        out = []
        for rule in index.for_trigger(event.trigger):
            context = self._context(conn, rule, event.payload)
            try:
                matched = rule.criteria.matches(event.payload, _renderer(context))
            except SquallError as exc:
                log.info("rule %s: criteria failed on %s: %s", rule.ref, event.id, exc.message)
                matched = False
            if not matched:
                continue
            if rule.throttle is None and rule.accumulate is None:
                out.append(self._enforce(conn, rule, event.id, [event.payload], executions))
                continue
            group = core_rules.group_key(rule.group_by, event.payload)
            window = rule_store.get_window(conn, rule.ref, group)
            decision = core_rules.on_event(rule, window, event.id, now)
            out.append(self._apply(conn, rule, group, decision, event.id, executions))
        return out

    def _apply(
        self,
        conn: Connection,
        rule: CompiledRule,
        group: str,
        decision: Decision,
        last: str,
        executions: list[dict[str, Any]],
    ) -> dict[str, Any]:
        rule_store.put_window(conn, rule.ref, group, decision.window)
        if decision.close_at is not None:
            queue.enqueue(
                conn, rule_store.WINDOW, rule.id, {"rule": rule.ref, "group": group},
                at=decision.close_at,
            )  # fmt: skip
        if not decision.fire:
            count = decision.window.count if decision.window else 0
            return rule_store.enforcement(
                rule, last, status=decision.status, details={"group": group, "count": count}
            )
        ids = list(decision.instances)
        found = trigger_store.get_instances(conn, ids)
        payloads = [found[i]["payload"] for i in ids if i in found]
        details = {"group": group, "instances": ids} if len(ids) > 1 else {"group": group}
        return self._enforce(conn, rule, ids[-1], payloads, executions, details)

    def _close_window(
        self,
        conn: Connection,
        index: RuleIndex,
        item: WorkItem,
        now: float,
        executions: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        spec = item.payload or {}
        rule = index.by_ref.get(str(spec.get("rule")))
        if rule is None:
            return []
        group = str(spec.get("group", ""))
        decision = core_rules.on_close(rule, rule_store.get_window(conn, rule.ref, group), now)
        if not decision.fire:
            rule_store.put_window(conn, rule.ref, group, decision.window)
            return []
        return [self._apply(conn, rule, group, decision, decision.instances[-1], executions)]

    def _context(self, conn: Connection, rule: CompiledRule, payload: Any) -> dict[str, Any]:
        user = _rule_user(rule)
        lookup = exe_service.StoreKeyLookup(conn, user, self.keyring)
        return templating.build_context(
            kv=lookup, decrypt=lookup.decrypt, extra={"trigger": payload, "rule": _rule_info(rule)}
        )

    def _enforce(
        self,
        conn: Connection,
        rule: CompiledRule,
        instance_id: str,
        payloads: list[Any],
        executions: list[dict[str, Any]],
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start the rule's action for an event (the last of ``payloads``)."""
        user = _rule_user(rule)
        trigger_type = rule.trigger_type
        exec_context = {
            "rule": _rule_info(rule),
            "trigger_instance": {"id": instance_id, "name": None},
            "trigger": {"ref": rule.trigger_ref, "type": trigger_type},
        }
        extra: dict[str, Any] = {"trigger": payloads[-1], "rule": _rule_info(rule)}
        if rule.accumulate is not None or len(payloads) > 1:
            extra["events"] = payloads
        refusal = self._owner_refusal(conn, rule)
        if refusal:
            return rule_store.enforcement(
                rule, instance_id, status=rule_store.FAILED, reason=refusal, details=details
            )
        try:
            execution = exe_service.request(
                conn,
                action_ref=rule.action_ref,
                parameters=dict(rule.action_parameters),
                user=user,
                keyring=self.keyring,
                context=exec_context,
                extra_context=extra,
                defer=executions,
            )
        except SquallError as exc:
            return rule_store.enforcement(
                rule, instance_id, status=rule_store.FAILED, reason=exc.message, details=details
            )
        return rule_store.enforcement(
            rule,
            instance_id,
            status=rule_store.SUCCEEDED,
            execution_id=execution["id"],
            details=details,
        )

    def _owner_refusal(self, conn: Connection, rule: CompiledRule) -> str | None:
        """Why the rule's owner may not run its action (None: it may). Rules
        with no owner (packs registered from disk) run as the system."""
        owner = (rule.meta.get("context") or {}).get("user")
        if not owner:
            return None
        now = time.monotonic()
        hit = self.owners.get(owner)
        if hit is None or hit[2] < now:
            enabled = auth.user_is_active(conn, owner)
            hit = (enabled, rbac_store.roles_of(conn, owner) if enabled else [], now + 5.0)
            self.owners[owner] = hit
        enabled, roles, _ = hit
        if not enabled:
            return f"the rule's owner {owner!r} is disabled or unknown: the action was not run"
        action = resource_from_ref("action", rule.action_ref)
        if not has_permission(roles, "action_execute", action):
            return (
                f"the rule's owner {owner!r} lacks the permission 'action_execute' on "
                f"{action.uid}: the action was not run"
            )
        return None


def _rule_user(rule: CompiledRule) -> str:
    context = rule.meta.get("context") or {}
    return str(context.get("user") or DEFAULT_RULE_USER)


def _renderer(context: dict[str, Any]) -> Any:
    def render(pattern: Any) -> Any:
        return templating.render_value(pattern, context, name="criteria pattern")

    return render


async def _wait_any(wakers: list[asyncio.Event], timeout: float) -> None:
    if any(w.is_set() for w in wakers):
        return
    tasks = [asyncio.ensure_future(w.wait()) for w in wakers]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
