"""The SSH fleet fixture itself, checked with asyncssh directly."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from tests.integration.fleet.conftest import REBOOTABLE
from tests.support.fleet import Fleet


def connect(fleet: Fleet, address: str, **kwargs: Any) -> Any:
    """``asyncssh.connect`` to a fleet host (awaitable, or ``async with``)."""
    options: dict[str, Any] = {
        "port": fleet.port,
        "username": fleet.user,
        "client_keys": [str(fleet.key_file)],
        "known_hosts": str(fleet.known_hosts),
        "agent_path": None,
        "connect_timeout": 20,
    }
    options.update(kwargs)
    return asyncssh.connect(address, **options)


async def run(fleet: Fleet, address: str, command: str, **kwargs: Any) -> str:
    async with connect(fleet, address, **kwargs) as conn:
        result = await conn.run(command, check=True)
    return str(result.stdout)


def test_every_address_is_a_host_of_its_own(fleet: Fleet) -> None:
    async def scenario() -> list[str]:
        return await asyncio.gather(
            *(run(fleet, a, fleet.identify_command) for a in fleet.addresses)
        )

    assert [out.strip() for out in asyncio.run(scenario())] == fleet.addresses
    assert len(fleet.addresses) == 24
    assert len(set(fleet.daemon_pids())) == 3  # 16 + 7 addresses, and REBOOTABLE alone


def test_shell_startup_is_cheap(fleet: Fleet) -> None:
    """The fleet user's shell reads no rc file: a command costs the server a few
    ms of CPU beyond the SSH handshake (root's pyenv set-up would add ~140 ms)."""

    async def scenario() -> tuple[float, float]:
        async with connect(fleet, fleet.addresses[0]) as conn:
            await conn.run("true", check=True)  # the handshake is done now
            before = fleet.server_cpu_seconds()
            for _ in range(5):
                await conn.run("true", check=True)
            after = fleet.server_cpu_seconds()
            home = await conn.run("ls -A ~", check=True)
        assert not {".bashrc", ".profile", ".bash_profile"} & set(str(home.stdout).split())
        return before, after

    before, after = asyncio.run(scenario())
    assert (after - before) / 5 < 0.05


def test_a_key_that_is_not_authorized_is_refused(fleet: Fleet) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(run(fleet, fleet.addresses[1], "true", client_keys=[str(fleet.other_key_file)]))


def test_a_wrong_host_key_is_refused(fleet: Fleet) -> None:
    bad, good = fleet.addresses[2], fleet.addresses[3]
    known_hosts = str(fleet.known_hosts_with_mismatch([bad]))
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(run(fleet, bad, "true", known_hosts=known_hosts))
    assert asyncio.run(run(fleet, good, "echo ok", known_hosts=known_hosts)) == "ok\n"


def test_an_unused_address_refuses_connections(fleet: Fleet) -> None:
    with pytest.raises(OSError):
        asyncio.run(run(fleet, fleet.unused_address(), "true"))


def test_reboot_command_changes_the_boot_id_and_the_host_comes_back(fleet: Fleet) -> None:
    async def scenario() -> None:
        before = (await run(fleet, REBOOTABLE, fleet.boot_id_command)).strip()
        assert before == fleet.boot_id(REBOOTABLE)
        async with connect(fleet, REBOOTABLE) as conn:
            # The command returns at once; the connection drops a moment later.
            with contextlib.suppress(asyncssh.Error, OSError):
                await conn.run(fleet.reboot_command, check=True)
            await asyncio.wait_for(conn.wait_closed(), 10)
        with pytest.raises(OSError):
            await run(fleet, REBOOTABLE, "true")  # down
        deadline = time.monotonic() + 30
        while True:
            try:
                after = (await run(fleet, REBOOTABLE, fleet.boot_id_command)).strip()
                break
            except OSError:
                assert time.monotonic() < deadline, "the host did not come back"
                await asyncio.sleep(0.2)
        assert after != before
        assert after == fleet.boot_id(REBOOTABLE)
        # Its neighbours were not rebooted.
        other = fleet.addresses[0]
        assert (await run(fleet, other, fleet.boot_id_command)).strip() == fleet.boot_id(other)

    asyncio.run(scenario())


def test_reboot_from_the_test_drops_sessions(fleet: Fleet) -> None:
    async def scenario() -> None:
        async with connect(fleet, REBOOTABLE) as conn:
            process = await conn.create_process("sleep 60")
            before = fleet.boot_id(REBOOTABLE)
            await asyncio.to_thread(fleet.reboot, REBOOTABLE, 0.5)
            assert fleet.boot_id(REBOOTABLE) != before
            await asyncio.wait_for(conn.wait_closed(), 10)
            process.close()
        with pytest.raises(OSError):
            await run(fleet, REBOOTABLE, "true")
        await asyncio.to_thread(fleet.wait_until_up, REBOOTABLE)
        assert (await run(fleet, REBOOTABLE, fleet.identify_command)).strip() == REBOOTABLE

    asyncio.run(scenario())


def test_sudo_asks_for_the_password(fleet: Fleet) -> None:
    password = fleet.sudo_password
    if password is None:
        pytest.skip("the fleet has sudo only when run as root")

    async def scenario() -> None:
        async with connect(fleet, fleet.addresses[4]) as conn:
            ok = await conn.run("sudo -S -p '' id -u", input=password + "\n")
            assert (ok.exit_status, ok.stdout) == (0, "0\n"), ok.stderr
            # Asked every time, and refused without it.
            refused = await conn.run("sudo -n id -u")
            assert refused.exit_status != 0
            wrong = await conn.run("sudo -S -p '' id -u", input="not-the-password\n")
            assert wrong.exit_status != 0

    asyncio.run(scenario())


def test_jump_host_forward_shows_in_its_log(fleet: Fleet) -> None:
    jump, target = fleet.addresses[5], fleet.addresses[20]

    async def scenario() -> str:
        tunnel = await connect(fleet, jump)
        try:
            return await run(fleet, target, fleet.identify_command, tunnel=tunnel)
        finally:
            tunnel.close()
            await tunnel.wait_closed()

    assert asyncio.run(scenario()).strip() == target
    log = fleet.daemon_log(jump)
    assert re.search(rf"direct-tcpip.*{re.escape(target)}|target {re.escape(target)} port", log)


def test_inventories(fleet: Fleet, tmp_path: Path) -> None:
    path = fleet.inventory_yaml(
        tmp_path / "fleet.yaml", facts=lambda i, a: {"role": "web" if i % 2 else "db"}
    )
    hosts = yaml.safe_load(path.read_text())["hosts"]
    assert list(hosts)[:2] == ["h0001", "h0002"]
    assert hosts["h0001"] == {
        "address": "127.0.1.1",
        "port": fleet.port,
        "user": fleet.user,
        "key_file": str(fleet.key_file),
        "facts": {"role": "db"},
    }
    ini = fleet.ansible_ini(tmp_path / "fleet.ini").read_text().splitlines()
    assert ini[1].startswith("h0001 ansible_host=127.0.1.1 ")
    assert sum("ansible_host=" in line for line in ini) == len(fleet.addresses)
