"""Putting Squall together: the data directory, the database, the services
and the HTTP server, in one process (``squall up``) or in the processes of a
scaled-out deployment on PostgreSQL (``squall api``, ``squall worker``,
``squall sensors``: ``Settings.roles`` says which services a process runs).

On PostgreSQL, committed effects travel between processes with LISTEN/NOTIFY
(store/notify.py) and the services that must run once take an advisory lock
(services/leader.py), in every form: a ``squall up`` on PostgreSQL may be
joined by more workers."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import gc
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squall import masks
from squall.config import Settings, check_tls
from squall.crypto import KeyRing
from squall.errors import ConfigError, Conflict
from squall.services.audit import AuditSealer
from squall.services.bus import Bus
from squall.services.gc import GarbageCollector
from squall.services.inbox import InboxReader, InboxWriter
from squall.services.inquiries import InquiryExpirer
from squall.services.inventory import InventoryService
from squall.services.leader import (
    SENSORS,
    WORKER,
    LockSession,
    SensorShare,
    hold,
    singleton,
)
from squall.services.packs import register_all
from squall.services.rbac import reload as reload_rbac
from squall.services.rollouts import RolloutController
from squall.services.rules_engine import RulesEngine
from squall.services.scheduler import Scheduler
from squall.services.sensors import SensorContainer
from squall.services.worker import Worker
from squall.services.workflows import WorkflowEngine
from squall.store import auth, inbox, migrate, queue
from squall.store.db import Database
from squall.store.notify import Listener, Publisher
from squall.store.triggers import ensure_builtin_types

log = logging.getLogger("squall")

CREDENTIALS_FILE = "credentials.json"


@dataclass
class System:
    """Everything a running Squall shares: handed to the API and the services."""

    settings: Settings
    db: Database
    bus: Bus
    keyring: KeyRing
    owner: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False
    rotation_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inventory: InventoryService | None = None
    locks: LockSession | None = None  # PostgreSQL: this process's advisory locks
    listener: Listener | None = None  # PostgreSQL: what other processes committed
    inbox: InboxWriter | None = None  # squall intake: where webhook calls are kept
    # squall up on SQLite: where it takes the calls squall intake answered
    inbox_reader: InboxReader | None = None


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)


def lock_data_dir(settings: Settings) -> Any:
    """One ``squall up`` per data directory: SQLite cannot be shared further."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fh = open(settings.data_dir / "squall.lock", "w")  # noqa: SIM115 - held for the process life
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(
            f"another Squall is already running with the data directory {settings.data_dir}"
        ) from None
    return fh


def open_database(settings: Settings, *, auto_migrate: bool) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.database_url)
    if auto_migrate:
        migrate.upgrade(db.write_engine)
    else:
        migrate.check_current(db.engine)
    return db


def ensure_admin(db: Database, settings: Settings) -> dict[str, str] | None:
    """On first start, make the ``admin`` user and an API key. Returns the new
    credentials (to be shown once) or None when users already exist."""
    if db.read_sync(auth.any_user):
        return None
    password = settings.admin_password or secrets.token_urlsafe(12)
    key_wanted = settings.admin_api_key

    def create(conn: Any) -> str:
        auth.create_user(conn, "admin", password, is_admin=True)
        key, _ = auth.create_api_key(
            conn, "admin", key=key_wanted, metadata={"created_by": "first start"}
        )
        return key

    key = db.write_sync(create)
    creds = {"username": "admin", "password": password, "api_key": key, "api_url": settings.api_url}
    _write_private(settings.data_dir / CREDENTIALS_FILE, creds)
    return creds


def write_server_file(settings: Settings) -> None:
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("api_url") != settings.api_url:
            data["api_url"] = settings.api_url
            _write_private(path, data)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def check_roles(settings: Settings) -> None:
    if not settings.is_all_in_one and settings.is_sqlite:
        raise ConfigError(
            "'squall api', 'squall worker' and 'squall sensors' share one PostgreSQL database: "
            "set SQUALL_DATABASE_URL=postgresql://USER@HOST/DB (with SQLite, run everything "
            "in one process with 'squall up')"
        )


