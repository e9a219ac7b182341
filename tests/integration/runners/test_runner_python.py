"""python-script actions in a real subprocess, with the st2common shim."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from squall.runners.output import MASK
from squall.runners.python_script import PythonScriptRunner
from tests.integration.runners.support import Sink, context, read_pids, run, wait_gone

RUNNER = PythonScriptRunner(kill_grace=0.3)

ACTION = """
import os
import sys
import urllib.request  # the stdlib, not squall/runners/http.py

from st2common.runners.base_action import Action
from helper import shout


class Base(Action):
    def run(self, **kwargs):
        raise NotImplementedError


class MyAction(Base):
    def run(self, mode="ok", name="x", pidfile=None):
        print("hello from", name)
        self.logger.info("logged %s", name)
        if mode == "ok":
            return shout(name) + "/" + str(self.config.get("greeting"))
        if mode == "fail":
            return (False, {"reason": "nope"})
        if mode == "succeed-tuple":
            return (True, [1, 2])
        if mode == "plain-tuple":
            return ("a", "b", "c")
        if mode == "raise":
            raise RuntimeError("kaboom " + name)
        if mode == "exit":
            sys.exit(7)
        if mode == "object":
            return (True, object())
        if mode == "bad-status":
            return ("yes", 1)
        if mode == "sleep":
            import subprocess, time
            child = subprocess.Popen(["sleep", "30"])
            with open(pidfile, "w") as fh:
                fh.write(f"{os.getpid()}\\n{child.pid}\\n")
            time.sleep(30)
        if mode == "config-missing":
            return self.config["missing"]
        if mode == "stdin":
            return sys.stdin.read()
        if mode == "env":
            return {k: os.environ.get(k) for k in ("ST2_ACTION_PACK_NAME", "MYVAR", "PYTHONPATH")}
