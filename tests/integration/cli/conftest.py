"""A real ``squall up`` for the CLI tests, and a way to run the CLI against it.

Both the server and the CLI run as subprocesses, exactly as a person would
run them: ``squall`` is invoked as its entry point does it
(``squall.cli.main:main``), with the interpreter running the tests, so the
tests need no ``pip install``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
API_KEY = "cli-test-admin-key-0123456789abcdef"
SQUALL = [sys.executable, "-c", "from squall.cli.main import main; main()"]

# Inherited settings that would point the server or the CLI somewhere else.
_FOREIGN = (
    "SQUALL_API_URL",
    "SQUALL_API_KEY",
    "SQUALL_DATA_DIR",
    "SQUALL_DATABASE_URL",
    "SQUALL_PACKS_PATH",
    "SQUALL_HOST",
    "SQUALL_PORT",
    "SQUALL_ADMIN_API_KEY",
    "SQUALL_ADMIN_PASSWORD",
    "NO_COLOR",
    "FORCE_COLOR",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def base_env(home: Path) -> dict[str, str]:
    """The environment without any Squall settings, with a home of its own so
    that nothing reads or writes the real ``~/.local/share/squall``."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
    env["HOME"] = str(home)
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "200"
    return env


@dataclass
class CliServer:
    url: str
    api_key: str
    data_dir: Path
    home: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def env(self, **extra: str) -> dict[str, str]:
        """What a CLI user on another machine sets: the URL and the key."""
        return {
            **base_env(self.home),
            "SQUALL_API_URL": self.url,
            "SQUALL_API_KEY": self.api_key,
            **extra,
        }


def _start(data_dir: Path, home: Path, port: int, timeout: float = 60.0) -> CliServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / "server.log"
    env = {
        **base_env(home),
        "SQUALL_ADMIN_API_KEY": API_KEY,
        # Role files kept in git (the rbac tests write them, then reload).
        "SQUALL_RBAC_DIR": str(data_dir.parent / "rbac"),
    }
    args = [*SQUALL, "up", "--data-dir", str(data_dir), "--port", str(port)]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, env=env, stdout=fh, stderr=fh, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"squall up exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return CliServer(url, API_KEY, data_dir, home, log, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"squall up did not become ready in {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    base = tmp_path_factory.mktemp("squall-cli")
    server = _start(base / "data", base / "home", free_port())
    try:
        yield server
    finally:
        _stop(server.proc)


Squall = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture()
def squall(cli_server: CliServer) -> Squall:
    """Run ``squall ARGS...`` against the test server; ``env`` replaces the
    environment it gets (default: the server's URL and key)."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SQUALL, *args],
            env=cli_server.env() if env is None else env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cli_server.home,
            check=False,
        )

    return run