def key_ring_path(settings: Settings) -> Path:
    return settings.data_dir / "keys" / "datastore.json"


def check_key_ring(settings: Settings) -> None:
    """Every process of a scaled-out deployment must share one datastore key
    ring: one that made its own would write secrets nobody else can read."""
    path = key_ring_path(settings)
    if not settings.is_all_in_one and not path.exists():
        raise ConfigError(
            f"the datastore key ring {path} is missing: copy keys/datastore.json from the "
            "data directory where 'squall db upgrade' ran (every Squall process must share it)"
        )


async def start_system(settings: Settings, *, register_packs: bool = True) -> System:
    """Open the store and start the services of ``settings.roles``; the
    caller serves HTTP (the ``api`` role)."""
    check_roles(settings)
    roles = set(settings.roles)
    # `squall up` migrates by itself; the processes of a scaled-out
    # deployment leave that to `squall db upgrade` and refuse an older schema.
    db = open_database(settings, auto_migrate=settings.is_all_in_one)
    check_key_ring(settings)
    keyring = KeyRing(key_ring_path(settings))
    bus = Bus()
    db.set_effect_handler(bus.handle)
    system = System(settings, db, bus, keyring, owner_id())
    system.inventory = InventoryService(list(settings.inventory_paths))
    tasks: dict[str, Callable[[], Awaitable[None]]] = {}
    masks.configure(settings.mask_patterns)
    tasks["masks"] = functools.partial(masks.watch, db, keyring)
    if settings.is_sqlite:
        # We hold the data directory's lock: no other process can own a lease.
        await db.write(queue.expire_leases)

    else:
        publisher = Publisher()
        db.publisher = publisher
        system.listener = Listener(
            settings.database_url,
            publisher.origin,
            bus.handle,
            bus.wake_all,
            watched=bus.watched if "api" in roles else None,  # it serves the event stream
        )
        system.locks = LockSession(settings.database_url)
        tasks["listener"] = system.listener.run
    if "api" in roles:
        await db.write(ensure_builtin_types)
        if settings.rbac_dir is not None:
            await reload_rbac(db, settings.rbac_dir, "system")
        if register_packs:
            await register_all(db, settings)
    locks = system.locks

    def once(name: str, run: Callable[[], Awaitable[None]]) -> None:
        # One process at a time runs it; another takes over when it dies.
        tasks[name] = run if locks is None else functools.partial(singleton, locks, name, run)

    if "worker" in roles:
        lease = settings.lease_seconds
        worker = Worker(db, bus, settings, system.owner, keyring, system.inventory)
        tasks["worker"] = worker.run
        if locks is not None:
            tasks["worker-presence"] = functools.partial(hold, locks, WORKER, system.owner)
        once("scheduler", Scheduler(db, bus, system.owner, lease).run)
        once("inquiries", InquiryExpirer(db, bus).run)
        once("gc", GarbageCollector(db, settings).run)
        if settings.is_sqlite:  # webhooks answered by `squall intake` (api/intake.py)
            system.inbox_reader = InboxReader(inbox.path_in(settings.data_dir))
        once("rules", RulesEngine(db, bus, keyring, system.inbox_reader).run)
        once("workflows", WorkflowEngine(db, bus, keyring).run)
        once("rollouts", RolloutController(db, bus, keyring, system.inventory).run)
        once("audit", AuditSealer(db).run)
    if "sensors" in roles:
        share = None if locks is None else SensorShare(locks)
        tasks["sensors"] = SensorContainer(system, share).run
        if locks is not None:
            tasks["sensors-presence"] = functools.partial(hold, locks, SENSORS, system.owner)
    system.tasks = [
        asyncio.create_task(supervise(name, run), name=name) for name, run in tasks.items()
    ]
    settle_heap()
    system.ready = True
    return system


