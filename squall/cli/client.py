"""A small client for the Squall API, and where the CLI finds the API.

The API's URL comes from ``--url``, else ``SQUALL_API_URL``, else the
``api_url`` the server wrote to ``<data dir>/credentials.json`` on first
start, else ``http://127.0.0.1:9101``. The API key comes from
``SQUALL_API_KEY``, else the ``api_key`` in that same file. The data directory
is ``SQUALL_DATA_DIR`` or :func:`squall.config.default_data_dir`, exactly as
``squall up`` finds it: the CLI on the server's machine needs no setup.

Every failure the user can cause or fix comes out as a
:class:`~squall.errors.SquallError`: :class:`~squall.errors.ApiError` for an
error answer (its ``faultstring``), :class:`ApiUnreachable` when there is
nobody to answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from squall import __version__
from squall.config import DEFAULT_PORT, default_data_dir
from squall.errors import ApiError, SquallError

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
CREDENTIALS_FILE = "credentials.json"  # the name squall.server writes

OUTPUT_EVENT = "st2.execution.output__create"
UPDATE_EVENT = "st2.execution__update"

# The stream sends a keep-alive comment every 15 s; silence for much longer
# than that means the connection is gone.
STREAM_READ_TIMEOUT = 60.0


class ApiUnreachable(SquallError):
    """Nobody answers at the API's URL (or the answer never comes)."""


# -- where the API is -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The API the CLI talks to, and how it signs its requests."""

    url: str
    api_key: str | None
    credentials_file: Path


def normalize_url(url: str) -> str:
    """``host:port`` and ``.../api/v1`` are accepted; the base URL comes back."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def read_credentials(path: Path) -> dict[str, Any]:
    """The server's first-start credentials file; empty when absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_target(url: str | None = None, env: Mapping[str, str] | None = None) -> Target:
    env = os.environ if env is None else env
    data_dir = Path(env.get("SQUALL_DATA_DIR") or default_data_dir()).expanduser()
    creds_file = data_dir / CREDENTIALS_FILE
    creds = read_credentials(creds_file)
    chosen = url or env.get("SQUALL_API_URL") or creds.get("api_url") or DEFAULT_URL
    key = env.get("SQUALL_API_KEY") or creds.get("api_key") or None
    return Target(normalize_url(str(chosen)), str(key) if key else None, creds_file)


