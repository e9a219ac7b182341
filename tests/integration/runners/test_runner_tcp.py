"""The tcp runner (core.tcp) against real sockets: listening, closed, full."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from squall.core.params import merge_schemas
from squall.errors import RunnerError
from squall.packs.loader import BUILTIN_PACKS_DIR, discover_packs, load_pack
from squall.runners.registry import get_runner
from squall.runners.tcp import TcpRunner
from tests.integration.runners.support import Sink, context, run

RUNNER = TcpRunner()


def probe(
    host: str, port: object, timeout: object = None, execution_timeout: float | None = None
) -> tuple[str, dict]:
    params: dict[str, object] = {"host": host, "port": port}
    if timeout is not None:
        params["timeout"] = timeout
    sink = Sink()
    ctx = context(params, action_ref="core.tcp", timeout=execution_timeout)
    result = run(RUNNER, ctx, sink)
    assert sink.chunks == []
    return result.status, result.result


@pytest.fixture()
def listening() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connects_to_a_listening_port(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    status, result = probe("127.0.0.1", port)
    assert status == "succeeded"
    assert set(result) == {"host", "port", "connected", "seconds"}
    assert result["host"] == "127.0.0.1"
    assert result["port"] == port
    assert result["connected"] is True
    assert 0 <= result["seconds"] < 5
    # It really connected: the connection is waiting to be accepted.
    listening.settimeout(5)
    peer, _ = listening.accept()
    with peer:
        peer.settimeout(5)
        assert peer.recv(1) == b""  # closed by the probe, nothing sent


def test_a_name_is_resolved(listening: socket.socket) -> None:
    status, result = probe("localhost", listening.getsockname()[1])
    assert (status, result["connected"], result["host"]) == ("succeeded", True, "localhost")


def test_a_closed_port_is_refused() -> None:
    port = closed_port()
    status, result = probe("127.0.0.1", port)
    assert status == "failed"
    assert result["connected"] is False
    assert result["error"] == "connection refused"
    assert result["port"] == port
    assert result["seconds"] < 5


@pytest.fixture()
def unanswering() -> Iterator[int]:
    """A port whose listen backlog (0) is already full: the kernel drops new
    SYNs, so a connection neither succeeds nor is refused."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    waiting = []
    try:
        for _ in range(3):
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            waiting.append(client)
        time.sleep(0.2)
        yield port
    finally:
        for client in waiting:
            client.close()
        server.close()


def test_a_port_that_does_not_answer_times_out(unanswering: int) -> None:
    started = time.monotonic()
    status, result = probe("127.0.0.1", unanswering, timeout=0.5)
    took = time.monotonic() - started
    assert status == "failed"
    assert result["connected"] is False
    assert result["error"] == "timed out after 0.5 s"
    assert 0.4 <= took < 3
    assert 0.4 <= result["seconds"] < 3


def test_the_execution_timeout_caps_the_connect_timeout(unanswering: int) -> None:
    status, result = probe("127.0.0.1", unanswering, timeout=30, execution_timeout=0.3)
    assert status == "failed"
    assert result["error"] == "timed out after 0.3 s"


def test_the_default_timeout_is_ten_seconds() -> None:
    meta = get_runner("tcp").meta
    assert meta.runner_parameters["timeout"]["default"] == 10
    assert meta.runner_parameters["host"]["required"] is True
    assert meta.runner_parameters["port"]["required"] is True
    assert meta.runner_parameters["port"]["type"] == "integer"


def test_an_unknown_name_is_reported() -> None:
    status, result = probe("no-such-host.invalid", 80, timeout=5)
    assert status == "failed"
    assert result["connected"] is False
    assert result["error"].startswith("cannot resolve no-such-host.invalid: ")


def test_ipv6_in_brackets() -> None:
    try:
        server = socket.socket(socket.AF_INET6)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        server.listen(1)
        status, result = probe("[::1]", server.getsockname()[1])
    assert (status, result["connected"], result["host"]) == ("succeeded", True, "::1")


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("", 80, "needs a 'host'"),
        ("127.0.0.1", 0, "from 1 to 65535, not 0"),
        ("127.0.0.1", 70000, "not 70000"),
        ("127.0.0.1", "80", "not '80'"),
        ("127.0.0.1", True, "not True"),
    ],
)
def test_bad_parameters(host: str, port: object, message: str) -> None:
    with pytest.raises(RunnerError, match=message):
        probe(host, port)


def test_bad_timeout() -> None:
    with pytest.raises(RunnerError, match="timeout must be a number"):
        probe("127.0.0.1", 80, timeout="soon")


def test_core_tcp_action() -> None:
    (core_dir,) = [p for p in discover_packs([BUILTIN_PACKS_DIR]) if p.name == "core"]
    pack = load_pack(core_dir, None)
    assert pack.errors == []
    actions = {a["ref"]: a for a in pack.actions}
    tcp = actions["core.tcp"]
    assert tcp["runner_type"] == "tcp"
    merged = merge_schemas(get_runner("tcp").meta.runner_parameters, tcp["parameters"])
    assert list(merged) == ["host", "port", "timeout"]
    assert merged["host"]["required"] is True
    assert merged["port"] == {
        "description": "TCP port to connect to.",
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "required": True,
    }
    assert merged["timeout"]["default"] == 10
