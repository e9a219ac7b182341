"""The inventory through the API and the CLI: every source format at once,
problems reported with file and line, re-read on change, targeting errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.support.server import API_KEY, ROOT, Server

YAML = """\
defaults:
  user: deploy
hosts:
  web-[01:04]:
    facts: {role: web, cpus: 8}
  db-1: {address: 10.0.2.1, port: 2222, facts: {role: db, cpus: 16}}
  db-2: {address: 10.0.2.2, password: hunter2, facts: {role: db, cpus: 4}}
groups:
  webservers: {hosts: ["web-[01:04]"], vars: {env: prod}}
"""

INI = """\
[cache]
cache[1:3].example.com ansible_user=ops hagroup=c
[cache:vars]
env=staging
[everything:children]
cache
"""

SCRIPT = """\
#!{python}
import json, sys
if sys.argv[1:] == ["--list"]:
    print(json.dumps({{
        "edge": {{"hosts": ["edge-1", "edge-2"], "vars": {{"role": "edge"}}}},
        "_meta": {{"hostvars": {{"edge-1": {{"ansible_host": "192.0.2.10", "dc": "par1"}}}}}},
    }}))
else:
    print("{{}}")
"""


@pytest.fixture(scope="module")
def inventory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inventory")
    write(d / "10-hosts.yaml", YAML)
    write(d / "20-ansible.ini", INI)
    script = d / "30-dynamic.py"
    script.write_text(SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def server(inventory_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("data"), env={"SQUALL_INVENTORY": str(inventory_dir)}
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def names(api: httpx.Client, target: str | None = None) -> list[str]:
    params = {"target": target} if target else {}
    r = api.get("/api/v1/inventory/hosts", params=params)
    assert r.status_code == 200, r.text
    return [h["name"] for h in r.json()["hosts"]]


def test_every_source_format_loads(api: httpx.Client) -> None:
    assert names(api) == [
        "web-01",
        "web-02",
        "web-03",
        "web-04",
        "db-1",
        "db-2",
        "cache1.example.com",
        "cache2.example.com",
        "cache3.example.com",
        "edge-1",
        "edge-2",
    ]
    db1 = api.get("/api/v1/inventory/hosts/db-1").json()
    assert (db1["address"], db1["port"], db1["user"]) == ("10.0.2.1", 2222, "deploy")
    cache = api.get("/api/v1/inventory/hosts/cache2.example.com").json()
    assert cache["user"] == "ops" and cache["facts"]["env"] == "staging"
    edge = api.get("/api/v1/inventory/hosts/edge-1").json()
    assert edge["address"] == "192.0.2.10" and edge["facts"] == {"role": "edge", "dc": "par1"}
    # Passwords never leave the server.
    assert api.get("/api/v1/inventory/hosts/db-2").json()["password"] == "********"
    assert "hunter2" not in api.get("/api/v1/inventory/hosts").text
    groups = {g["name"]: g for g in api.get("/api/v1/inventory/groups").json()}
    assert groups["everything"]["hosts"] == [f"cache{i}.example.com" for i in (1, 2, 3)]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("role=db", ["db-1", "db-2"]),
        ("cpus>=8 and not @webservers", ["db-1"]),
        ("@webservers and web-0[12]", ["web-01", "web-02"]),
        (
            "env=staging or role=edge",
            [f"cache{i}.example.com" for i in (1, 2, 3)] + ["edge-1", "edge-2"],
        ),
        ("G@role:ed* or ~^db-2$", ["db-2", "edge-1", "edge-2"]),
        ("S@10.0.2.0/24", ["db-1", "db-2"]),
    ],
)
def test_targeting(api: httpx.Client, target: str, expected: list[str]) -> None:
    assert names(api, target) == expected


def test_bad_targets_answer_400_with_the_position(api: httpx.Client) -> None:
    r = api.get("/api/v1/inventory/hosts", params={"target": "role=web and (env=prod"})
    assert r.status_code == 400
    assert r.json()["position"] == 22 and "^" in r.json()["faultstring"]
    r = api.get("/api/v1/inventory/hosts", params={"target": "@nosuch"})
    assert r.status_code == 400 and "nosuch" in r.json()["faultstring"]
    r = api.get("/api/v1/inventory/hosts", params={"target": "hagrop=c"})
    assert r.status_code == 400 and "unknown fact 'hagrop'" in r.json()["faultstring"]
    r = api.get("/api/v1/inventory/hosts", params={"target": "role=nothing"})
    assert r.status_code == 400 and "matches no host (11 hosts" in r.json()["faultstring"]


def test_changes_are_picked_up_and_problems_named(
    api: httpx.Client, server: Server, inventory_dir: Path
) -> None:
    extra = inventory_dir / "40-more.yaml"
    write(extra, "hosts:\n  late-1: {address: 10.9.9.9, facts: {role: late}}\n")
    try:
        deadline = time.time() + 10
        while "late-1" not in names(api) and time.time() < deadline:
            time.sleep(0.3)
        assert "late-1" in names(api)
        # A broken file: the problem names the file and line; the rest still loads.
        write(extra, "hosts:\n  late-1: {address: 10.9.9.9\n  late-2: x\n")
        deadline = time.time() + 10
        while time.time() < deadline:
            body = api.get("/api/v1/inventory/hosts").json()
            if "late-1" not in [h["name"] for h in body["hosts"]]:
                break
            time.sleep(0.3)
        assert any("40-more.yaml:" in p for p in body["problems"]), body["problems"]
        assert body["count"] == 11
    finally:
        extra.unlink()


def test_cli_lists_with_the_count(server: Server) -> None:
    env = {**os.environ, "SQUALL_API_URL": server.url, "SQUALL_API_KEY": API_KEY}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "squall.cli.main", "inventory", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = cli("list", "--target", "role=db")
    assert shown.returncode == 0, shown.stderr
    assert "db-1" in shown.stdout and "10.0.2.1:2222" in shown.stdout
    assert "2 of 11 hosts match 'role=db'" in shown.stderr
    as_json = json.loads(cli("list", "--target", "@everything", "--json").stdout)
    assert as_json["count"] == 3
    bad = cli("list", "--target", "role=web and (")
    assert bad.returncode != 0 and "position" in bad.stderr and "^" in bad.stderr