# -- server-sent events -----------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    """One event of the stream; ``data`` is parsed JSON when it is JSON."""

    event: str
    data: Any
    id: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events from the lines of a ``text/event-stream`` body (comments,
    ``retry`` and events without data are skipped)."""
    event, event_id = "", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    parsed: Any = json.loads(text)
                except ValueError:
                    parsed = text
                yield SseEvent(event or "message", parsed, event_id)
            event, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


class EventStream:
    """An open ``/stream/v1/stream`` connection, read by one thread.

    :meth:`interrupt` may be called from any other thread: it shuts the socket
    down so that a read blocked on it returns at once.
    """

    def __init__(self, http: httpx.Client, response: httpx.Response) -> None:
        self._http = http
        self._response = response

    def __iter__(self) -> Iterator[SseEvent]:
        try:
            yield from parse_sse(self._response.iter_lines())
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"the event stream broke off: {_reason(exc)}") from exc

    def interrupt(self) -> None:
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._http.close()


# -- the client -------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _q(value: str) -> str:
    return quote(value, safe="")


def _drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class Client:
    """One method per API call; answers come back as decoded JSON."""

    def __init__(self, target: Target, *, timeout: float = 30.0) -> None:
        self.target = target
        self.url = target.url
        headers = {"User-Agent": f"squall-cli/{__version__}", "Accept": "application/json"}
        if target.api_key:
            headers["St2-Api-Key"] = target.api_key
        self._headers = headers
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> Any:
        try:
            response = self._http.request(
                method, path, params=_drop_none(params or {}), json=body, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(
                f"the Squall API at {self.url} did not answer in time ({_reason(exc)})"
            ) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        self._check(response)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def _unreachable(self, exc: BaseException) -> ApiUnreachable:
        return ApiUnreachable(
            f"cannot reach the Squall API at {self.url} ({_reason(exc)}): is `squall up` running? "
            "(set the URL with --url or SQUALL_API_URL)"
        )

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = str(response.json().get("faultstring") or "")
        except (ValueError, AttributeError):
            message = ""
        if not message:
            message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code == 401 and not self.target.api_key:
            message += (
                f" (no API key found: set SQUALL_API_KEY, or SQUALL_DATA_DIR to the server's "
                f"data directory; looked in {self.target.credentials_file})"
            )
        raise ApiError(response.status_code, message)

    # -- health --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/health")
        return result

    # -- executions ------------------------------------------------------------------

    def run(self, action: str, parameters: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/executions", body={"action": action, "parameters": parameters}
        )
        return result

    def list_executions(
        self, *, action: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET",
            "/api/v1/executions",
            params={"action": action, "status": status, "limit": limit},
        )
        return result

    def get_execution(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/executions/{_q(execution_id)}")
        return result

    def output(self, execution_id: str, output_type: str | None = None) -> str:
        result = self.request(
            "GET",
            f"/api/v1/executions/{_q(execution_id)}/output",
            params={"output_type": output_type},
        )
        return str(result or "")

    def cancel(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/executions/{_q(execution_id)}")
        return result

    def rerun(
        self,
        execution_id: str,
        parameters: dict[str, Any],
        *,
        tasks: list[str] | None = None,
        reset: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"parameters": parameters}
        if tasks:
            body.update(tasks=tasks, reset=reset or [])
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/executions/{_q(execution_id)}/re_run", body=body
        )
        return result

    def set_execution_status(self, execution_id: str, status: str) -> dict[str, Any]:
        """Pause (``pausing``) or resume (``resuming``) a workflow."""
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/executions/{_q(execution_id)}", body={"status": status}
        )
        return result

    def workflow(self, execution_id: str) -> dict[str, Any]:
        """A workflow's graph and the state of its tasks."""
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/executions/{_q(execution_id)}/workflow"
        )
        return result

    # -- actions -------------------------------------------------------------------------

    def list_actions(self, *, pack: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", "/api/v1/actions", params={"pack": pack, "limit": -1}
        )
        return result

    def get_action(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/actions/{_q(ref)}")
        return result

    def action_parameters(self, ref: str) -> dict[str, Any]:
        """The action's parameters merged with its runner's."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/actions/views/parameters/{_q(ref)}")
        return dict(result.get("parameters") or {})

    # -- packs -----------------------------------------------------------------------------

    def list_packs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/packs")
        return result

    def register_packs(self, names: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/packs/register", body={"packs": names}, timeout=300.0
        )
        return result

    def install_packs(self, sources: list[str]) -> dict[str, Any]:
        # Cloning and building a virtualenv take as long as they take.
        result: dict[str, Any] = self.request(
            "POST",
            "/api/v1/packs/install",
            body={"packs": sources},
            timeout=httpx.Timeout(None, connect=5.0),
        )
        return result

    # -- datastore ---------------------------------------------------------------------------

    def set_key(
        self,
        name: str,
        value: str,
        *,
        secret: bool = False,
        ttl: int | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        body = _drop_none(
            {"name": name, "value": value, "secret": secret, "ttl": ttl, "scope": scope}
        )
        result: dict[str, Any] = self.request("PUT", f"/api/v1/keys/{_q(name)}", body=body)
        return result

    def get_key(
        self, name: str, *, scope: str | None = None, decrypt: bool = False
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET",
            f"/api/v1/keys/{_q(name)}",
            params={"scope": scope, "decrypt": "true" if decrypt else None},
        )
        return result

    def list_keys(
        self, *, prefix: str | None = None, scope: str | None = None, decrypt: bool = False
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET",
            "/api/v1/keys",
            params={
                "prefix": prefix,
                "scope": scope,
                "decrypt": "true" if decrypt else None,
                "limit": -1,
            },
        )
        return result

    def delete_key(self, name: str, *, scope: str | None = None) -> None:
        self.request("DELETE", f"/api/v1/keys/{_q(name)}", params={"scope": scope})

    def rotate_datastore_key(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/datastore/rotate-key")
        return result

    # -- the event stream ---------------------------------------------------------------------

    def open_stream(
        self, *, execution_ids: list[str] | None = None, events: list[str] | None = None
    ) -> EventStream:
        """Connect to the event stream. When this returns, the server is
        subscribed: every event published from now on will come through."""
        http = httpx.Client(
            base_url=self.url,
            headers={**self._headers, "Accept": "text/event-stream"},
            timeout=httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT),
        )
        params = _drop_none(
            {
                "execution_ids": ",".join(execution_ids) if execution_ids else None,
                "events": ",".join(events) if events else None,
            }
        )
        try:
            response = http.send(
                http.build_request("GET", "/stream/v1/stream", params=params), stream=True
            )
        except httpx.TransportError as exc:
            http.close()
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            try:
                response.read()
                self._check(response)
            finally:
                response.close()
                http.close()
        return EventStream(http, response)
