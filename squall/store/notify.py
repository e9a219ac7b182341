"""Committed effects between processes, with PostgreSQL's LISTEN/NOTIFY.

Every write transaction on PostgreSQL sends its effects (``wake``, ``event``,
``cancel``...) with ``pg_notify`` just before it commits: PostgreSQL delivers
notifications only once the transaction commits, and drops them if it rolls
back, which is exactly the contract of :func:`squall.store.db.after_commit`.
The sending process delivers its own effects in-process (sooner), so a
listener skips messages that carry its own origin.

A notification's payload is limited to 8000 bytes. A transaction's effects
are one JSON message, cut into chunks that fit; each chunk says which message
it belongs to and where it goes, and the listener joins them back together.

Live events for the event stream (``event`` effects, most of the traffic
under load) go on a channel of their own, which only processes that serve
the stream listen to, and which they decode only while someone watches it:
a worker has no use for them.

Each process listens on one dedicated autocommit connection. When that
connection drops, the listener reconnects and wakes every consumer, which
then looks at the database for work it may have missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.store import fast

log = logging.getLogger(__name__)

CHANNEL = "squall_effects"  # wake-ups, cancels, changes: every process
EVENTS_CHANNEL = "squall_events"  # live events: processes serving the stream
# PostgreSQL refuses payloads of 8000 bytes or more; leave room for the header.
CHUNK_BYTES = 7800
RECONNECT_SECONDS = 1.0

Effects = list[tuple[str, Any]]

# Held back like the INSERTs (fast.defer): it goes out in the same round trip
# as the transaction's new rows, just before the commit.
_NOTIFY = fast.Statement(
    sa.select(sa.func.pg_notify(sa.bindparam("channel", type_=sa.Text), sa.bindparam("payload"))),
    deferrable=True,
)


def _split(data: bytes, size: int) -> list[bytes]:
    """Cut UTF-8 ``data`` into pieces of at most ``size`` bytes, never inside a character."""
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        # Back off continuation bytes (10xxxxxx) so a character stays whole.
        while end < len(data) and end > start and (data[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(data[start:end])
        start = end
    return pieces


class Publisher:
    """Turns a transaction's effects into notifications (in that transaction)."""

    def __init__(self, origin: str | None = None) -> None:
        self.origin = origin or secrets.token_hex(6)
        self._counter = itertools.count(1)

    def encode(self, effects: Effects) -> list[str]:
        data = orjson.dumps(effects, option=orjson.OPT_NON_STR_KEYS)
        pieces = _split(data, CHUNK_BYTES)
        message = f"{self.origin}.{next(self._counter)}"
        n = len(pieces)
        return [f"{message}:{i}:{n}|{p.decode()}" for i, p in enumerate(pieces)]

    def __call__(self, conn: Connection, effects: Effects) -> None:
        events = [e for e in effects if e[0] == "event"]
        control = [e for e in effects if e[0] != "event"] if events else effects
        params = []
        for channel, part in ((CHANNEL, control), (EVENTS_CHANNEL, events)):
            if part:
                params += [{"channel": channel, "payload": p} for p in self.encode(part)]
        _NOTIFY.many(conn, params)


class Decoder:
    """Joins chunks back into effects; skips the messages of one origin."""

    def __init__(self, own_origin: str) -> None:
        self.own = own_origin + "."
        self._partial: dict[str, list[str | None]] = {}

    def reset(self) -> None:
        self._partial.clear()

    def feed(self, payload: str) -> Effects | None:
        header, _, body = payload.partition("|")
        message, index, total = header.rsplit(":", 2)
        if message.startswith(self.own):
            return None
        i, n = int(index), int(total)
        if n == 1:
            return _loads(body)
        parts = self._partial.setdefault(message, [None] * n)
        parts[i] = body
        if any(p is None for p in parts):
            if len(self._partial) > 1000:  # chunks of messages that will never complete
                self._partial.clear()
            return None
        del self._partial[message]
        return _loads("".join(p or "" for p in parts))


def _loads(text: str) -> Effects | None:
    try:
        effects = orjson.loads(text)
    except orjson.JSONDecodeError:
        log.warning("dropped a malformed notification")
        return None
    return [(kind, payload) for kind, payload in effects]


def psycopg_dsn(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL."""
    return (
        sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


class Listener:
    """LISTENs on a dedicated connection and hands what other processes
    committed to ``deliver`` (on the event loop). ``on_reconnect`` runs after
    every (re)connection, when notifications may have been missed. With
    ``watched``, live events are listened to as well, and decoded whenever
    it says someone watches them."""

    def __init__(
        self,
        url: str,
        own_origin: str,
        deliver: Callable[[Effects], None],
        on_reconnect: Callable[[], None],
        watched: Callable[[], bool] | None = None,
    ) -> None:
        self.dsn = psycopg_dsn(url)
        self.decoder = Decoder(own_origin)
        self.deliver = deliver
        self.on_reconnect = on_reconnect
        self.watched = watched
        self.connected = asyncio.Event()

    async def run(self) -> None:
        import psycopg

        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except (psycopg.Error, OSError) as exc:
                if first:
                    log.warning("cannot listen for notifications yet: %s; retrying", exc)
                first = False
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                if self.watched is not None:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                self.decoder.reset()
                self.connected.set()
                if not first:
                    log.info("listening for notifications again")
                first = False
                self.on_reconnect()
                async for note in conn.notifies():
                    if note.channel == EVENTS_CHANNEL and not (self.watched and self.watched()):
                        continue
                    effects = self.decoder.feed(note.payload)
                    if effects:
                        self.deliver(effects)
            except (psycopg.Error, OSError) as exc:
                log.warning("lost the notification connection (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await conn.close()
            await asyncio.sleep(RECONNECT_SECONDS)
