"""The server as a process: first start, the data directory, crashes, GC."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server


def test_first_start_creates_admin_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQUALL_")}
    srv = Server(tmp_path / "data")
    srv.env = {**env, "SQUALL_DATA_DIR": str(srv.data_dir)}  # nothing chosen: generated
    srv.start()
    try:
        creds_file = srv.data_dir / "credentials.json"
        mode = stat.S_IMODE(creds_file.stat().st_mode)
        assert mode == 0o600
        creds = json.loads(creds_file.read_text())
        assert creds["username"] == "admin" and len(creds["api_key"]) >= 32
        assert creds["password"] in srv.log.read_text()  # printed once
        r = httpx.get(f"{srv.url}/api/v1/packs", headers={"St2-Api-Key": creds["api_key"]})
        assert r.status_code == 200
        # a second server on the same data directory refuses to start
        second = subprocess.run(
            [sys.executable, "-m", "squall", "up", "--port", "1"],
            env=srv.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        assert "already running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        srv.stop()
    srv.start()  # restart: no new credentials, the same key works
    try:
        assert srv.log.read_text().count("First start") == 1
        r = httpx.get(f"{srv.url}/api/v1/packs", headers={"St2-Api-Key": creds["api_key"]})
        assert r.status_code == 200
    finally:
        srv.stop()


def _processes_running(cmdline: str) -> bool:
    """Whether a process whose command line contains ``cmdline`` (NUL-separated
    arguments) exists."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if cmdline.encode() in (proc / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def _idempotent_pack(packs: Path) -> None:
    pack = packs / "idem"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "name: idem\ndescription: safe to repeat\nversion: 1.0.0\nauthor: tests\n"
    )
    (pack / "actions" / "sync.yaml").write_text(
        textwrap.dedent("""
        name: sync
        runner_type: local-shell-cmd
        idempotent: true
        parameters:
          cmd:
            default: "sleep 1.5; echo synced"
    """)
    )


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    _idempotent_pack(tmp_path / "packs")
    srv = Server(tmp_path / "data", packs_dirs=[tmp_path / "packs"]).start()
    with srv.client() as c:
        running = c.post(
            "/api/v1/executions", json={"action": "core.local", "parameters": {"cmd": "sleep 21.5"}}
        ).json()
        deadline = time.time() + 10
        while c.get(f"/api/v1/executions/{running['id']}").json()["status"] != "running":
            assert time.time() < deadline
            time.sleep(0.05)
        again = c.post("/api/v1/executions", json={"action": "idem.sync"}).json()
        while c.get(f"/api/v1/executions/{again['id']}").json()["status"] != "running":
            assert time.time() < deadline
            time.sleep(0.05)
        waiting = [
            c.post(
                "/api/v1/executions",
                json={"action": "core.local", "delay": 1500, "parameters": {"cmd": "echo later"}},
            ).json()["id"]
            for _ in range(5)
        ]
    time.sleep(0.5)  # the worker records the processes it started every 0.1 s
    assert _processes_running("sleep\x0021.5")
    srv.kill()
    assert _processes_running("sleep\x0021.5")  # the action outlived the server...
    srv.start()
    with srv.client() as c:
        crashed = srv.wait_final(c, running["id"])
        # ...until the restarted server found its claim abandoned and stopped it
        deadline = time.time() + 5
        while _processes_running("sleep\x0021.5"):
            assert time.time() < deadline, "the abandoned action's processes are still running"
            time.sleep(0.1)
        assert crashed["status"] == "abandoned"
        assert "not run again" in crashed["result"]["error"]
        rerun = srv.wait_final(c, again["id"])  # declared idempotent: run again, to the end
        assert rerun["status"] == "succeeded" and rerun["result"]["stdout"] == "synced"
        for eid in waiting:
            done = srv.wait_final(c, eid)
            assert done["status"] == "succeeded" and done["result"]["stdout"] == "later"
    srv.stop()


def test_garbage_collection_removes_old_executions(tmp_path: Path) -> None:
    srv = Server(
        tmp_path / "data",
        env={"SQUALL_GC_INTERVAL_SECONDS": "0.5", "SQUALL_GC_EXECUTIONS_TTL_DAYS": "0.00002"},
    ).start()
    try:
        with srv.client() as c:
            eid = c.post("/api/v1/executions", json={"action": "core.noop"}).json()["id"]
            srv.wait_final(c, eid)
            deadline = time.time() + 15
            while c.get(f"/api/v1/executions/{eid}").status_code == 200:
                assert time.time() < deadline, "old execution was not collected"
                time.sleep(0.2)
            assert c.get(f"/api/v1/executions/{eid}").status_code == 404
    finally:
        srv.stop()


