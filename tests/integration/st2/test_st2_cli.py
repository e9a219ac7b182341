"""The real StackStorm CLI (PyPI st2client) against a live Squall server."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.st2.conftest import St2, st2_binary, st2_env, st2run
from tests.support.server import PASSWORD, Server

pytestmark = pytest.mark.st2client


@pytest.fixture(scope="module")
def st2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[St2]:
    binary = st2_binary()
    srv = Server(tmp_path_factory.mktemp("st2data")).start()
    env = st2_env(srv, tmp_path_factory.mktemp("st2home"))
    yield srv, env, binary
    srv.stop()


def test_auth_token_from_user_and_password(st2) -> None:
    _srv, env, _ = st2
    no_key = {k: v for k, v in env.items() if k != "ST2_API_KEY"}
    done = subprocess.run(
        [st2[2], "auth", "admin", "-p", PASSWORD, "-t"],
        env=no_key,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    token = done.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    listed = subprocess.run(
        [st2[2], "action", "list", "-p", "core"],
        env={**no_key, "ST2_AUTH_TOKEN": token},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0 and "core.local" in listed.stdout
    bad = subprocess.run(
        [st2[2], "auth", "admin", "-p", "wrong"],
        env=no_key,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0


def test_run_and_execution_commands(st2) -> None:
    done = st2run(st2, "run", "core.local", "cmd=echo hello-from-st2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hello-from-st2" in done.stdout
    assert "succeeded" in done.stdout
    execution_id = re.search(r"id: ([0-9a-f]{24})", done.stdout).group(1)

    got = st2run(st2, "execution", "get", execution_id, "-j")
    assert got.returncode == 0, got.stdout + got.stderr
    body = json.loads(got.stdout)
    assert body["status"] == "succeeded" and body["result"]["stdout"] == "hello-from-st2"

    listed = st2run(st2, "execution", "list", "-n", "5")
    assert listed.returncode == 0 and execution_id in listed.stdout

    rerun = st2run(st2, "execution", "re-run", execution_id, "cmd=echo again")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "again" in rerun.stdout

    failed = st2run(st2, "run", "core.local", "cmd=exit 3")
    assert failed.returncode == 1
    assert "failed" in failed.stdout

    bad = st2run(st2, "run", "core.local", "cmd=true", "timeout=notanumber")
    assert bad.returncode != 0

    asynchronous = st2run(st2, "run", "core.noop", "-a")
    assert asynchronous.returncode == 0 and re.search(r"[0-9a-f]{24}", asynchronous.stdout)


def test_cancel_and_tail(st2) -> None:
    srv, _env, _ = st2
    with srv.client() as client:
        ex = client.post(
            "/api/v1/executions",
            json={
                "action": "core.local",
                "parameters": {
                    "cmd": "sleep 2.5; for i in 1 2 3; do echo tick-$i; sleep 0.3; done"
                },
            },
        ).json()
        tailed = st2run(st2, "execution", "tail", ex["id"], timeout=30)
        assert tailed.returncode == 0, tailed.stdout + tailed.stderr
        assert "tick-1" in tailed.stdout and "tick-3" in tailed.stdout
        assert "completed" in tailed.stdout

        long = client.post(
            "/api/v1/executions", json={"action": "core.local", "parameters": {"cmd": "sleep 30"}}
        ).json()
        deadline = time.time() + 10
        while client.get(f"/api/v1/executions/{long['id']}").json()["status"] != "running":
            assert time.time() < deadline
            time.sleep(0.05)
        canceled = st2run(st2, "execution", "cancel", long["id"])
        assert canceled.returncode == 0, canceled.stdout + canceled.stderr
        assert srv.wait_final(client, long["id"])["status"] == "canceled"


def test_action_runner_and_pack_commands(st2) -> None:
    listed = st2run(st2, "action", "list")
    assert listed.returncode == 0 and "core.local" in listed.stdout and "core.http" in listed.stdout
    got = st2run(st2, "action", "get", "core.local", "-j")
    assert got.returncode == 0 and json.loads(got.stdout)["runner_type"] == "local-shell-cmd"
    runners = st2run(st2, "runner", "list")
    assert (
        runners.returncode == 0
        and "local-shell-cmd" in runners.stdout
        and "python-script" in runners.stdout
    )
    packs = st2run(st2, "pack", "list")
    assert packs.returncode == 0 and "core" in packs.stdout
    pack = st2run(st2, "pack", "get", "core", "-j")
    assert pack.returncode == 0 and json.loads(pack.stdout)["name"] == "core"
    missing = st2run(st2, "action", "get", "no.such")
    assert missing.returncode != 0


def test_key_commands(st2) -> None:
    assert st2run(st2, "key", "set", "region", "eu-west").returncode == 0
    got = st2run(st2, "key", "get", "region", "-j")
    assert got.returncode == 0 and json.loads(got.stdout)["value"] == "eu-west"
    assert st2run(st2, "key", "set", "dbpass", "hunter2", "--encrypt").returncode == 0
    hidden = st2run(st2, "key", "get", "dbpass", "-j")
    assert json.loads(hidden.stdout)["value"] != "hunter2"
    shown = st2run(st2, "key", "get", "dbpass", "--decrypt", "-j")
    assert json.loads(shown.stdout)["value"] == "hunter2"
    listed = st2run(st2, "key", "list")
    assert listed.returncode == 0 and "region" in listed.stdout and "dbpass" in listed.stdout
    assert st2run(st2, "key", "delete", "region").returncode == 0
    assert st2run(st2, "key", "get", "region").returncode != 0


def test_apikey_commands(st2) -> None:
    srv, _, _ = st2
    created = st2run(st2, "apikey", "create", "-k")
    assert created.returncode == 0, created.stdout + created.stderr
    key = created.stdout.strip()
    assert httpx.get(f"{srv.url}/api/v1/packs", headers={"St2-Api-Key": key}).status_code == 200
    listed = st2run(st2, "apikey", "list")
    assert listed.returncode == 0 and "admin" in listed.stdout
