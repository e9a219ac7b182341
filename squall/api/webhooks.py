"""/api/v1/webhooks: events from the outside world.

``POST /api/v1/webhooks/<url>`` stores one trigger instance per trigger
(of a rule) registered at ``<url>`` and answers 202 once it is committed: an
accepted event survives a crash. The payload is ``{body, headers,
headers_lower}`` as in StackStorm, without the caller's credentials.

A call is accepted with an API key or token, as every API call, or — for a
webhook whose trigger names an ``hmac_secret_key`` (a datastore key holding
a shared secret) — with a valid HMAC-SHA256 signature of the raw body in
``X-Hub-Signature-256`` (GitHub's) or ``X-Squall-Signature``, both
``sha256=<hex>``. Rejected calls answer 401 (no credentials) or 403 (a bad
signature) and are recorded as trigger instances with status ``rejected``.

``POST /api/v1/webhooks/st2`` with ``{"trigger": REF, "payload": {...}}``
dispatches any trigger; the payload is checked against its type's schema.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import urllib.parse
from typing import Any

import orjson
from fastapi import APIRouter, Request

from squall.api import permissions
from squall.api.deps import JSON, authenticate, credential, system
from squall.api.rules import trigger_view
from squall.core import triggers as core_triggers
from squall.core.rbac import Resource
from squall.errors import Forbidden, InvalidInput, NotFound, SquallError, Unauthorized
from squall.services import inbox as calls
from squall.store import kv as kv_store
from squall.store import triggers as trigger_store

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

PREFIX = "/api/v1/webhooks/"

MAX_DEPTH = 32  # deeper bodies are refused: nothing legitimate nests this far
SIGNATURE_HEADERS = ("x-hub-signature-256", "x-squall-signature")
_HIDDEN_HEADERS = frozenset({"st2-api-key", "x-auth-token", "cookie", "authorization"})
_CACHE_SECONDS = 1.0
_REJECTIONS_PER_SECOND = 20  # recorded; beyond that they are only counted in the log


class _Hooks:
    """Webhook triggers and their secrets per URL, read at most once a second."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, list[tuple[dict[str, Any], bytes | None]]]] = {}
        self.loading: dict[str, asyncio.Future[list[tuple[dict[str, Any], bytes | None]]]] = {}

    async def get(self, request: Request, url: str) -> list[tuple[dict[str, Any], bytes | None]]:
        hit = self.entries.get(url)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        # One read per URL at a time: a storm of calls must not become a storm of reads.
        if url in self.loading:
            return await asyncio.shield(self.loading[url])
        future = asyncio.get_running_loop().create_future()
        self.loading[url] = future
        try:
            hooks = await self._load(request, url)
            future.set_result(hooks)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: the waiters re-raise it
            raise
        finally:
            del self.loading[url]
        return hooks

    async def _load(self, request: Request, url: str) -> list[tuple[dict[str, Any], bytes | None]]:
        now = time.monotonic()
        sys = system(request)

        def load(conn: Any) -> list[tuple[dict[str, Any], bytes | None]]:
            out = []
            for trigger in trigger_store.webhook_triggers(conn, url):
                key = trigger["parameters"].get("hmac_secret_key")
                secret = None
                if key:
                    try:
                        row = kv_store.get(conn, scope="system", user=None, name=key)
                    except NotFound:
                        row = None  # a missing secret accepts no signature
                    if row is not None:
                        value = sys.keyring.decrypt(row["value"]) if row["secret"] else row["value"]
                        secret = str(value).encode()
                    else:
                        secret = b""
                out.append((trigger, secret))
            return out

        hooks = await sys.db.read(load)
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[url] = (now + _CACHE_SECONDS, hooks)
        return hooks


_hooks = _Hooks()
_rejections = {"second": 0, "count": 0}


def _parse_body(raw: bytes, content_type: str) -> Any:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("", "application/json", "text/plain") or kind.endswith("+json"):
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the webhook body is not valid JSON: {exc}") from None
    elif kind == "application/x-www-form-urlencoded":
        body = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    else:
        raise InvalidInput(f'unsupported Content-Type "{kind}": send application/json or a form')
    if not isinstance(body, (dict, list)):
        raise InvalidInput("the webhook body must be a JSON object or array")
    if core_triggers.nesting_depth(body, MAX_DEPTH) > MAX_DEPTH:
        raise InvalidInput(f"the webhook body nests deeper than {MAX_DEPTH} levels")
    return body


