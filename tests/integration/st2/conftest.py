"""Running the real StackStorm CLI (PyPI st2client) against a test server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import API_KEY, ROOT, Server

# A server, the environment of the CLI and the path of the ``st2`` binary.
St2 = tuple[Server, dict[str, str], str]


def st2_binary() -> str:
    """The ``st2`` binary; skips the test (fails it on CI) when it is not installed."""
    for candidate in (
        os.environ.get("ST2_CLI"),
        str(ROOT / ".venv-st2" / "bin" / "st2"),
        shutil.which("st2"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail("the st2 CLI is not installed (scripts/test-deps installs it)")
    pytest.skip("st2 CLI not installed; run scripts/test-deps")


def st2_env(srv: Server, home: Path) -> dict[str, str]:
    """The environment of a CLI that talks to ``srv`` with the admin API key."""
    (home / "st2.conf").write_text("[cli]\ncache_token = False\n")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ST2_API_URL": f"{srv.url}/api/v1",
        "ST2_AUTH_URL": f"{srv.url}/auth/v1",
        "ST2_STREAM_URL": f"{srv.url}/stream/v1",
        "ST2_API_KEY": API_KEY,
        "ST2_CONFIG_FILE": str(home / "st2.conf"),
    }


def st2run(
    st2: St2,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    _srv, base_env, binary = st2
    return subprocess.run(
        [binary, *args],
        env={**base_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
