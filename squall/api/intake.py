"""The webhook intake: webhooks answered by a process of their own.

On SQLite everything runs in one ``squall up`` process, and one process of
Python uses one core. During an alert storm, reading and answering webhook
calls takes a good share of it, and each answer waits for its commit behind
the rules engine's and the workers' transactions. With ``--intake-port`` (or
``SQUALL_INTAKE_PORT``), ``squall up`` also starts ``squall intake``: it
serves ``POST /api/v1/webhooks/...`` on that port — the same checks, the
same answers — and keeps what each call leaves in the inbox
(services/inbox.py), a SQLite file it alone writes, so an answer waits only
for that commit. ``squall up`` takes the inbox's records into its database
and keeps serving webhooks on its own port too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from squall.api.app import WebhookFastPath
from squall.api.edges import SecurityHeaders
from squall.api.metrics import CountWebhooks
from squall.config import Settings
from squall.crypto import KeyRing
from squall.errors import ConfigError
from squall.server import System, http_config, key_ring_path, settle_heap
from squall.services.bus import Bus
from squall.services.inbox import InboxWriter
from squall.store import inbox, migrate
from squall.store.db import Database

log = logging.getLogger(__name__)

PRUNE_SECONDS = 0.5  # the intake deletes what squall up has taken this often


def create_intake_app(settings: Settings) -> Any:
    """The intake's ASGI app: webhooks, ``/health``, and a clear 404 for the rest."""
    db = Database(settings.database_url, writes=False)
    migrate.check_current(db.engine)
    writer = InboxWriter(inbox.path_in(settings.data_dir))
    system = System(settings, db, Bus(), KeyRing(key_ring_path(settings)), "intake")
    system.inbox = writer

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "role": "intake"})

    async def elsewhere(request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(
            {
                "faultstring": f"{request.url.path} is not served here: this port takes "
                "webhooks only (POST /api/v1/webhooks/<url>); the API is on "
                f"{settings.api_url}"
            },
            status_code=404,
        )

    async def prune_loop() -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            try:
                writer.prune(await db.read(inbox.mark, writer.identity))
            except Exception:
                log.exception("could not read how far the inbox was taken")

    def lifespan(_app: Starlette) -> Any:
        class Span:
            async def __aenter__(self) -> None:
                self.task = asyncio.create_task(prune_loop())
                settle_heap()

            async def __aexit__(self, *_exc: Any) -> None:
                self.task.cancel()
                writer.close()
                db.close()

        return Span()

    app = Starlette(
        routes=[Route("/health", health)],
        exception_handlers={404: elsewhere, 405: elsewhere},
        lifespan=lifespan,
    )
    app.state.system = system
    return SecurityHeaders(
        CountWebhooks(WebhookFastPath(app, settings.max_request_bytes)),  # type: ignore[arg-type]
        https=settings.tls_cert is not None,
    )


def serve_intake(settings: Settings, *, announce: Any = print) -> None:
    """``squall intake``: serve webhooks on ``settings.intake_port`` until stopped."""
    import uvicorn

    if not settings.is_sqlite:
        raise ConfigError(
            "squall intake is for SQLite: on PostgreSQL, run more 'squall api' processes"
        )
    database = Path(make_url(settings.database_url).database or "")
    if not database.is_file():
        raise ConfigError(
            f"there is no Squall database at {database}: the intake serves beside a "
            "'squall up' on the same data directory (--data-dir, SQUALL_DATA_DIR); start that first"
        )
    if not key_ring_path(settings).is_file():
        raise ConfigError(
            f"the datastore key ring {key_ring_path(settings)} is missing: start 'squall up' "
            "on this data directory first"
        )
    config = http_config(create_intake_app(settings), settings, settings.intake_port)
    scheme = "https" if settings.tls_cert is not None else "http"
    announce(f"The Squall webhook intake is starting on {scheme}://{settings.host}:"
             f"{settings.intake_port}/api/v1/webhooks/")  # fmt: skip
    uvicorn.Server(config).run()


class IntakeProcess:
    """``squall up``'s child ``squall intake``: started with it, started
    again (after a second) if it dies, stopped with it — and, through the
    kernel, when ``squall up`` is killed outright."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        s = self.settings
        env = {
            **os.environ,
            "SQUALL_DATA_DIR": str(s.data_dir),
            "SQUALL_DATABASE_URL": s.database_url,
            "SQUALL_HOST": s.host,
            "SQUALL_PORT": str(s.port),
            "SQUALL_INTAKE_PORT": str(s.intake_port),
            "SQUALL_MAX_REQUEST_BYTES": str(s.max_request_bytes),
            "SQUALL_LOG_FORMAT": s.log_format,
        }
        if s.tls_cert is not None and s.tls_key is not None:
            env["SQUALL_TLS_CERT"], env["SQUALL_TLS_KEY"] = str(s.tls_cert), str(s.tls_key)
        return subprocess.Popen(
            [sys.executable, "-m", "squall", "intake"],
            env=env,
            preexec_fn=_die_with_parent,  # only sets the death signal: safe with threads
        )

    def _keep(self) -> None:
        while not self._stopping.is_set():
            self.proc = self._spawn()
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            log.error("the webhook intake exited with %s; starting it again", code)
            self._stopping.wait(1.0)

    def stop(self) -> None:
        self._stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._thread.join(timeout=10)


def _die_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
