"""The API's edges: security headers, CORS, and the sign-in rate limit.

* Every response says how a browser must treat it: no MIME sniffing, never
  inside a frame, no Referer sent on, and (except for the UI page, which has
  its own policy, and the interactive API docs) a content security policy
  that lets nothing load or run. Over HTTPS, browsers are told to stay on it.
* CORS is closed unless ``cors_origins`` names the origins allowed; even
  then no cookies are involved (credentials travel in headers).
* Signing in (``POST /auth/v1/tokens``) is refused with 429 and a
  ``Retry-After`` after :data:`MAX_FAILURES` failures within
  :data:`WINDOW_SECONDS`, per user name and per client address; each refusal
  is audited. The counts live in the API process.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections import deque
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from squall.config import Settings
from squall.store import audit

__all__ = ["MAX_FAILURES", "WINDOW_SECONDS", "SecurityHeaders", "SignInLimit", "install"]

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
SIGN_IN_PATH = "/auth/v1/tokens"

_NO_CONTENT_POLICY = "default-src 'none'; frame-ancestors 'none'"
# Pages that bring their own policy (the UI) or need scripts (the API docs).
_OWN_POLICY_PREFIXES = ("/ui", "/api/v1/docs")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own_policy = scope["path"].startswith(_OWN_POLICY_PREFIXES)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                wanted = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if not own_policy:
                    wanted.append((b"content-security-policy", _NO_CONTENT_POLICY.encode()))
                if self.https:
                    wanted.append((b"strict-transport-security", b"max-age=31536000"))
                headers += [(n, v) for n, v in wanted if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class _Failures:
    """Recent failures per key (a user name, a client address)."""

    def __init__(self) -> None:
        self.seen: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self.seen.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        if not times:
            del self.seen[key]
        return times

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        times = self._recent(key, now)
        if len(times) < MAX_FAILURES:
            return 0.0
        return times[-MAX_FAILURES] + WINDOW_SECONDS - now

    def add(self, key: str, now: float) -> None:
        self._recent(key, now)
        if len(self.seen) > 100_000:  # a flood of names: forget the oldest
            self.seen.pop(next(iter(self.seen)))
        self.seen.setdefault(key, deque(maxlen=MAX_FAILURES)).append(now)

    def clear(self, key: str) -> None:
        self.seen.pop(key, None)


def _basic_user(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                return None
            try:
                return base64.b64decode(encoded).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


class SignInLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failures = _Failures()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") == SIGN_IN_PATH
        ):
            await self.app(scope, receive, send)
            return
        now = time.time()
        user = _basic_user(scope)
        client = scope.get("client")
        address = client[0] if client else None
        keys = [k for k in (f"user:{user}" if user else None, f"addr:{address}") if k]
        wait = max(self.failures.wait(k, now) for k in keys)
        if wait > 0:
            await self._refuse(scope, send, user, address, wait)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401:
            for key in keys:
                self.failures.add(key, time.time())
        elif 200 <= status < 300 and user:
            self.failures.clear(f"user:{user}")

    async def _refuse(
        self, scope: Scope, send: Send, user: str | None, address: str | None, wait: float
    ) -> None:
        system = getattr(scope["app"].state, "system", None) if "app" in scope else None
        if system is not None:
            details = {"reason": "too many failed sign-ins", "retry_after": math.ceil(wait)}

            def record(conn: Any) -> None:
                audit.record(
                    conn,
                    actor=user,
                    kind="sign_in",
                    action="sign in",
                    outcome="denied",
                    source=address,
                    details=details,
                )

            await system.db.write(record)
        body = orjson.dumps(
            {"faultstring": f"too many failed sign-ins; try again in {math.ceil(wait)} seconds"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(math.ceil(wait)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, settings: Settings) -> None:
    """Add the edges' middleware (call after the others: these wrap them)."""
    app.add_middleware(SignInLimit)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["St2-Api-Key", "X-Auth-Token", "Authorization", "Content-Type"],
            expose_headers=["X-Total-Count", "X-Limit"],
            allow_credentials=False,
        )
    app.add_middleware(SecurityHeaders, https=settings.tls_cert is not None)
