"""In-process delivery of committed effects: wake-ups and live events.

The database hands every committed transaction's effects to :meth:`Bus.handle`.
A ``wake`` effect sets the event a queue consumer sleeps on; an ``event``
effect goes to every live subscriber (the event stream); a ``cancel`` effect
reaches the worker running that execution. Nothing here is durable, and
nothing needs to be: the work itself is in the database, these only make
consumers notice it sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy.engine import Connection

from squall.store import queue

log = logging.getLogger(__name__)

Event = tuple[str, Any]


class Subscription:
    def __init__(self, bus: Bus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # A reader that cannot keep up is cut off rather than slowing
            # everyone else down; it can reconnect and re-read the API.
            self.overflowed = True
            self.close()

    def close(self) -> None:
        self._bus._subs.discard(self)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> Event | None:
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item


class Bus:
    def __init__(self) -> None:
        self._wakers: dict[str, asyncio.Event] = {}
        self._subs: set[Subscription] = set()
        self._handlers: dict[str, list[Callable[[Any], None]]] = {}

    def waker(self, topic: str) -> asyncio.Event:
        return self._wakers.setdefault(topic, asyncio.Event())

    def wake(self, topic: str) -> None:
        self.waker(topic).set()

    def wake_all(self) -> None:
        """Every consumer looks for work: after wake-ups may have been missed
        (the connection that brings other processes' effects came back)."""
        for event in self._wakers.values():
            event.set()

    def on(self, kind: str, handler: Callable[[Any], None]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subs.add(sub)
        return sub

    def watched(self) -> bool:
        """Whether anyone subscribes to live events."""
        return bool(self._subs)

    def publish(self, name: str, payload: Any) -> None:
        for sub in list(self._subs):
            sub.offer((name, payload))

    def handle(self, effects: list[tuple[str, Any]]) -> None:
        for kind, payload in effects:
            if kind == "wake":
                self.wake(payload)
            elif kind == "event":
                self.publish(*payload)
            for handler in self._handlers.get(kind, ()):
                try:
                    handler(payload)
                except Exception:
                    log.exception("effect handler for %s failed", kind)


async def wait_for_wake(event: asyncio.Event, timeout: float) -> None:
    """Sleep until ``event`` is set or ``timeout`` passes. Consumers clear the
    event *before* they look for work, so a wake-up is never lost."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout, 0.0))


def _due_refs(conn: Connection, topic: str, limit: int) -> tuple[list[str], float | None]:
    """Refs with events due now, and in how many seconds the next delayed
    event is due (one read per round)."""
    due = queue.due_refs(conn, topic, limit)
    if due:
        return due, None
    nxt = queue.next_due(conn, topic)
    return [], None if nxt is None else max(0.01, nxt - time.time())


async def step_refs(
    db: Any,
    bus: Bus,
    topic: str,
    step: Callable[[str], Awaitable[None]],
    *,
    batch: int,
    what: str,
) -> None:
    """Run ``step(ref)`` for every ref of ``topic`` with due events, for ever:
    the loop of the workflow engine and the rollout controller. One job per
    ref, so the writer commits them together; woken by the bus, with a slow
    poll as a safety net."""
    wake = bus.waker(topic)
    while True:
        wake.clear()
        try:
            due, nxt = await db.read(_due_refs, topic, batch)
            if due:
                await asyncio.gather(*(step(ref) for ref in due))
                if wake.is_set() or len(due) >= batch:
                    continue  # more arrived meanwhile
                nxt = None  # nothing new: sleep until woken (or the safety poll)
        except Exception:
            log.exception("%s failed a round; retrying", what)
            await asyncio.sleep(1.0)
            continue
        await wait_for_wake(wake, 5.0 if nxt is None else max(0.0, min(5.0, nxt)))
