"""A throwaway PostgreSQL cluster on loopback, from the Debian package's binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bindir() -> Path | None:
    # Debian keeps the server binaries out of PATH, per major version.
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="squall-pg-"))
        self.datadir = self.root / "data"
        # initdb refuses to run as root: run the cluster as the 'postgres' user.
        self.run_as = "postgres" if os.geteuid() == 0 else None
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _cmd(self, *args: str) -> list[str]:
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *args]
        return list(args)

    def start(self) -> str:
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "squall",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        self.start_server()
        return self.new_database("squall")

    def start_server(self) -> None:
        """Start the server of an initialised cluster (again, after stop_server)."""
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        subprocess.run(
            self._cmd(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-o",
                opts,
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop_server(self) -> None:
        """Stop the server, keeping its data (an outage, for the tests that need one)."""
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"),
            check=True,
            capture_output=True,
        )

    def new_database(self, name: str) -> str:
        subprocess.run(
            self._cmd(
                str(self.bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "squall",
                name,
            ),
            check=True,
            capture_output=True,
        )
        return f"postgresql://squall@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            self._cmd(
                str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"
            ),
            capture_output=True,
            check=False,
        )
        time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
