"""The FastAPI application: routes, errors as JSON, the service lifespan."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from squall import __version__, web
from squall.api import (
    actions,
    audit,
    auth,
    edges,
    executions,
    inquiries,
    inventory,
    keys,
    metrics,
    packs,
    permissions,
    rbac,
    rollouts,
    rules,
    runners,
    sensors,
    stream,
    users,
    webhooks,
)
from squall.api.deps import Authenticate
from squall.config import Settings
from squall.errors import SquallError
from squall.server import start_system, stop_system

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse request bodies over the limit with 413 before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                if int(value) > self.limit:
                    await _too_large(send, self.limit)
                    return
                # The server reads no more than a declared length: nothing to count.
                await self.app(scope, receive, send)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class StripTrailingSlash:
    """``/api/v1/executions/`` and ``/api/v1/executions`` are the same route
    (the st2 client uses both). The web UI's paths are left as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/") and not path.startswith(web.PREFIX):
                scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = JSONResponse(
        {"faultstring": f"request body is larger than the limit of {limit} bytes"}, 413
    ).body
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            return f"request body is not valid JSON: {err.get('ctx', {}).get('error', msg)}"
        parts.append(f"{loc or 'request'}: {msg}")
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings, *, start_services: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        system = await start_system(settings)
        app.state.system = system
        try:
            yield
        finally:
            await stop_system(system)

    options: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI).parameters:
        # Per-request tracing hooks cost more than the routes themselves here.
        options["telemetry"] = {"tracing": False, "metrics": False}
    app = FastAPI(
        title="Squall",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        **options,
    )

    @app.exception_handler(SquallError)
    async def squall_error(_request: Request, exc: SquallError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"faultstring": _describe_validation(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"faultstring": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            {"faultstring": "internal error; the server log has the details"}, status_code=500
        )

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> JSONResponse:
        system = getattr(request.app.state, "system", None)
        if system is None or not system.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/api/v1", tags=["health"])
    async def api_root() -> dict[str, Any]:
        return {"version": __version__, "docs_url": "/api/v1/docs"}

    for router in (
        executions.router,
        actions.router,
        runners.router,
        packs.router,
        keys.router,
        keys.datastore_router,
        auth.router,
        users.router,
        rbac.router,
        stream.router,
        rules.router,
        webhooks.router,
        sensors.router,
        inquiries.router,
        inventory.router,
        rollouts.router,
        audit.router,
    ):
        # Routes are added to the app itself (their paths carry their
        # prefix): one flat list is the cheapest to match on every request.
        app.router.routes.extend(router.routes)
    metrics.install(app)  # /ready, /metrics, 503 while the database is unreachable
    _serve_simple_routes_plainly(app)
    permissions.guard_routes(app)  # after the above: it wraps the routes as served
    web.mount(app)
    app.add_middleware(Authenticate)
    app.add_middleware(audit.AuditCalls)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(StripTrailingSlash)
    edges.install(app, settings)  # headers, CORS, the sign-in limit: around everything
    return app


class WebhookFastPath:
    """``POST /api/v1/webhooks/...`` goes straight to its handler, past the
    framework's per-request layers: during an alert storm webhooks are the
    hottest path, and the handler authenticates the call itself (a webhook
    may be signed instead). The body limit still applies."""

    def __init__(self, app: FastAPI, limit: int) -> None:
        self.app = app
        self.hook = BodyLimit(self._webhook, limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(webhooks.PREFIX)
        ):
            await self.hook(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        response: Response
        try:
            response = await webhooks.post_webhook(Request(scope, receive))
        except SquallError as exc:
            response = JSONResponse(exc.to_dict(), status_code=exc.http_status)
        except Exception:
            log.exception("unhandled error in a webhook")
            response = JSONResponse(
                {"faultstring": "internal error; the server log has the details"}, status_code=500
            )
        await response(scope, receive, send)


def _serve_simple_routes_plainly(app: FastAPI) -> None:
    """Serve routes whose endpoint takes nothing but the request as plain
    Starlette routes, which skip FastAPI's per-request parameter machinery
    (a large share of the cost of a small request such as submitting an
    execution). The OpenAPI schema is built first, from the full routes, and
    FastAPI keeps serving that."""
    app.openapi()
    for index, route in enumerate(app.router.routes):
        if not isinstance(route, APIRoute):
            continue
        params = list(inspect.signature(route.endpoint).parameters.values())
        if len(params) == 1 and params[0].name == "request":
            app.router.routes[index] = Route(
                route.path, route.endpoint, methods=list(route.methods), name=route.name
            )
