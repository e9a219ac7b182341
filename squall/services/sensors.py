"""The sensor container: runs every enabled pack sensor in its own process.

Each sensor gets a :class:`SensorProcess` (which restarts it with backoff and
kills it when it hangs). What it dispatches is checked against its trigger
type's payload schema and stored in one transaction per batch; the sensor is
acknowledged only after the commit, so a sensor faster than the store is
slowed down, never dropped from. Its state (running, crashed, backoff...)
and last error are written to the ``sensors`` table for the API and the UI,
and its process start and exit are emitted as the StackStorm sensor triggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.engine import Connection

from squall.core import triggers as core_triggers
from squall.errors import InvalidInput, NotFound, SquallError
from squall.services import events
from squall.services.executions import pack_config
from squall.services.packs import venv_python
from squall.services.sensor_process import SensorProcess
from squall.store import kv as kv_store
from squall.store import sensors as sensor_store
from squall.store import triggers as trigger_store

log = logging.getLogger(__name__)

RESYNC_SECONDS = 10.0  # safety net; changes normally arrive as bus effects
# Shared between processes, a round also takes over the sensors of a process that died.
SHARED_RESYNC_SECONDS = 2.0


class SensorContainer:
    def __init__(self, system: Any, share: Any = None) -> None:
        self.system = system
        # With several `squall sensors` processes: a SensorShare (services/leader.py)
        # that says which sensors this one runs.
        self.share = share
        self.resync = RESYNC_SECONDS if share is None else SHARED_RESYNC_SECONDS
        self.db = system.db
        self.running: dict[str, tuple[SensorProcess, asyncio.Task[None], str]] = {}
        self.changed = asyncio.Event()
        system.bus.on("sensors-changed", lambda _p: self.changed.set())
        system.bus.on("rules-changed", lambda _p: self.changed.set())

    async def run(self) -> None:
        try:
            while True:
                self.changed.clear()
                try:
                    await self.sync()
                except SquallError as exc:
                    log.warning("sensor container: %s", exc.message)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), self.resync)
        finally:
            await asyncio.gather(
                *(p.stop() for p, _, _ in self.running.values()), return_exceptions=True
            )

    async def sync(self) -> None:
        rows = await self.db.read(sensor_store.list_)
        wanted = {r["ref"]: r for r in rows if r["enabled"]}
        enabled = set(wanted)
        if self.share is not None:
            mine = await self.share.choose(sorted(wanted))
            wanted = {ref: row for ref, row in wanted.items() if ref in mine}
        for ref in list(self.running):
            process, task, version = self.running[ref]
            row = wanted.get(ref)
            if row is None or _version(row) != version:
                del self.running[ref]
                await process.stop()
                task.cancel()
                if ref not in enabled:  # not merely handed to another process
                    await self.db.write(sensor_store.set_state, ref, sensor_store.STOPPED, {})
        for ref, row in wanted.items():
            triggers = await self.db.read(_triggers_for, row["meta"])
            if ref in self.running:
                await _sync_triggers(self.running[ref][0], triggers)
                continue
            self.start(row, triggers, await self.db.read(self._config, row["pack"]))

    def _config(self, conn: Connection, pack: str) -> dict[str, Any]:
        try:
            return pack_config(conn, pack, None, self.system.keyring)
        except SquallError as exc:
            log.error("sensors of pack %s get no config: %s", pack, exc.message)
            return {}

    def start(self, row: dict[str, Any], triggers: list[dict[str, Any]], config: Any) -> None:
        meta = row["meta"]
        ref = row["ref"]
        process = SensorProcess(
            meta,
            on_dispatch=lambda batch: self._dispatch(ref, batch),
            on_kv=self._kv,
            on_state=lambda state, info: self._state(ref, state, info),
            config=config,
            triggers=triggers,
            python=venv_python(self.system.settings, row["pack"]),
        )
        task = asyncio.create_task(process.run(), name=f"sensor {ref}")
        self.running[ref] = (process, task, _version(row))

    async def _dispatch(self, ref: str, batch: list[dict[str, Any]]) -> None:
        await self.db.write(_store_events, ref, batch)

    async def _kv(self, method: str, args: dict[str, Any]) -> Any:
        return await self.db.write(_kv_call, self.system.keyring, method, args)

    async def _state(self, ref: str, state: str, info: dict[str, Any]) -> None:
        def record(conn: Connection) -> None:
            sensor_store.set_state(conn, ref, state, info)
            lifecycle = {
                "running": core_triggers.SENSOR_SPAWN,
                "crashed": core_triggers.SENSOR_EXIT,
            }
            if state in lifecycle or (state == "stopped" and info.get("exit_code") is not None):
                type_ref = lifecycle.get(state, core_triggers.SENSOR_EXIT)
                events.emit_internal(
                    conn, type_ref, {"object": {"ref": ref, "state": state, **info}}
                )

        try:
            await self.db.write(record)
        except SquallError as exc:
            log.warning("could not record the state of sensor %s: %s", ref, exc.message)


def _version(row: dict[str, Any]) -> str:
    """What, when changed, needs the sensor's process restarted."""
    meta = row["meta"]
    return f"{meta.get('entry_point_path')}:{meta.get('class_name')}:{meta.get('poll_interval')}"