"""


@pytest.fixture()
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "mypack"
    (root / "actions" / "lib").mkdir(parents=True)
    (root / "actions" / "lib" / "helper.py").write_text("def shout(s):\n    return s.upper()\n")
    (root / "actions" / "my_action.py").write_text(ACTION)
    return root


def run_action(pack: Path, params: dict[str, Any], **kwargs: Any) -> tuple[Any, Sink]:
    sink = Sink()
    ctx = context(
        kwargs.pop("rp", {}),
        params,
        entry_point=str(kwargs.pop("entry_point", pack / "actions" / "my_action.py")),
        pack="mypack",
        pack_dir=str(pack),
        config=kwargs.pop("config", {"greeting": "hi"}),
        timeout=kwargs.pop("timeout", 20),
        **kwargs,
    )
    return run(RUNNER, ctx, sink), sink


def test_success_with_prints_and_logging(pack: Path) -> None:
    res, sink = run_action(pack, {"mode": "ok", "name": "bob"})
    assert res.status == "succeeded", res.result
    assert res.result["result"] == "BOB/hi"
    assert res.result["exit_code"] == 0
    assert res.result["stdout"] == "hello from bob\n"
    assert "logged bob" in res.result["stderr"]
    assert sink.text("stdout") == "hello from bob\n"
    assert "logged bob" in sink.text("stderr")


def test_false_tuple_fails(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "fail"})
    assert res.status == "failed"
    assert res.result["result"] == {"reason": "nope"}
    assert res.result["exit_code"] == 0


def test_true_tuple_and_plain_tuple(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "succeed-tuple"})
    assert (res.status, res.result["result"]) == ("succeeded", [1, 2])
    res, _ = run_action(pack, {"mode": "plain-tuple"})
    assert (res.status, res.result["result"]) == ("succeeded", ["a", "b", "c"])


def test_exception_gives_error_and_traceback(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "raise"})
    assert res.status == "failed"
    assert res.result["exit_code"] == 1
    assert res.result["error"] == "RuntimeError: kaboom x"
    assert "my_action.py" in res.result["traceback"]
    assert "python_wrapper" not in res.result["traceback"]
    assert "RuntimeError: kaboom" in res.result["stderr"]


def test_sys_exit_and_bad_status(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "exit"})
    assert (res.status, res.result["exit_code"], res.result["result"]) == ("failed", 7, None)
    res, _ = run_action(pack, {"mode": "bad-status"})
    assert res.status == "failed"
    assert "True/False" in res.result["error"]


def test_unserializable_result_becomes_text(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "object"})
    assert res.status == "succeeded"
    assert res.result["result"].startswith("<object object")


def test_missing_config_item_is_a_clear_error(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "config-missing"})
    assert res.status == "failed"
    assert "missing" in res.result["error"] and "mypack" in res.result["error"]


def test_stdin_is_empty_and_env(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "stdin"})
    assert res.result["result"] == ""
    res, _ = run_action(pack, {"mode": "env"}, rp={"env": {"MYVAR": "v", "PYTHONPATH": "/evil"}})
    env = res.result["result"]
    assert env["ST2_ACTION_PACK_NAME"] == "mypack" and env["MYVAR"] == "v"
    assert "/evil" not in env["PYTHONPATH"]
    assert "st2compat" in env["PYTHONPATH"]


def test_secrets_are_masked_in_output(pack: Path) -> None:
    res, sink = run_action(pack, {"mode": "ok", "name": "s3cret-name"}, secrets=["s3cret-name"])
    assert res.result["stdout"] == f"hello from {MASK}\n"
    assert "s3cret-name" not in sink.text("stdout") + sink.text("stderr")


def test_timeout_kills_the_process_group(pack: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    res, _ = run_action(pack, {"mode": "sleep", "pidfile": str(pidfile)}, timeout=1.5)
    assert res.status == "timeout"
    assert res.result["exit_code"] == -9
    assert "1.5 seconds" in res.result["error"]
    for pid in read_pids(str(pidfile), 2):
        assert wait_gone(pid), f"process {pid} survived"


def test_cancel_kills_the_process_group(pack: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"

    async def scenario() -> None:
        started = asyncio.Event()

        async def sink(stream: str, text: str) -> None:
            if "hello from" in text:
                started.set()

        ctx = context(
            {},
            {"mode": "sleep", "pidfile": str(pidfile)},
            entry_point=str(pack / "actions" / "my_action.py"),
            pack="mypack",
            pack_dir=str(pack),
            timeout=30,
        )
        task = asyncio.create_task(RUNNER.run(ctx, sink))
        await asyncio.wait_for(started.wait(), 10)
        read_pids(str(pidfile), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    for pid in read_pids(str(pidfile), 2):
        assert wait_gone(pid, 1.0), f"process {pid} survived the cancel"


def test_old_style_init_with_config_only(tmp_path: Path) -> None:
    path = tmp_path / "actions" / "old.py"
    path.parent.mkdir()
    path.write_text(
        textwrap.dedent(
            """
            from st2common.runners.base_action import Action

            class Old(Action):
                def __init__(self, config):
                    super(Old, self).__init__(config)
                    self.extra = 1

                def run(self, x):
                    return {"x": x, "svc": type(self.action_service).__name__,
                            "cfg": self.config.get("a")}
            """
        )
    )
    res = run(RUNNER, context({}, {"x": 3}, entry_point=str(path), config={"a": 1}, timeout=20))
    assert res.status == "succeeded", res.result
    assert res.result["result"] == {"x": 3, "svc": "ActionService", "cfg": 1}


def test_file_without_action_class(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("X = 1\n")
    res = run(RUNNER, context({}, {}, entry_point=str(path), timeout=20))
    assert res.status == "failed"
    assert "no action class" in res.result["error"]


def test_syntax_error_in_action(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def (:\n")
    res = run(RUNNER, context({}, {}, entry_point=str(path), timeout=20))
    assert res.status == "failed"
    assert "Failed to load action class" in res.result["error"]
    assert "SyntaxError" in res.result["error"]


# -- datastore through the shim, against a tiny fake st2 API ---------------------------


class FakeApi(BaseHTTPRequestHandler):
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    seen: list[tuple[str, str, dict[str, list[str]], str | None, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, code: int, body: Any = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _parse(self) -> tuple[str, dict[str, list[str]], Any]:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, url.path, query, self.headers.get("X-Auth-Token"), body))
        return urllib.parse.unquote(url.path), query, body

    def do_GET(self) -> None:
        path, query, _ = self._parse()
        scope = query.get("scope", ["st2kv.system"])[0]
        if path == "/api/v1/keys":
            prefix = query.get("prefix", [""])[0]
            items = [v for (n, _s), v in sorted(self.keys.items()) if n.startswith(prefix)]
            return self._answer(200, items)
        name = path.removeprefix("/api/v1/keys/")
        item = self.keys.get((name, scope))
        if item is None:
            return self._answer(404, {"faultstring": "not found"})
        return self._answer(200, item)

    def do_PUT(self) -> None:
        path, _, body = self._parse()
        name = path.removeprefix("/api/v1/keys/")
        self.keys[(name, body["scope"])] = body
        self._answer(200, body)

    def do_DELETE(self) -> None:
        path, query, _ = self._parse()
        name = path.removeprefix("/api/v1/keys/")
        scope = query.get("scope", ["st2kv.system"])[0]
        if self.keys.pop((name, scope), None) is None:
            return self._answer(404, {"faultstring": "not found"})
        self._answer(204)


@pytest.fixture()
def fake_api() -> Iterator[str]:
    FakeApi.keys = {}
    FakeApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


DATASTORE_ACTION = """
from st2common.runners.base_action import Action