def _headers(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in request.scope["headers"]:
        name = raw_name.decode("latin-1")
        if name.lower() not in _HIDDEN_HEADERS:
            out[name] = raw_value.decode("latin-1")
    return out


def signature_valid(secret: bytes, raw: bytes, headers: dict[str, str]) -> bool:
    expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    for name in SIGNATURE_HEADERS:
        given = headers.get(name)
        if given is not None and hmac.compare_digest(given.strip().lower(), expected):
            return True
    return False


async def _reject(request: Request, url: str, error: SquallError, headers: dict[str, str]) -> None:
    now = int(time.time())
    if _rejections["second"] != now:
        _rejections["second"], _rejections["count"] = now, 0
    _rejections["count"] += 1
    if _rejections["count"] > _REJECTIONS_PER_SECOND:
        return
    client = request.client.host if request.client else None
    payload = {"url": url, "reason": error.message, "client": client, "headers": headers}
    await _keep(request, calls.REJECTED, {"payload": payload})


async def _keep(request: Request, kind: str, data: dict[str, Any]) -> None:
    """Store what a call left behind: in the database, or — served by
    ``squall intake`` (api/intake.py) — in its inbox, whose records the
    rules engine takes into the database (services/inbox.py)."""
    sys = system(request)
    data["at"] = time.time()
    if sys.inbox is not None:
        await sys.inbox.put(kind, data)
    else:
        await sys.db.write(calls.keep, kind, data)


@router.post("/api/v1/webhooks/{url:path}", status_code=202)
async def post_webhook(request: Request, url: str = "") -> JSON:
    """``url`` is declared for the API's schema; the handler reads the path
    itself, as it is also called directly (see ``api.app.WebhookFastPath``)."""
    url = core_triggers.webhook_url(request.scope["path"][len(PREFIX) :])
    raw = await request.body()
    user = None
    if credential(request) is not None:
        user = await authenticate(request.scope)  # a bad key is a 401, not a signature check
        try:
            await permissions.check(request.scope, user, "webhook_send", Resource("webhook", url))
        except Forbidden:
            # Webhooks are served past the audit middleware (api.app.WebhookFastPath).
            client = request.client.host if request.client else None
            call = {
                "actor": user, "kind": "denied", "action": f"POST {PREFIX}{url}", "target": url,
                "outcome": "denied", "source": client,
                "details": {"status": 403, "permission": "webhook_send"},
            }  # fmt: skip
            try:
                await _keep(request, calls.DENIED, {"call": call})
            except Exception:  # the refusal stands; only its record failed
                log.exception("could not record a refused webhook call")
            raise
    body = _parse_body(raw, request.headers.get("content-type", ""))
    headers = _headers(request)
    lower = {k.lower(): v for k, v in headers.items()}

    if url == core_triggers.GENERIC_WEBHOOK_URL:
        if user is None:
            raise Unauthorized("the st2 webhook needs an API key or token")
        if system(request).inbox is not None:
            # Checked before the answer: the inbox keeps whatever it is given
            # (kept here, the write checks it in its own transaction).
            await system(request).db.read(calls.generic_trigger, body)
        await _keep(request, calls.GENERIC, {"body": body, "user": user})
        return JSON(body, status_code=202)

    hooks = await _hooks.get(request, url)
    if user is not None:
        if not hooks:
            raise NotFound(f"no webhook is registered at {url!r}")
        accepted = [t for t, _ in hooks]
    else:
        signed = any(name in lower for name in SIGNATURE_HEADERS)
        accepted = [t for t, secret in hooks if secret and signature_valid(secret, raw, lower)]
        if not accepted:
            error: SquallError = (
                Forbidden("the webhook signature does not match")
                if signed and hooks
                else Unauthorized(
                    "authentication required: an API key, a token, or a signature "
                    "(X-Hub-Signature-256 or X-Squall-Signature)"
                )
            )
            await _reject(request, url, error, headers)
            raise error
    payload = {"headers": headers, "headers_lower": lower, "body": body}
    context = {"source": "webhook", "url": url, "user": user}
    events = [(t["ref"], payload, context) for t in accepted]
    await _keep(request, calls.ACCEPTED, {"events": events})
    return JSON(body, status_code=202)


@router.get("/api/v1/webhooks")
async def list_webhooks(request: Request) -> JSON:
    rows = await system(request).db.read(trigger_store.list_triggers, core_triggers.WEBHOOK)
    return JSON([_webhook_view(r) for r in rows])


@router.get("/api/v1/webhooks/{url:path}")
async def get_webhook(request: Request, url: str) -> JSON:
    url = core_triggers.webhook_url(url)
    rows = await system(request).db.read(trigger_store.webhook_triggers, url)
    if not rows:
        raise NotFound(f"no webhook is registered at {url!r}")
    return JSON(_webhook_view(rows[0]))


def _webhook_view(row: dict[str, Any]) -> dict[str, Any]:
    view = trigger_view(row)
    view["url"] = row["parameters"].get("url")
    view["signed"] = bool(row["parameters"].get("hmac_secret_key"))
    return view