def _wheel(dest: Path) -> Path:
    """A minimal wheel of a library 'squalltestlib', made here so no index is needed."""
    path = dest / "squalltestlib-1.0-py3-none-any.whl"
    files = {
        "squalltestlib/__init__.py": "def shout(s):\n    return s.upper() + '!'\n",
        "squalltestlib-1.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: squalltestlib\nVersion: 1.0\n"
        ),
        "squalltestlib-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "squalltestlib-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("squalltestlib-1.0.dist-info/RECORD", record)
    return path


def test_pack_install_builds_a_virtualenv_with_requirements(tmp_path: Path) -> None:
    src = tmp_path / "src" / "shouter"
    (src / "actions").mkdir(parents=True)
    wheel = _wheel(tmp_path)
    (src / "pack.yaml").write_text(
        textwrap.dedent("""
        name: shouter
        description: uses a library from requirements.txt
        version: 1.0.0
        author: tests
    """)
    )
    (src / "requirements.txt").write_text(f"{wheel}\n")
    (src / "actions" / "shout.yaml").write_text(
        textwrap.dedent("""
        name: shout
        runner_type: python-script
        entry_point: shout.py
        parameters:
          text:
            type: string
            required: true
    """)
    )
    (src / "actions" / "shout.py").write_text(
        textwrap.dedent("""
        import sys
        from st2common.runners.base_action import Action
        import squalltestlib

        class Shout(Action):
            def run(self, text):
                return {"said": squalltestlib.shout(text), "python": sys.executable}
    """)
    )
    srv = Server(tmp_path / "data").start()
    try:
        with srv.client() as c:
            r = c.post("/api/v1/packs/install", json={"packs": [str(src)]}, timeout=300)
            assert r.status_code == 200, r.text
            assert r.json()["installed"] == ["shouter"] and not r.json()["errors"]
            eid = c.post(
                "/api/v1/executions", json={"action": "shouter.shout", "parameters": {"text": "hi"}}
            ).json()["id"]
            done = srv.wait_final(c, eid)
            assert done["status"] == "succeeded", done["result"]
            assert done["result"]["result"]["said"] == "HI!"
            assert "virtualenvs/shouter" in done["result"]["result"]["python"]
            bad = c.post("/api/v1/packs/install", json={"packs": [str(tmp_path / "nope")]})
            assert bad.status_code == 400

            # the same pack from a git repository, by URL
            repo = tmp_path / "repo"
            shutil.copytree(src, repo)
            meta = (src / "pack.yaml").read_text().replace("version: 1.0.0", "version: 1.1.0")
            (repo / "pack.yaml").write_text(meta)
            git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
            for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "pack"]):
                subprocess.run([*git, *args], cwd=repo, check=True)
            r = c.post("/api/v1/packs/install", json={"packs": [f"file://{repo}"]}, timeout=300)
            assert r.status_code == 200, r.text
            assert c.get("/api/v1/packs/shouter").json()["version"] == "1.1.0"
            missing = c.post("/api/v1/packs/install", json={"packs": ["file:///no/such/repo"]})
            assert missing.status_code == 400 and "could not clone" in missing.json()["faultstring"]

            # a pack deleted from disk is unregistered by the next full registration
            shutil.rmtree(srv.data_dir / "packs" / "shouter")
            r = c.post("/api/v1/packs/register", json={})
            assert r.json()["removed"] == ["shouter"]
            assert c.get("/api/v1/packs/shouter").status_code == 404
            assert c.get("/api/v1/actions/shouter.shout").status_code == 404
    finally:
        srv.stop()


@pytest.mark.postgres
def test_server_runs_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", database_url=pg_url).start()
    try:
        with srv.client() as c:
            eid = c.post(
                "/api/v1/executions",
                json={"action": "core.local", "parameters": {"cmd": "echo pg"}},
            ).json()["id"]
            assert srv.wait_final(c, eid)["result"]["stdout"] == "pg"
    finally:
        srv.stop()
