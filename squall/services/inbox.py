"""What a webhook call leaves behind, and the inbox that carries it from
``squall intake`` to ``squall up`` (store/inbox.py has the file).

A call leaves a record of one of four kinds: accepted (trigger instances to
make), rejected (a rejected instance: no credentials or a bad signature),
denied (an audit record: the caller lacks ``webhook_send``), generic (the
st2 webhook's instance of any trigger). :func:`keep` stores one in the
database, whether the call was answered there or its record came through
the inbox.

:class:`InboxWriter` appends records in ``squall intake``.
:class:`InboxReader` is ``squall up``'s end: the rules engine takes the
records in its steps, making an accepted call's trigger instances,
enforcements and executions in one transaction with the inbox's new mark.
The intake wakes it after each commit with a datagram on a socket named
after the inbox; an idle engine also looks every few seconds, in case a
wake-up was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from squall.core import triggers as core_triggers
from squall.errors import InvalidInput
from squall.store import audit as audit_store
from squall.store import inbox
from squall.store import triggers as trigger_store
from squall.store.db import checkpoint_loop

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, DENIED, GENERIC = "accepted", "rejected", "denied", "generic"

# A record that cannot be kept (a trigger type deleted since the call was
# checked): it is logged and dropped, never left to block the ones after it.
UNKEEPABLE = (InvalidInput, KeyError, TypeError, ValueError)


def keep(conn: Connection, kind: str, data: dict[str, Any]) -> None:
    """Store what a webhook call left (``data["at"]``: when it was answered)."""
    at = data.get("at")
    if kind == ACCEPTED:
        trigger_store.create_instances(conn, accepted_events(data), at=at)
    elif kind == REJECTED:
        trigger_store.create_instance(
            conn,
            core_triggers.WEBHOOK,
            data["payload"],
            {"source": "webhook", "url": data["payload"]["url"]},
            status=trigger_store.REJECTED,
            at=at,
        )
    elif kind == DENIED:
        audit_store.record(conn, **data["call"], at=at)
    elif kind == GENERIC:
        ref, payload = generic_trigger(conn, data["body"])
        trigger_store.create_instance(
            conn, ref, payload, {"source": "webhook", "user": data["user"]}, at=at
        )
    else:
        raise InvalidInput(f"unknown kind of webhook record {kind!r}")


def accepted_events(data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """An accepted call's events: (trigger ref, payload, context)."""
    return [(ref, payload, context) for ref, payload, context in data["events"]]


def generic_trigger(conn: Connection, body: Any) -> tuple[str, Any]:
    """The trigger and payload the st2 webhook's ``body`` asks to dispatch, checked."""
    if not isinstance(body, dict):
        raise InvalidInput(f"the st2 webhook body must be an object, got {type(body).__name__}")
    ref = body.get("trigger")
    if not isinstance(ref, str) or not ref:
        raise InvalidInput('the st2 webhook body needs "trigger": the trigger to dispatch')
    payload = body.get("payload") or {}
    trigger_type = trigger_store.type_of_trigger(conn, ref)
    if trigger_type.get("parameters_schema") and trigger_type["ref"] == ref:
        raise InvalidInput(f"{ref} needs parameters: dispatch one of its triggers by ref")
    core_triggers.validate_payload(trigger_type, payload)
    return ref, payload


def wake_address(path: Path) -> bytes:
    """An abstract socket address (nothing on disk) unique to the inbox."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return b"\0squall-inbox-" + digest.encode()


class InboxWriter:
    """Appends records to the inbox. The intake's process does little else,
    so it writes on its event loop: the calls whose bodies arrived in one
    turn of the loop are committed together just after it, which costs less
    than handing each to a thread (a commit here is a write to the log, no
    fsync)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = inbox.connect(path)
        self.identity = inbox.identity(self.conn)
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[None]]] = []
        self._wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._wake.setblocking(False)
        self._address = wake_address(path)
        # As for the main database: the log is copied into the file off the
        # event loop, so no answer waits on a checkpoint's fsyncs.
        self._stopping = threading.Event()
        self._checkpointer = threading.Thread(
            target=checkpoint_loop, args=(str(path), self._stopping), daemon=True
        )
        self._checkpointer.start()

    async def put(self, kind: str, data: dict[str, Any]) -> None:
        """Returns once the record is committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._commit)
        self._pending.append((kind, data, fut))
        await fut

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        error: Exception | None = None
        try:
            inbox.append(self.conn, [(kind, data) for kind, data, _fut in batch])
        except Exception as exc:
            log.exception("the webhook inbox could not be written")
            error = exc
        else:
            # Unheard while squall up is down or busy: it looks by itself then.
            with contextlib.suppress(OSError):
                self._wake.sendto(b".", self._address)
        for _kind, _data, fut in batch:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    def prune(self, mark: int) -> None:
        inbox.prune(self.conn, mark)

    def close(self) -> None:
        self._stopping.set()
        self._checkpointer.join(timeout=10)
        self.conn.close()
        self._wake.close()


class InboxReader:
    """``squall up``'s end of the inbox (see the module's description)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = inbox.connect(path)
        self.identity = inbox.identity(self.conn)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(wake_address(path))
        self.sock.setblocking(False)

    def take(self, conn: Connection, limit: int) -> list[inbox.Record]:
        """The next records, the mark moved past them in ``conn``'s
        transaction (read there too: a transaction rolled back and run
        again reads the mark it left)."""
        records = inbox.after(self.conn, inbox.mark(conn, self.identity), limit)
        if records:
            inbox.set_mark(conn, self.identity, records[-1][0])
        return records

    def drain(self) -> None:
        """Forget the wake-ups received: whoever calls this reads the inbox next."""
        try:
            while self.sock.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    @contextlib.contextmanager
    def arrivals(self) -> Iterator[asyncio.Event]:
        """An event set when a wake-up arrives, while the block runs (an
        idle consumer's wait: under load nobody listens, and wake-ups cost
        nothing but a datagram)."""
        arrived = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), arrived.set)
        try:
            yield arrived
        finally:
            loop.remove_reader(self.sock.fileno())

    def close(self) -> None:
        self.sock.close()
        self.conn.close()
