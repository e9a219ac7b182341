"""http-request against a tiny local HTTP server (a thread running http.server)."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from squall.runners.http import HttpRequestRunner
from tests.integration.runners.support import context, run

RUNNER = HttpRequestRunner()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(
        self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def _handle(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if url.path == "/json":
            self._send(200, b'{"ok": true, "n": [1, 2]}', "application/json; charset=utf-8")
        elif url.path == "/text":
            self._send(200, "héllo".encode(), "text/plain; charset=utf-8", {"X-Custom": "yes"})
        elif url.path == "/badjson":
            self._send(200, b"{not json", "application/json")
        elif url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), b"status", "text/plain")
        elif url.path == "/slow":
            time.sleep(2)
            self._send(200, b"late", "text/plain")
        elif url.path == "/big":
            self._send(200, b"x" * 100_000, "application/json")
        elif url.path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/json"})
        else:  # echo
            echo = {
                "method": self.command,
                "path": url.path,
                "query": urllib.parse.parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
            self._send(200, json.dumps(echo).encode(), "application/json")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def request(url: str, params: dict[str, Any] | None = None, **rp: Any) -> Any:
    return run(RUNNER, context({"url": url, **rp}, params or {}, action_ref="core.http"))


def test_get_json_is_parsed(server: str) -> None:
    res = request(f"{server}/json")
    assert res.status == "succeeded"
    assert res.result["status_code"] == 200
    assert res.result["body"] == {"ok": True, "n": [1, 2]}
    assert res.result["parsed"] is True
    assert res.result["headers"]["Content-Type"].startswith("application/json")


def test_text_body_and_header_case(server: str) -> None:
    res = request(f"{server}/text")
    assert res.result["body"] == "héllo"
    assert res.result["parsed"] is False
    assert res.result["headers"]["X-Custom"] == "yes"


def test_invalid_json_stays_text(server: str) -> None:
    res = request(f"{server}/badjson")
    assert res.status == "succeeded"
    assert (res.result["body"], res.result["parsed"]) == ("{not json", False)


@pytest.mark.parametrize(
    ("code", "status"), [(201, "succeeded"), (206, "succeeded"), (404, "failed"), (500, "failed")]
)
def test_status_codes(server: str, code: int, status: str) -> None:
    res = request(f"{server}/status/{code}")
    assert res.status == status
    assert res.result["status_code"] == code


def test_post_json_body_headers_query(server: str) -> None:
    res = request(
        f"{server}/echo",
        {"method": "post", "body": '{"a": 1}', "params": {"q": "v"}},
        headers={"Content-Type": "application/json", "X-Token": "t"},
    )
    echo = res.result["body"]
    assert echo["method"] == "POST"
    assert json.loads(echo["body"]) == {"a": 1}
    assert echo["query"] == {"q": ["v"]}
    assert echo["headers"]["x-token"] == "t"
    assert echo["headers"]["x-stanley-action"] == "http"
    assert echo["headers"]["user-agent"].startswith("squall/")


def test_body_defaults_method_to_post(server: str) -> None:
    res = request(f"{server}/echo", {"body": "raw text"})
    assert res.result["body"]["method"] == "POST"
    assert res.result["body"]["body"] == "raw text"


def test_basic_auth_and_cookies(server: str) -> None:
    res = request(f"{server}/echo", username="u", password="p", cookies={"c": "1"})
    headers = res.result["body"]["headers"]
    assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert headers["cookie"] == "c=1"


def test_timeout(server: str) -> None:
    started = time.monotonic()
    res = request(f"{server}/slow", {"timeout": 0.3})
    assert res.status == "timeout"
    assert "error" in res.result
    assert time.monotonic() - started < 1.9


def test_body_size_cap(server: str) -> None:
    runner = HttpRequestRunner(max_body_bytes=1000)
    res = run(runner, context({"url": f"{server}/big"}, {}))
    body = res.result["body"]
    assert body.startswith("x" * 1000)
    assert body.endswith("[... output truncated: 99000 bytes omitted ...]")
    assert res.result["parsed"] is False


def test_redirects(server: str) -> None:
    res = request(f"{server}/redirect")
    assert (res.status, res.result["status_code"]) == ("failed", 302)
    res = request(f"{server}/redirect", allow_redirects=True)
    assert (res.status, res.result["body"]) == ("succeeded", {"ok": True, "n": [1, 2]})


def test_host_lists(server: str) -> None:
    res = request(f"{server}/json", url_hosts_blacklist=["127.0.0.1"])
    assert res.status == "failed" and "blacklisted" in res.result["error"]
    res = request(f"{server}/json", url_hosts_whitelist=["example.com"])
    assert res.status == "failed" and "not whitelisted" in res.result["error"]
    res = request(f"{server}/json", url_hosts_whitelist=["127.0.0.1"])
    assert res.status == "succeeded"


def test_connection_refused_fails_with_error() -> None:
    res = request("http://127.0.0.1:9/nothing", {"timeout": 2})
    assert res.status == "failed"
    assert "error" in res.result