def _triggers_for(conn: Connection, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The triggers (with their parameters) of the sensor's trigger types."""
    out = []
    for type_ref in meta.get("trigger_types") or []:
        for t in trigger_store.list_triggers(conn, type_ref):
            out.append(
                {"ref": t["ref"], "id": t["id"], "type": t["type"], "parameters": t["parameters"]}
            )
    return out


async def _sync_triggers(process: SensorProcess, triggers: list[dict[str, Any]]) -> None:
    have = {t["ref"]: t for t in process.triggers}
    want = {t["ref"]: t for t in triggers}
    for ref, t in want.items():
        if ref not in have:
            await process.add_trigger(t)
        elif have[ref].get("parameters") != t.get("parameters"):
            await process.update_trigger(t)
    for ref, t in have.items():
        if ref not in want:
            await process.remove_trigger(t)


def _store_events(conn: Connection, sensor_ref: str, batch: list[dict[str, Any]]) -> None:
    good: list[tuple[str, Any, dict[str, Any] | None]] = []
    bad: list[tuple[str, Any, dict[str, Any] | None]] = []
    for event in batch:
        ref = str(event.get("trigger") or "")
        payload = event.get("payload")
        context: dict[str, Any] = {"source": "sensor", "sensor": sensor_ref}
        if event.get("trace_tag"):
            context["trace_tag"] = event["trace_tag"]
        try:
            _check_payload(conn, ref, payload)
        except SquallError as exc:
            log.warning("sensor %s dispatched a bad event: %s", sensor_ref, exc.message)
            bad.append((ref or "unknown", payload, {**context, "reason": exc.message}))
            continue
        good.append((ref, payload, context))
    trigger_store.create_instances(conn, good)
    trigger_store.create_instances(conn, bad, status=trigger_store.REJECTED)


def _check_payload(conn: Connection, ref: str, payload: Any) -> None:
    core_triggers.validate_payload(trigger_store.type_of_trigger(conn, ref), payload)


def _kv_call(conn: Connection, keyring: Any, method: str, args: dict[str, Any]) -> Any:
    name = str(args.get("name") or "")
    if method == "get_value":
        try:
            row = kv_store.get(conn, scope="system", user=None, name=name)
        except NotFound:
            return None
        if row["secret"] and args.get("decrypt"):
            return keyring.decrypt(row["value"])
        return row["value"]
    if method == "set_value":
        ttl = args.get("ttl")
        kv_store.set_value(
            conn,
            scope="system",
            user=None,
            name=name,
            value=str(args.get("value")),
            secret=bool(args.get("encrypt")),
            ttl=float(ttl) if ttl else None,
            encrypt=keyring.encrypt,
        )
        return True
    if method == "delete_value":
        try:
            kv_store.delete(conn, scope="system", user=None, name=name)
        except NotFound:
            return False
        return True
    if method == "list_values":
        rows, _ = kv_store.list_(
            conn,
            scope="system",
            user=None,
            prefix=args.get("prefix"),
            limit=int(args.get("limit") or 1000),
            offset=int(args.get("offset") or 0),
        )
        return [{"name": r["name"], "value": r["value"], "secret": r["secret"]} for r in rows]
    raise InvalidInput(f"unknown datastore call {method!r}")