class Kv(Action):
    def run(self):
        svc = self.action_service
        out = {}
        out["missing"] = svc.get_value("nothing")
        out["set"] = svc.set_value("counter", 41, ttl=60)
        out["local"] = svc.get_value("counter")
        svc.set_value("global_key", "g", local=False, encrypt=True)
        out["global"] = svc.get_value("global_key", local=False, decrypt=True)
        out["listed"] = sorted(kv.name for kv in svc.list_values())
        out["deleted"] = svc.delete_value("counter")
        out["deleted_again"] = svc.delete_value("counter")
        out["after"] = svc.get_value("counter")
        return out
"""


def test_action_service_datastore(tmp_path: Path, fake_api: str) -> None:
    path = tmp_path / "actions" / "kv.py"
    path.parent.mkdir()
    path.write_text(DATASTORE_ACTION)
    env = {"ST2_API_URL": f"{fake_api}/api/v1", "ST2_AUTH_TOKEN": "tok-123"}
    res = run(
        RUNNER,
        context({}, {}, entry_point=str(path), pack="mypack", env=env, timeout=20),
    )
    assert res.status == "succeeded", res.result
    assert res.result["result"] == {
        "missing": None,
        "set": True,
        "local": "41",
        "global": "g",
        "listed": ["mypack.Kv:counter"],
        "deleted": True,
        "deleted_again": False,
        "after": None,
    }
    puts = [s for s in FakeApi.seen if s[0] == "PUT"]
    assert puts[0][1] == "/api/v1/keys/mypack.Kv%3Acounter"
    assert puts[0][4] == {
        "name": "mypack.Kv:counter",
        "value": "41",
        "scope": "st2kv.system",
        "secret": False,
        "ttl": 60,
    }
    assert puts[1][4]["secret"] is True
    assert all(s[3] == "tok-123" for s in FakeApi.seen)
    gets = [s for s in FakeApi.seen if s[0] == "GET" and "global_key" in s[1]]
    assert gets[0][2] == {"scope": ["st2kv.system"], "decrypt": ["true"]}


def test_secret_in_exception_is_masked(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "raise", "name": "pw-SECRET"}, secrets=["pw-SECRET"])
    assert res.result["error"] == f"RuntimeError: kaboom {MASK}"
    assert "pw-SECRET" not in json.dumps(res.result)


def test_large_parameters_go_through_stdin(pack: Path) -> None:
    name = "n" * 500_000
    res, _ = run_action(pack, {"mode": "ok", "name": name})
    assert res.status == "succeeded"
    assert res.result["result"] == name.upper() + "/hi"


def test_missing_interpreter_fails_clearly(pack: Path) -> None:
    res, _ = run_action(pack, {"mode": "ok"}, python="/nonexistent/bin/python")
    assert res.status == "failed"
    assert "/nonexistent/bin/python" in res.result["error"]