def settle_heap() -> None:
    """Leave what start-up built (modules, packs, compiled statements) out of
    Python's cycle collector from now on. Otherwise every full collection
    walks those hundreds of thousands of objects again: 100-150 ms with
    everything stopped, which was most of the slowest webhook answers."""
    gc.collect()
    gc.freeze()


async def supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a service for ever: one that fails (say, the database went away at
    a bad moment) is logged and started again, not left dead."""
    while True:
        try:
            await run()
            log.warning("%s stopped by itself; starting it again", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; starting it again", name)
        await asyncio.sleep(1.0)


async def stop_system(system: System) -> None:
    system.ready = False
    for t in system.tasks:
        t.cancel()
    await asyncio.gather(*system.tasks, return_exceptions=True)
    if system.locks is not None:
        await system.locks.close()
    system.db.set_effect_handler(None)
    system.db.close()
    if system.inbox_reader is not None:
        system.inbox_reader.close()


def serve(settings: Settings, *, announce: Any = print) -> None:
    """``squall up``: run until interrupted."""
    import uvicorn

    from squall.api.app import WebhookFastPath, create_app
    from squall.api.intake import IntakeProcess
    from squall.api.metrics import CountWebhooks

    check_roles(settings)
    lock = lock_data_dir(settings) if settings.is_sqlite else None
    db = open_database(settings, auto_migrate=settings.is_all_in_one)
    check_key_ring(settings)
    try:
        creds = ensure_admin(db, settings)
    except Conflict:
        creds = None  # another API process starting at the same time made it
    write_server_file(settings)
    db.close()
    if creds:
        announce(
            "First start: created user 'admin'.\n"
            f"  password: {creds['password']}\n"
            f"  API key:  {creds['api_key']}\n"
            f"Both are saved (mode 0600) in {settings.data_dir / CREDENTIALS_FILE}; "
            "the squall CLI on this machine uses them."
        )
    app = create_app(settings)
    config = http_config(
        CountWebhooks(WebhookFastPath(app, settings.max_request_bytes)), settings, settings.port
    )
    what = "Squall" if settings.is_all_in_one else "The Squall API"
    announce(f"{what} is starting on {settings.api_url} (data in {settings.data_dir})")
    intake = None
    if settings.intake_port and settings.is_sqlite and settings.is_all_in_one:
        # The key ring exists before the intake reads it: two processes
        # making it at once could each write a key of their own.
        KeyRing(key_ring_path(settings))
        intake = IntakeProcess(settings)
        intake.start()
    try:
        uvicorn.Server(config).run()
    finally:
        if intake is not None:
            intake.stop()
        if lock is not None:
            lock.close()


def http_config(app: Any, settings: Settings, port: int) -> Any:
    """How Squall's HTTP servers run (the API's, the intake's): uvicorn on
    ``settings.host``, quiet, HTTPS with ``settings``' certificate if any."""
    import importlib.util

    import uvicorn

    def has(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    tls = check_tls(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        loop="uvloop" if has("uvloop") else "asyncio",
        http="httptools" if has("httptools") else "h11",
        access_log=False,
        proxy_headers=False,  # nothing trusts X-Forwarded-* headers unless told to
        timeout_graceful_shutdown=5,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )


def _say(message: str) -> None:
    print(message, flush=True)  # for whoever waits on this process's output


def run_services(settings: Settings, *, announce: Any = _say) -> None:
    """``squall worker`` and ``squall sensors``: run their services (no HTTP
    API) until SIGTERM or SIGINT."""
    check_roles(settings)
    open_database(settings, auto_migrate=False).close()  # refuse an old schema up front
    check_key_ring(settings)
    if settings.metrics_port:
        from squall.api.metrics import serve_process_metrics

        serve_process_metrics(settings.host, settings.metrics_port)

    async def main() -> None:
        system = await start_system(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        announce(f"squall {' '.join(settings.roles)} is running (owner {system.owner})")
        try:
            await stop.wait()
        finally:
            await stop_system(system)

    asyncio.run(main())
