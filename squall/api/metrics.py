"""Operations endpoints: /ready for load balancers, /metrics for Prometheus,
and 503 (not 500) while the database cannot be reached.

``/health`` (in app.py) says the process is alive. ``/ready`` also says it
can serve: the database answers, its schema is the one this code needs, and
(on PostgreSQL) it hears what other processes commit; a load balancer sends
traffic only to ready processes.

``/metrics`` is the Prometheus text format: this process's instruments
(squall/metrics.py) and, read from the database at each scrape, figures about
the whole deployment. It needs credentials like the API, or the configured
metrics token (``Authorization: Bearer TOKEN``), unless
``SQUALL_METRICS_PUBLIC=true``.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from sqlalchemy.engine import Connection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from squall import __version__
from squall.api.deps import authenticate, system
from squall.errors import SquallError, StoreUnavailable
from squall.metrics import REGISTRY, WEBHOOKS
from squall.services.leader import WORKER
from squall.store import migrate, queue
from squall.store.tables import executions

router = APIRouter(tags=["health"])

UNAVAILABLE = "the database is unavailable; try again shortly"


def _schema(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    sys_ = getattr(request.app.state, "system", None)
    if sys_ is None or not sys_.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        current = await sys_.db.read(_schema)
    except SquallError as exc:
        return JSONResponse({"status": "unavailable", "reason": exc.message}, status_code=503)
    listener = sys_.listener
    if listener is not None and not listener.connected.is_set():
        # Its event stream would miss what other processes do.
        reason = "not yet listening for what other processes commit (reconnecting)"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    head = migrate.head_revision()
    if current != head:
        reason = f"the database schema is at {current or 'nothing'}, this Squall needs {head}: "
        reason += "run 'squall db upgrade'"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__, "schema": current})


def _figures(conn: Connection) -> dict[str, Any]:
    by_status = conn.execute(
        sa.select(executions.c.status, sa.func.count()).group_by(executions.c.status)
    ).all()
    workers = 1  # SQLite: `squall up` is the one worker
    if conn.dialect.name == "postgresql":
        workers = int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = :kind AND objsubid = 2 AND granted"
                ),
                {"kind": WORKER},
            ).scalar()
            or 0
        )
    return {"depth": queue.depth(conn), "statuses": dict(by_status), "workers": workers}


class _Snapshot:
    """The deployment's figures as Prometheus metric families."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def collect(self) -> Any:
        depth = GaugeMetricFamily(
            "squall_queue_depth", "Work items waiting or in progress, by topic.", labels=["topic"]
        )
        for topic, n in sorted(self.figures["depth"].items()):
            depth.add_metric([topic], n)
        yield depth
        states = GaugeMetricFamily(
            "squall_executions", "Stored executions, by status.", labels=["status"]
        )
        for status, n in sorted(self.figures["statuses"].items()):
            states.add_metric([status], n)
        yield states
        yield GaugeMetricFamily(
            "squall_workers_live", "Worker processes alive now.", value=self.figures["workers"]
        )


def _allowed(request: Request, token: str | None) -> bool:
    if not token:
        return False
    given = request.headers.get("authorization", "")
    given = (
        given[7:] if given.lower().startswith("bearer ") else request.headers.get("st2-api-key", "")
    )
    return hmac.compare_digest(given.encode(), token.encode())


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    sys_ = system(request)
    settings = sys_.settings
    # /metrics is among the public paths of the authentication middleware:
    # it decides here, so that a metrics token works without an API key.
    if not settings.metrics_public and not _allowed(request, settings.metrics_token):
        await authenticate(request.scope)
    started = time.perf_counter()
    try:
        figures = await sys_.db.read(_figures)
    except StoreUnavailable:
        raise StoreUnavailable(UNAVAILABLE) from None
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(figures))
    body = generate_latest(REGISTRY) + generate_latest(snapshot)
    body += (
        b"# HELP squall_metrics_scrape_seconds Time taken to read the figures for this scrape.\n"
        b"# TYPE squall_metrics_scrape_seconds gauge\n"
        + f"squall_metrics_scrape_seconds {time.perf_counter() - started:.6f}\n".encode()
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class CountWebhooks:
    """Counts webhook requests on their way in: they take a fast path past
    the framework (api.app.WebhookFastPath), so they are counted outside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/v1/webhooks/"):
            WEBHOOKS.inc()
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Add the routes, and answer 503 for a database that cannot be reached
    (a connection refused or dropped mid-request) instead of 500."""
    app.router.routes.extend(router.routes)

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"faultstring": UNAVAILABLE}, status_code=503)

    for kind in (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError):
        app.add_exception_handler(kind, unavailable)
    try:
        import psycopg

        app.add_exception_handler(psycopg.OperationalError, unavailable)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass


def serve_process_metrics(host: str, port: int) -> None:
    """`squall worker` / `squall sensors`: this process's instruments on
    http://HOST:PORT/metrics (a thread; no credentials: bind it to an address
    only Prometheus reaches)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)
