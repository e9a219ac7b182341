"""A real ``squall up`` in a subprocess, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-admin-key-0123456789abcdef"
PASSWORD = "test-admin-password"


class Server:
    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        packs_dirs: list[Path] | None = None,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        root: Path | None = None,
        tls: tuple[Path, Path] | None = None,
        intake: bool = False,
    ) -> None:
        # The checkout whose squall/ the server runs (this one by default).
        self.root = root or ROOT
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="squall-test-"))
        self.port = free_port()
        # With tls (a certificate and its key), the server speaks HTTPS and
        # clients trust that certificate.
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(tls[0])) if tls else True
        )
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # With intake, `squall up --intake-port`: webhooks also answered there.
        self.intake_port = free_port() if intake else None
        self.intake_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.intake_port}"
        self.packs_dirs = packs_dirs or []
        self.env = {
            **os.environ,
            "SQUALL_DATA_DIR": str(self.data_dir),
            "SQUALL_ADMIN_API_KEY": API_KEY,
            "SQUALL_ADMIN_PASSWORD": PASSWORD,
            "SQUALL_API_URL": self.url,
            "SQUALL_API_KEY": API_KEY,
            **(env or {}),
        }
        if database_url:
            self.env["SQUALL_DATABASE_URL"] = database_url
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.data_dir / "server.log"

    def start(self, timeout: float = 60.0) -> Server:
        args = [sys.executable, "-m", "squall.cli.main", "up", "--port", str(self.port)]
        for d in self.packs_dirs:
            args += ["--packs-dir", str(d)]
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        if self.intake_port:
            args += ["--intake-port", str(self.intake_port)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, cwd=self.root)
        deadline = time.time() + timeout
        waiting = [self.url, self.intake_url] if self.intake_port else [self.url]
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"squall up exited early:\n{self.log.read_text()[-3000:]}")
            try:
                health = httpx.get(f"{waiting[0]}/health", timeout=1, verify=self.verify)
                if health.status_code == 200:
                    waiting.pop(0)
                    if not waiting:
                        return self
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.proc.kill()  # not left running behind the failed test
        self.proc.wait()
        raise RuntimeError(f"squall up did not become ready:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def children(self) -> list[int]:
        """The server's child processes (its webhook intake, sensors...)."""
        if self.proc is None:
            return []
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(stat.parent.name))
            except (OSError, ValueError):
                pass  # gone meanwhile
        return found

    def kill(self) -> None:
        """SIGKILL the server and its webhook intake at once."""
        if self.intake_port:
            for pid in self.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.stop(signal.SIGKILL)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"St2-Api-Key": API_KEY}, timeout=30, verify=self.verify
        )

    def wait_final(self, client: httpx.Client, execution_id: str, timeout: float = 30) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            body = client.get(f"/api/v1/executions/{execution_id}").json()
            if body["status"] in ("succeeded", "failed", "timeout", "canceled", "abandoned"):
                return body
            time.sleep(0.05)
        raise AssertionError(f"execution {execution_id} did not finish: {body['status']}")
