"""Key-value datastore access for python actions, over the (st2-compatible) HTTP API.

The action process finds the API through the environment, as StackStorm sets
it up for actions: ``ST2_API_URL`` (or ``ST2_ACTION_API_URL``) and
``ST2_AUTH_TOKEN`` (or ``ST2_ACTION_AUTH_TOKEN``; ``ST2_API_KEY`` also works).
The URL may be the server root, ``.../api`` or ``.../api/v1``.

Keys are local to the pack and action class by default (``pack.Class:name``),
as in StackStorm. Standard library only: this runs inside the pack's
interpreter.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

# urllib.request is imported only when an action uses the datastore: it pulls
# in http.client, email and ssl, which would slow down every action's start.

__all__ = ["ActionService", "DatastoreError", "KeyValuePair"]

KEY_SEPARATOR = ":"
_SCOPES = {
    "system": "st2kv.system",
    "st2kv.system": "st2kv.system",
    "user": "st2kv.user",
    "st2kv.user": "st2kv.user",
}
_HTTP_TIMEOUT = 30


class DatastoreError(Exception):
    """The datastore API could not be reached or answered with an error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KeyValuePair:
    """One datastore item, with the API's fields as attributes (``name``, ``value``, ...)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.name: str | None = None
        self.value: Any = None
        self.scope: str | None = None
        self.secret = False
        self.ttl: int | None = None
        self.expire_timestamp: str | None = None
        self.__dict__.update(data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"<KeyValuePair name={self.name!r} scope={self.scope!r}>"


def _full_scope(scope: str) -> str:
    try:
        return _SCOPES[scope]
    except KeyError:
        raise ValueError(f"Scope {scope} is unsupported.") from None


def api_base_url() -> str:
    """The ``.../api/v1`` URL of the API, from the environment."""
    url = os.environ.get("ST2_API_URL") or os.environ.get("ST2_ACTION_API_URL") or ""
    url = url.strip().rstrip("/")
    if not url:
        raise DatastoreError("ST2_API_URL is not set; the datastore is not reachable")
    if url.endswith("/v1"):
        return url
    if url.endswith("/api"):
        return url + "/v1"
    return url + "/api/v1"


class ActionService:
    """What ``self.action_service`` is inside an action: datastore access and a few facts."""

    def __init__(
        self,
        pack: str = "unknown",
        class_name: str = "Action",
        log_level: str = "DEBUG",
        logger: logging.Logger | None = None,
    ) -> None:
        self.pack = pack
        self.class_name = class_name
        self.log_level = log_level
        self._logger = logger or logging.getLogger("actions.python.datastore")

    # -- helpers ------------------------------------------------------------

    def _key_prefix(self) -> str:
        return f"{self.pack}.{self.class_name}{KEY_SEPARATOR}"

    def _full_name(self, name: str, local: bool) -> str:
        return self._key_prefix() + name if local else name

    def _request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        import urllib.error
        import urllib.parse
        import urllib.request

        url = api_base_url() + path
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        headers = {"Accept": "application/json"}
        token = os.environ.get("ST2_AUTH_TOKEN") or os.environ.get("ST2_ACTION_AUTH_TOKEN")
        if token:
            headers["X-Auth-Token"] = token
        api_key = os.environ.get("ST2_API_KEY")
        if api_key:
            headers["St2-Api-Key"] = api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                detail = exc.read().decode("utf-8", "replace")
                detail = json.loads(detail).get("faultstring", detail)
            except Exception:
                pass
            raise DatastoreError(
                f"{method} {path} failed: HTTP {exc.code} {detail}".rstrip(), exc.code
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DatastoreError(f"{method} {path} failed: {exc}") from None
        if not raw:
            return None
        return json.loads(raw.decode("utf-8"))

    @staticmethod
    def _key_path(name: str) -> str:
        import urllib.parse

        return "/keys/" + urllib.parse.quote(name, safe="")

    # -- public API (same signatures as StackStorm's action service) ---------

    def get_user_info(self) -> Any:
        return self._request("GET", "/user")

    def list_values(
        self,
        local: bool = True,
        prefix: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[KeyValuePair]:
        key_prefix = self._key_prefix() + (prefix or "") if local else prefix
        items = self._request(
            "GET",
            "/keys",
            {"prefix": key_prefix, "limit": limit, "offset": offset or None},
        )
        return [KeyValuePair(item) for item in items or [] if isinstance(item, dict)]

    def get_value(
        self, name: str, local: bool = True, scope: str = "system", decrypt: bool = False
    ) -> Any:
        full_scope = _full_scope(scope)
        full_name = self._full_name(name, local)
        try:
            item = self._request(
                "GET",
                self._key_path(full_name),
                {"scope": full_scope, "decrypt": "true" if decrypt else "false"},
            )
        except DatastoreError as exc:
            if exc.status != 404:
                self._logger.exception("could not read %s from the datastore: %s", full_name, exc)
            return None
        if isinstance(item, dict):
            return item.get("value")
        return None

    def set_value(
        self,
        name: str,
        value: Any,
        ttl: int | None = None,
        local: bool = True,
        scope: str = "system",
        encrypt: bool = False,
    ) -> bool:
        full_scope = _full_scope(scope)
        full_name = self._full_name(name, local)
        body: dict[str, Any] = {
            "name": full_name,
            "value": str(value),
            "scope": full_scope,
            "secret": bool(encrypt),
        }
        if ttl:
            body["ttl"] = ttl
        self._request("PUT", self._key_path(full_name), {"scope": full_scope}, body)
        return True

    def delete_value(self, name: str, local: bool = True, scope: str = "system") -> bool:
        full_scope = _full_scope(scope)
        full_name = self._full_name(name, local)
        try:
            self._request("DELETE", self._key_path(full_name), {"scope": full_scope})
        except DatastoreError as exc:
            if exc.status != 404:
                self._logger.exception("could not delete %s from the datastore: %s", full_name, exc)
            return False
        return True
