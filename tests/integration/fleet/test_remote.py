"""The remote runners through the whole of Squall, against the real SSH fleet:
API → execution → worker → asyncssh → sshd on loopback → per-host results stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.support.fleet import Fleet
from tests.support.server import API_KEY, ROOT, Server

from .conftest import REBOOTABLE

# Host roles of the test inventory: h01..h16 on the fleet, by index.
WEB = range(1, 9)
DB = range(9, 13)
HAGROUPS = "abc"


def _host(i: int) -> str:
    return f"h{i:02d}"


def make_inventory(fleet: Fleet, path: Path) -> Path:
    """16 fleet hosts with facts, plus hosts that fail in each way there is."""
    lines = ["defaults:", f"  user: {fleet.user}", f"  key_file: {fleet.key_file}", "hosts:"]
    for i in range(1, 17):
        role = "web" if i in WEB else "db" if i in DB else "cache"
        facts = {"role": role, "hagroup": HAGROUPS[i % 3], "env": "prod" if i % 2 else "staging"}
        lines.append(
            f"  {_host(i)}: {{address: {fleet.addresses[i - 1]}, facts: {json.dumps(facts)}}}"
        )
    lines += [
        f"  dead: {{address: {fleet.unused_address()}, facts: {{role: ghost}}}}",
        f"  locked: {{address: {fleet.addresses[16]}, key_file: {fleet.other_key_file}, "
        "facts: {role: ghost}}",
        f"  spoofed: {{address: {fleet.addresses[17]}, facts: {{role: ghost}}}}",
        f"  behind: {{address: {fleet.addresses[18]}, jump: h01, facts: {{role: hidden}}}}",
        f"  rebooter: {{address: {REBOOTABLE}, facts: {{role: reboot}}}}",
        f"  fresh: {{address: {fleet.addresses[19]}, facts: {{role: new}}}}",
        "groups:",
        "  webservers: {hosts: [" + ", ".join(_host(i) for i in WEB) + "]}",
    ]
    return write(path, "\n".join(lines) + "\n")


def make_pack(packs: Path) -> None:
    pack = packs / "fleetpack"
    write(pack / "pack.yaml", "name: fleetpack\nversion: 0.1.0\ndescription: x\nauthor: t\n")
    write(
        pack / "actions" / "report.yaml",
        "name: report\nrunner_type: remote-shell-script\nentry_point: report.sh\n"
        "parameters:\n"
        "  label: {type: string, position: 0, required: true}\n"
        "  level: {type: integer, default: 3}\n",
    )
    write(
        pack / "actions" / "report.sh",
        '#!/bin/sh\nset -- "$@"\necho "label=$1 args=$* where=$(pwd)"\n',
    )


@pytest.fixture(scope="module")
def server(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("remote")
    inventory = make_inventory(fleet, base / "inventory.yaml")
    make_pack(base / "packs")
    known = fleet.known_hosts_with_mismatch([fleet.addresses[17]])  # "spoofed"
    # "fresh" is not in known_hosts at all.
    lines = known.read_text().splitlines(keepends=True)
    known.write_text("".join(x for x in lines if not x.startswith(fleet.addresses[19] + " ")))
    srv = Server(
        base / "data",
        packs_dirs=[base / "packs"],
        env={
            "SQUALL_INVENTORY": str(inventory),
            "SQUALL_SSH_KNOWN_HOSTS": str(known),
            "SQUALL_LEASE_SECONDS": "3",
        },
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def run(api: httpx.Client, server: Server, action: str, wait: float = 60, **params: Any) -> dict:
    r = api.post("/api/v1/executions", json={"action": action, "parameters": params})
    assert r.status_code == 201, r.text
    return server.wait_final(api, r.json()["id"], timeout=wait)


def hosts_of(api: httpx.Client, execution_id: str) -> dict[str, Any]:
    r = api.get(f"/api/v1/executions/{execution_id}/hosts")
    assert r.status_code == 200, r.text
    return r.json()


def test_runs_on_every_targeted_host_and_stores_each_result(
    api: httpx.Client, server: Server, fleet: Fleet
) -> None:
    done = run(api, server, "core.remote", target="role=web", cmd=fleet.identify_command)
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert sorted(result) == [_host(i) for i in WEB]
    for i in WEB:
        # Each host really ran it: the server side saw its own address.
        assert result[_host(i)]["stdout"] == fleet.addresses[i - 1]
        assert result[_host(i)]["return_code"] == 0 and result[_host(i)]["succeeded"] is True
    stored = hosts_of(api, done["id"])
    assert stored["summary"] == {"succeeded": 8, "total": 8}
    assert [h["host"] for h in stored["hosts"]] == [_host(i) for i in WEB]
    output = api.get(f"/api/v1/executions/{done['id']}/output").text
    assert f"h03: {fleet.addresses[2]}" in output
    # Job directories on the hosts are gone once the results are stored.
    assert job_dirs(fleet, done["id"]) == []


def job_dirs(fleet: Fleet, execution_id: str) -> list[str]:
    jobs = Path(os.path.expanduser(f"~{fleet.user}")) / ".squall" / "jobs"
    return [p.name for p in jobs.glob(f"{execution_id}-*")] if jobs.exists() else []


def test_failures_are_told_apart_and_fail_the_execution(
    api: httpx.Client, server: Server, fleet: Fleet
) -> None:
    bad = f"{fleet.addresses[0]}|{fleet.addresses[1]}"
    cmd = f"set -- $SSH_CONNECTION; case $3 in {bad}) echo bad >&2; exit 3;; esac; echo ok"
    done = run(api, server, "core.remote", hosts="h01,h02,h03,dead,locked,spoofed", cmd=cmd)
    assert done["status"] == "failed"
    r = done["result"]
    assert r["h01"]["return_code"] == 3 and r["h01"]["stderr"] == "bad" and r["h01"]["failed"]
    assert r["h03"]["succeeded"] and r["h03"]["stdout"] == "ok"
    assert "connection refused" in r["dead"]["error"]
    assert "refused authentication" in r["locked"]["error"]
    assert "does not match" in r["spoofed"]["error"] and "ssh-keygen" in r["spoofed"]["error"]
    summary = hosts_of(api, done["id"])["summary"]
    assert summary == {
        "succeeded": 1,
        "failed": 2,
        "unreachable": 1,
        "auth_failed": 1,
        "host_key": 1,
        "total": 6,
    }
    # A budget lets the same run succeed.
    ok = run(api, server, "core.remote", hosts="h01,h02,h03", cmd=cmd, max_failures=2)
    assert ok["status"] == "succeeded"
    ok = run(api, server, "core.remote", hosts="h01,h02,h03", cmd=cmd, fail_on_any_host=False)
    assert ok["status"] == "succeeded"


def test_a_hanging_host_is_stopped_at_the_timeout(
    api: httpx.Client, server: Server, fleet: Fleet
) -> None:
    marker = "1234.5"  # a sleep nobody else runs, to look for it afterwards
    hanging = fleet.addresses[3]
    cmd = f'set -- $SSH_CONNECTION; [ "$3" = {hanging} ] && sleep {marker}; echo fine'
    started = time.monotonic()
    done = run(api, server, "core.remote", hosts="h04,h05", cmd=cmd, timeout=2)
    assert time.monotonic() - started < 20
    assert done["status"] == "timeout"  # every failure was a timeout
    assert done["result"]["h04"]["timeout"] is True and done["result"]["h04"]["return_code"] == -9
    assert done["result"]["h05"]["stdout"] == "fine"
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", "the timed-out command still runs on the host"


def test_very_large_output_is_capped_per_host(api: httpx.Client, server: Server) -> None:
    cmd = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo tail-end"
    done = run(api, server, "core.remote", hosts="h06", cmd=cmd, max_output_bytes=10000)
    assert done["status"] == "succeeded"
    out = done["result"]["h06"]["stdout"]
    assert out.startswith("x" * 10000) and "output truncated" in out
    assert "tail-end" not in out
    assert len(out) < 11000


def test_sudo_with_a_password(api: httpx.Client, server: Server, fleet: Fleet) -> None:
    if fleet.sudo_password is None:
        pytest.skip("sudo needs the fleet to run as root")
    done = run(
        api, server, "core.remote_sudo", hosts="h07", cmd="id -u", sudo_password=fleet.sudo_password
    )
    assert done["status"] == "succeeded", done
    assert done["result"]["h07"]["stdout"] == 0  # JSON-looking output is parsed, as in st2
    # The password is masked in the stored parameters.
    assert done["parameters"]["sudo_password"] == "********"
    wrong = run(api, server, "core.remote_sudo", hosts="h07", cmd="id -u", sudo_password="nope")
    assert wrong["status"] == "failed"
    assert "sudo refused the password" in wrong["result"]["h07"]["error"]


def test_script_is_uploaded_with_its_arguments(api: httpx.Client, server: Server) -> None:
    done = run(api, server, "fleetpack.report", hosts="h08,h09", label="hello world", cwd="/tmp")
    assert done["status"] == "succeeded", done
    assert (
        done["result"]["h08"]["stdout"] == "label=--level=3 args=--level=3 hello world where=/tmp"
    )


def test_jump_host(api: httpx.Client, server: Server, fleet: Fleet) -> None:
    done = run(api, server, "core.remote", target="behind", cmd=fleet.identify_command)
    assert done["status"] == "succeeded", done
    assert done["result"]["behind"]["stdout"] == fleet.addresses[18]
    assert f"{fleet.addresses[18]}" in fleet.daemon_log(fleet.addresses[0])


def test_bad_targets_are_refused_before_anything_runs(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/executions",
        json={"action": "core.remote", "parameters": {"target": "role=web and (", "cmd": "true"}},
    )
    assert r.status_code == 400 and "position" in r.json()
    r = api.post(
        "/api/v1/executions",
        json={"action": "core.remote", "parameters": {"target": "role=nothing", "cmd": "true"}},
    )
    assert r.status_code == 400 and "matches no host" in r.json()["faultstring"]
    r = api.post(
        "/api/v1/executions",
        json={"action": "core.remote", "parameters": {"target": "@nosuch", "cmd": "true"}},
    )
    assert r.status_code == 400 and "nosuch" in r.json()["faultstring"]


def test_reboot_and_wait(api: httpx.Client, server: Server, fleet: Fleet) -> None:
    before = fleet.boot_id(REBOOTABLE)
    done = run(
        api,
        server,
        "core.reboot",
        hosts="rebooter",
        reboot_command=fleet.reboot_command,
        boot_id_command=fleet.boot_id_command,
        poll_interval=0.5,
        timeout=60,
    )
    assert done["status"] == "succeeded", done
    assert fleet.boot_id(REBOOTABLE) != before
    assert before in done["result"]["rebooter"]["stdout"]
    # A "reboot" that does nothing is caught: the boot id did not change.
    same = run(
        api,
        server,
        "core.reboot",
        hosts="rebooter",
        reboot_command="true",
        boot_id_command=fleet.boot_id_command,
        poll_interval=0.5,
        timeout=4,
    )
    assert same["status"] == "timeout"
    assert "did not come back rebooted" in same["result"]["rebooter"]["error"]


def test_reboot_through_sudo_with_a_password(
    api: httpx.Client, server: Server, fleet: Fleet
) -> None:
    if fleet.sudo_password is None:
        pytest.skip("sudo needs the fleet to run as root")
    before = fleet.boot_id(REBOOTABLE)
    done = run(
        api,
        server,
        "core.reboot",
        hosts="rebooter",
        sudo=True,
        sudo_password=fleet.sudo_password,
        # Only root reboots; sudo resets the environment ($SSH_CONNECTION).
        reboot_command='test "$(id -u)" = 0 && ' + fleet.reboot_command_for(REBOOTABLE),
        boot_id_command=fleet.boot_id_command,
        poll_interval=0.5,
        timeout=30,
    )
    assert done["status"] == "succeeded", done
    assert fleet.boot_id(REBOOTABLE) != before
    assert done["parameters"]["sudo_password"] == "********"


def _cli(server: Server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SQUALL_API_URL": server.url, "SQUALL_API_KEY": API_KEY}
    return subprocess.run(
        [sys.executable, "-m", "squall.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_inventory_facts_and_run(server: Server, fleet: Fleet) -> None:
    listed = _cli(server, "inventory", "list", "--target", "@webservers and hagroup=a")
    assert listed.returncode == 0, listed.stderr
    expected = [_host(i) for i in WEB if HAGROUPS[i % 3] == "a"]
    assert f"{len(expected)} of 22 hosts match" in listed.stderr
    for name in expected:
        assert name in listed.stdout
    bad = _cli(server, "inventory", "list", "--target", "role=web and (")
    assert bad.returncode != 0 and "^" in bad.stderr

    facts = _cli(server, "inventory", "facts", "--target", "h1*", "--packages", "openssh-server")
    assert facts.returncode == 0, facts.stderr
    assert "facts from 7 of 7 hosts" in facts.stderr
    shown = _cli(server, "inventory", "show", "h10", "--json")
    host = json.loads(shown.stdout)
    assert host["facts"]["cpus"] >= 1 and host["facts"]["kernel"]
    assert host["facts"]["packages"]["openssh-server"]
    matched = _cli(server, "inventory", "list", "--target", "cpus>=1 and role=db", "--json")
    assert [h["name"] for h in json.loads(matched.stdout)["hosts"]] == ["h10", "h11", "h12"]

    ran = _cli(server, "run", "core.remote", "target=role=db", "cmd=echo same")
    assert ran.returncode == 0, ran.stderr
    assert "h09: same" in ran.stdout
    assert "4 hosts: succeeded" in ran.stdout  # identical outputs folded
    assert "4 hosts: 4 succeeded" in ran.stderr


def test_reattaches_after_a_kill(fleet: Fleet, tmp_path: Path) -> None:
    """kill -9 Squall mid-command: after the restart it collects the commands
    still running instead of starting them again or losing them."""
    inventory = make_inventory(fleet, tmp_path / "inventory.yaml")
    env = {
        "SQUALL_INVENTORY": str(inventory),
        "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
        "SQUALL_LEASE_SECONDS": "3",
    }
    counter = f".squall-test-runs-{os.getpid()}"
    cmd = f'set -- $SSH_CONNECTION; echo run >> ~/{counter}-"$3"; sleep 4; echo finished'
    srv = Server(tmp_path / "data", env=env).start()
    try:
        with srv.client() as api:
            r = api.post(
                "/api/v1/executions",
                json={"action": "core.remote", "parameters": {"target": "role=db", "cmd": cmd}},
            )
            eid = r.json()["id"]
            deadline = time.time() + 20
            while time.time() < deadline:
                summary = hosts_of(api, eid)["summary"]
                if summary.get("running") == 4:
                    break
                time.sleep(0.1)
            time.sleep(1.0)
        srv.kill()
        srv.start()
        with srv.client() as api:
            done = srv.wait_final(api, eid, timeout=60)
            assert done["status"] == "succeeded", done
            assert {h: v["stdout"] for h, v in done["result"].items()} == dict.fromkeys(
                [_host(i) for i in DB], "finished"
            )
    finally:
        srv.stop()
    home = Path(os.path.expanduser(f"~{fleet.user}"))
    for i in DB:
        runs = (home / f"{counter}-{fleet.addresses[i - 1]}").read_text().splitlines()
        assert runs == ["run"], f"{_host(i)} ran the command {len(runs)} times"
        (home / f"{counter}-{fleet.addresses[i - 1]}").unlink()
    assert job_dirs(fleet, eid) == []


@pytest.mark.st2client
def test_the_st2_cli_runs_remote_commands(server: Server, fleet: Fleet, tmp_path: Path) -> None:
    from tests.integration.st2.conftest import st2_binary, st2_env

    env = st2_env(server, tmp_path)
    ran = subprocess.run(
        [
            st2_binary(),
            "run",
            "core.remote",
            "hosts=h10,h11",
            f"cmd={fleet.identify_command}",
            "-j",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert shown["status"] == "succeeded"
    assert shown["result"]["h10"]["stdout"] == fleet.addresses[9]
    assert shown["result"]["h11"]["succeeded"] is True


def test_unknown_host_keys_need_an_explicit_choice(api: httpx.Client, server: Server) -> None:
    refused = run(api, server, "core.remote", hosts="fresh", cmd="true")
    assert refused["status"] == "failed"
    assert "has no key in" in refused["result"]["fresh"]["error"]
    assert "accept-new" in refused["result"]["fresh"]["error"]
    trusted = run(
        api, server, "core.remote", hosts="fresh", cmd="true", host_key_check="accept-new"
    )
    assert trusted["status"] == "succeeded", trusted
    # Recorded: from now on the strict default accepts it.
    again = run(api, server, "core.remote", hosts="fresh", cmd="true")
    assert again["status"] == "succeeded", again


def test_cancel_stops_the_remote_commands(api: httpx.Client, server: Server) -> None:
    marker = "4321.5"
    r = api.post(
        "/api/v1/executions",
        json={
            "action": "core.remote",
            "parameters": {"hosts": "h12,h13", "cmd": f"sleep {marker}"},
        },
    )
    eid = r.json()["id"]
    deadline = time.time() + 20
    while time.time() < deadline:
        if hosts_of(api, eid)["summary"].get("running") == 2:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    assert api.delete(f"/api/v1/executions/{eid}").status_code == 200
    done = server.wait_final(api, eid, timeout=30)
    assert done["status"] == "canceled"
    assert hosts_of(api, eid)["summary"] == {"canceled": 2, "total": 2}
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", "canceled commands still run on the hosts"
