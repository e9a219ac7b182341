"""The ``http-request`` runner: one HTTP request with httpx.

As in StackStorm, connection settings are runner parameters (``url``,
``headers``, ``cookies``, ``allow_redirects``, ``http_proxy``,
``https_proxy``, ``username``/``password`` for basic auth,
``verify_ssl_cert``, ``url_hosts_blacklist``/``url_hosts_whitelist``) while
the request itself comes from action parameters: ``method`` (default GET, or
POST when there is a body or a file), ``body``, ``params`` (query),
``timeout`` (seconds, default 60), ``auth`` and ``file_name``/
``file_content``/``file_content_type`` (multipart upload).

Result::

    {"status_code": int, "body": str | parsed JSON, "parsed": bool, "headers": {...}}

Status codes 200-206 succeed, anything else fails. A request timeout gives
status ``timeout``; a request that cannot be made at all fails with
``{"error": ...}``. The response body is read up to ``max_body_bytes``; past
that it is cut, marked and left unparsed.
"""

from __future__ import annotations

import ast
import asyncio
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx

from squall import __version__
from squall.errors import RunnerError
from squall.runners.base import ANY_JSON, OutputSink, RunContext, RunnerType, RunResult
from squall.runners.output import mask_secrets, truncation_marker

__all__ = ["HTTP_REQUEST_META", "HttpRequestRunner"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
SUCCESS_STATUS_CODES = frozenset(range(200, 207))
JSON_CONTENT_TYPES = frozenset({"application/json"})

HTTP_REQUEST_META = RunnerType(
    name="http-request",
    description="Makes an HTTP request and returns the response.",
    runner_module="http_runner",
    output_key="body",
    output_schema={
        "type": "object",
        "properties": {
            "status_code": {"type": "integer"},
            "body": ANY_JSON,
            "parsed": {"type": "boolean"},
            "headers": {"type": "object"},
        },
        "additionalProperties": False,
    },
    runner_parameters={
        "allow_redirects": {
            "description": "Follow redirects.",
            "type": "boolean",
            "default": False,
        },
        "cookies": {"description": "Cookies to send.", "type": "object"},
        "headers": {"description": "Request headers.", "type": "object"},
        "http_proxy": {
            "description": "Proxy URL for http:// requests, e.g. http://10.0.0.1:3128.",
            "type": "string",
        },
        "https_proxy": {
            "description": "Proxy URL for https:// requests, e.g. http://10.0.0.1:3128.",
            "type": "string",
        },
        "password": {
            "description": "Password for HTTP basic authentication.",
            "type": "string",
            "secret": True,
        },
        "url": {"description": "URL to request.", "type": "string", "required": True},
        "username": {"description": "User name for HTTP basic authentication.", "type": "string"},
        "verify_ssl_cert": {
            "description": "Verify the server's TLS certificate (set false to skip).",
            "type": "boolean",
            "default": True,
        },
        "url_hosts_blacklist": {
            "description": "Hosts the request may not go to (mutually exclusive with the "
            "whitelist).",
            "type": "array",
            "required": False,
            "items": {"type": "string"},
        },
        "url_hosts_whitelist": {
            "description": "If given, the only hosts the request may go to.",
            "type": "array",
            "required": False,
            "items": {"type": "string"},
        },
    },
)

_ssl_contexts: dict[bool, ssl.SSLContext] = {}


def _ssl_context(verify: bool) -> ssl.SSLContext:
    """Building an SSL context costs milliseconds; build one per setting, once."""
    context = _ssl_contexts.get(verify)
    if context is None:
        if verify:
            context = ssl.create_default_context()
            try:
                import certifi

                context.load_verify_locations(certifi.where())
            except (ImportError, OSError):
                pass
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _ssl_contexts[verify] = context
    return context


def url_host(url: str) -> str:
    """The host of ``url`` without port or IPv6 brackets (what the host lists hold)."""
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or ""


def _cast_json_body(body: Any) -> Any:
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            try:
                return ast.literal_eval(body)
            except (ValueError, SyntaxError) as exc:
                raise ValueError(f"request body can't be parsed as JSON: {body!r}") from exc
    return body


def _response_headers(response: httpx.Response) -> dict[str, str]:
    """Response headers with their original case; repeated headers joined by ', '."""
    headers: dict[str, str] = {}
    lower_to_key: dict[str, str] = {}
    for raw_key, raw_value in response.headers.raw:
        key = raw_key.decode("latin-1")
        value = raw_value.decode("latin-1")
        existing = lower_to_key.get(key.lower())
        if existing is None:
            lower_to_key[key.lower()] = key
            headers[key] = value
        else:
            headers[existing] = f"{headers[existing]}, {value}"
    return headers


def _error(message: str, status: str = "failed") -> RunResult:
    return RunResult(status=status, result={"error": message})


class HttpRequestRunner:
    """``http-request``."""

    meta = HTTP_REQUEST_META

    def __init__(
        self,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._transport = transport  # for tests and embedding

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        rp = ctx.runner_parameters
        ap = ctx.parameters
        url = rp.get("url")
        if not isinstance(url, str) or not url:
            raise RunnerError("http-request needs a 'url' parameter")

        blacklist = list(rp.get("url_hosts_blacklist") or [])
        whitelist = list(rp.get("url_hosts_whitelist") or [])
        if blacklist and whitelist:
            return _error(
                '"url_hosts_blacklist" and "url_hosts_whitelist" cannot be used together; '
                "give only one of them"
            )
        host = url_host(url)
        if blacklist and host in blacklist:
            return _error(f'URL "{url}" is blacklisted')
        if whitelist and host not in whitelist:
            return _error(f'URL "{url}" is not whitelisted')

        try:
            timeout = float(ap.get("timeout") or DEFAULT_TIMEOUT)
        except (TypeError, ValueError):
            raise RunnerError(f"timeout must be a number, got {ap.get('timeout')!r}") from None
        if ctx.timeout is not None and ctx.timeout > 0:
            timeout = min(timeout, float(ctx.timeout))

        try:
            request_kwargs = self._request_kwargs(ctx, url)
        except ValueError as exc:
            return _error(str(exc))

        proxies: dict[str, httpx.AsyncBaseTransport] = {}
        verify = rp.get("verify_ssl_cert")
        context = _ssl_context(verify is not False)
        for scheme in ("http", "https"):
            proxy = rp.get(f"{scheme}_proxy")
            if proxy:
                proxies[f"{scheme}://"] = httpx.AsyncHTTPTransport(proxy=proxy, verify=context)

        client = httpx.AsyncClient(
            verify=context,
            follow_redirects=bool(rp.get("allow_redirects", False)),
            timeout=httpx.Timeout(timeout),
            mounts=proxies or None,
            transport=self._transport,
        )
        try:
            async with client:
                return await asyncio.wait_for(self._send(client, request_kwargs), timeout * 2)
        except (TimeoutError, httpx.TimeoutException) as exc:
            message = str(exc) or f"request to {url} timed out after {timeout:g} seconds"
            return _error(mask_secrets(message, ctx.secrets), status="timeout")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return _error(mask_secrets(f"request to {url} failed: {exc}", ctx.secrets))

    def _request_kwargs(self, ctx: RunContext, url: str) -> dict[str, Any]:
        rp = ctx.runner_parameters
        ap = ctx.parameters
        body = ap.get("body")
        file_name = ap.get("file_name")
        file_content = ap.get("file_content")
        method = ap.get("method") or ("POST" if body or (file_name and file_content) else "GET")

        headers: dict[str, str] = {}
        source = rp.get("headers")
        if isinstance(source, Mapping):
            headers.update({str(k): str(v) for k, v in source.items() if v is not None})
        headers["User-Agent"] = f"squall/v{__version__}"
        headers["X-Stanley-Action"] = ctx.action_ref.rsplit(".", 1)[-1]

        kwargs: dict[str, Any] = {"method": str(method).upper(), "url": url, "headers": headers}
        params = ap.get("params")
        if params:
            kwargs["params"] = params

        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if content_type is not None and content_type.split(";")[0].strip() in JSON_CONTENT_TYPES:
            if body is not None and body != "":
                kwargs["content"] = json.dumps(_cast_json_body(body)).encode("utf-8")
        elif isinstance(body, Mapping):
            kwargs["data"] = {str(k): str(v) for k, v in body.items()}
        elif isinstance(body, bytes):
            kwargs["content"] = body
        elif body is not None and body != "":
            kwargs["content"] = str(body).encode("utf-8")

        if file_name and file_content:
            value: Any = (
                (file_name, file_content, file_content_type)
                if (file_content_type := ap.get("file_content_type"))
                else (file_name, file_content)
            )
            kwargs["files"] = {file_name: value}

        cookies = rp.get("cookies")
        if isinstance(cookies, Mapping) and cookies:
            kwargs["cookies"] = {str(k): str(v) for k, v in cookies.items()}

        username, password = rp.get("username"), rp.get("password")
        auth = ap.get("auth")
        if username or password:
            kwargs["auth"] = httpx.BasicAuth(str(username or ""), str(password or ""))
        elif isinstance(auth, Mapping) and ("username" in auth or "password" in auth):
            kwargs["auth"] = httpx.BasicAuth(
                str(auth.get("username") or ""), str(auth.get("password") or "")
            )
        elif isinstance(auth, list | tuple) and len(auth) == 2:
            kwargs["auth"] = httpx.BasicAuth(str(auth[0]), str(auth[1]))
        elif isinstance(auth, str) and "=" in auth:
            # core.http documents auth as e.g. "x-auth-token=XYZ": send it as that header.
            name, _, value = auth.partition("=")
            headers[name.strip()] = value.strip()
        return kwargs

    async def _send(self, client: httpx.AsyncClient, kwargs: dict[str, Any]) -> RunResult:
        files = kwargs.pop("files", None)
        cookies = kwargs.pop("cookies", None)
        if cookies:
            for name, value in cookies.items():
                client.cookies.set(name, value)
        auth = kwargs.pop("auth", None)
        request = client.build_request(files=files, **kwargs)
        response = await client.send(request, stream=True, auth=auth)
        try:
            data = bytearray()
            omitted = 0
            async for chunk in response.aiter_bytes():
                room = self.max_body_bytes - len(data)
                if room > 0:
                    data += chunk[:room]
                omitted += max(0, len(chunk) - max(room, 0))
        finally:
            await response.aclose()

        encoding = response.charset_encoding or "utf-8"
        try:
            text = bytes(data).decode(encoding, "replace")
        except LookupError:
            text = bytes(data).decode("utf-8", "replace")
        headers = _response_headers(response)

        body: Any = text
        parsed = False
        if omitted:
            body = text + truncation_marker(omitted)
        else:
            content_type = response.headers.get("content-type", "")
            if content_type.split(";")[0].strip().lower() in JSON_CONTENT_TYPES:
                try:
                    body = json.loads(text) if text else text
                    parsed = bool(text)
                except ValueError:
                    parsed = False
        status = "succeeded" if response.status_code in SUCCESS_STATUS_CODES else "failed"
        return RunResult(
            status=status,
            result={
                "status_code": response.status_code,
                "body": body,
                "parsed": parsed,
                "headers": headers,
            },
        )
