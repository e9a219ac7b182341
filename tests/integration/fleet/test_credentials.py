"""Every kind of credential an inventory host can have, against real sshd:
a password, an OpenSSH certificate, an ssh-agent, a passphrase-protected key
given inline. Through :class:`~squall.runners.ssh.Connector`, plus one trip
from an inventory file to a login."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.core.inventory_sources import parse_yaml
from squall.runners.remote import resolve_endpoints
from squall.runners.ssh import Connector, Endpoint, SshFailure, SshOptions
from tests.support.fleet import Fleet

# Addresses of the session's fleet that these tests use (not its rebootable one).
PASSWORD_HOST, CERT_HOST, AGENT_HOST, PASSPHRASE_HOST, INVENTORY_HOST = range(8, 13)


@pytest.fixture(autouse=True)
def no_default_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Only the credentials a test gives may reach the server.

    Given no key, asyncssh offers the running user's ~/.ssh/id_* keys (and reads
    ~/.ssh/config) and, unless told not to, the keys of the agent SSH_AUTH_SOCK
    names. A test passing thanks to one of those would prove nothing, so HOME
    is an empty directory and no agent is set. (The fleet authorizes its own
    key only, so a stray default key would be refused anyway; the empty HOME
    makes that independent of the machine.) Returns the new HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def endpoint(fleet: Fleet, index: int, **credentials: Any) -> Endpoint:
    address = fleet.addresses[index]
    return Endpoint(name=address, address=address, port=fleet.port, user=fleet.user, **credentials)


async def _whoami(fleet: Fleet, ep: Endpoint) -> str:
    connector = Connector(SshOptions(known_hosts=str(fleet.known_hosts)))
    try:
        conn = await connector.connect(ep)
        result = await conn.run("id -un", check=True)
        return str(result.stdout).strip()
    finally:
        await connector.close()


def login(fleet: Fleet, ep: Endpoint) -> str:
    """Logs in and returns the remote user's name (``id -un``)."""
    return asyncio.run(_whoami(fleet, ep))


def refused(fleet: Fleet, ep: Endpoint) -> SshFailure:
    with pytest.raises(SshFailure) as info:
        login(fleet, ep)
    assert info.value.kind == "auth_failed", info.value.message
    return info.value


def accepted_since(fleet: Fleet, index: int, offset: int) -> str:
    """The daemon log's "Accepted ..." lines written after ``offset``."""
    log = fleet.daemon_log(fleet.addresses[index])[offset:]
    return "\n".join(line for line in log.splitlines() if "Accepted " in line)


def log_size(fleet: Fleet, index: int) -> int:
    return len(fleet.daemon_log(fleet.addresses[index]))


def test_without_credentials_the_login_is_refused(fleet: Fleet) -> None:
    """The baseline of every test here: nothing in HOME, no agent, no way in."""
    refused(fleet, endpoint(fleet, PASSWORD_HOST))
    refused(fleet, endpoint(fleet, PASSWORD_HOST, agent=True))


# -- password ------------------------------------------------------------------------------


def test_password(fleet: Fleet) -> None:
    password = fleet.sudo_password
    if password is None:
        pytest.skip("the fleet user has a password only when the fleet runs as root")
    start = log_size(fleet, PASSWORD_HOST)
    assert login(fleet, endpoint(fleet, PASSWORD_HOST, password=password)) == fleet.user
    assert f"Accepted password for {fleet.user}" in accepted_since(fleet, PASSWORD_HOST, start)

    failure = refused(fleet, endpoint(fleet, PASSWORD_HOST, password="not-the-password"))
    assert f"refused authentication as {fleet.user}" in failure.message
    assert "not-the-password" not in failure.message


def test_password_after_a_key_that_is_refused(fleet: Fleet) -> None:
    """Both given: the key is offered first, then the password."""
    password = fleet.sudo_password
    if password is None:
        pytest.skip("the fleet user has a password only when the fleet runs as root")
    start = log_size(fleet, PASSWORD_HOST)
    ep = endpoint(fleet, PASSWORD_HOST, key_file=str(fleet.other_key_file), password=password)
    assert login(fleet, ep) == fleet.user
    assert "Accepted password" in accepted_since(fleet, PASSWORD_HOST, start)

    start = log_size(fleet, PASSWORD_HOST)
    ep = endpoint(fleet, PASSWORD_HOST, key_file=str(fleet.key_file), password="wrong")
    assert login(fleet, ep) == fleet.user
    assert "Accepted publickey" in accepted_since(fleet, PASSWORD_HOST, start)


# -- certificate ---------------------------------------------------------------------------


def test_certificate(fleet: Fleet) -> None:
    # The key alone is not authorized ...
    failure = refused(fleet, endpoint(fleet, CERT_HOST, key_file=str(fleet.cert_key_file)))
    assert f"refused authentication as {fleet.user}" in failure.message
    # ... its certificate from the fleet's user CA lets it in.
    start = log_size(fleet, CERT_HOST)
    ep = endpoint(
        fleet,
        CERT_HOST,
        key_file=str(fleet.cert_key_file),
        certificate=str(fleet.certificate_file),
    )
    assert login(fleet, ep) == fleet.user
    accepted = accepted_since(fleet, CERT_HOST, start)
    assert "Accepted publickey" in accepted
    assert "ED25519-CERT" in accepted and "ID squall-test" in accepted


def test_certificate_for_another_key_is_a_clear_failure(fleet: Fleet) -> None:
    ep = endpoint(
        fleet,
        CERT_HOST,
        key_file=str(fleet.other_key_file),
        certificate=str(fleet.certificate_file),
    )
    failure = refused(fleet, ep)
    assert failure.message == (
        f"certificate {fleet.certificate_file} is not for {fleet.other_key_file}"
    )
    missing = endpoint(
        fleet, CERT_HOST, key_file=str(fleet.cert_key_file), certificate="/nonexistent-cert.pub"
    )
    assert "cannot load certificate /nonexistent-cert.pub" in refused(fleet, missing).message


def test_certificate_without_key_file_goes_with_the_default_key(
    fleet: Fleet, no_default_credentials: Path
) -> None:
    """As OpenSSH's CertificateFile: the key it is for is one of ~/.ssh/id_*."""
    ssh_dir = no_default_credentials / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    shutil.copy(fleet.cert_key_file, ssh_dir / "id_ed25519")
    refused(fleet, endpoint(fleet, CERT_HOST, agent=False))  # not authorized alone
    ep = endpoint(fleet, CERT_HOST, agent=False, certificate=str(fleet.certificate_file))
    assert login(fleet, ep) == fleet.user


# -- ssh-agent -----------------------------------------------------------------------------


@pytest.fixture
def agent_socket(fleet: Fleet, tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent (in the foreground, a child of this test) holding the
    fleet's key; its socket's path."""
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("ssh-agent is not installed (apt-get install openssh-client)")
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert agent.poll() is None, f"ssh-agent ended: {agent.communicate()[1]!r}"
            assert time.monotonic() < deadline, "ssh-agent did not make its socket"
            time.sleep(0.01)
        subprocess.run(
            ["ssh-add", "-q", str(fleet.key_file)],
            env={"SSH_AUTH_SOCK": str(socket), "PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
        yield socket
    finally:
        agent.terminate()
        agent.communicate(timeout=10)


def test_agent(fleet: Fleet, agent_socket: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent_socket))
    # No key_file: the only key on offer is the agent's (HOME is empty).
    start = log_size(fleet, AGENT_HOST)
    assert login(fleet, endpoint(fleet, AGENT_HOST, agent=True)) == fleet.user
    assert "Accepted publickey" in accepted_since(fleet, AGENT_HOST, start)

    failure = refused(fleet, endpoint(fleet, AGENT_HOST, agent=False))
    assert f"refused authentication as {fleet.user}" in failure.message


# -- passphrase-protected key --------------------------------------------------------------


@pytest.fixture
def encrypted_key(fleet: Fleet, tmp_path: Path) -> Path:
    """The fleet's (authorized) key, encrypted by ssh-keygen with the passphrase "secret"."""
    path = tmp_path / "encrypted_key"
    shutil.copy(fleet.key_file, path)
    path.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", "secret", "-f", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )
    return path


def test_passphrase_protected_key_given_inline(fleet: Fleet, encrypted_key: Path) -> None:
    material = encrypted_key.read_text()
    ep = endpoint(fleet, PASSPHRASE_HOST, agent=False, key_data=material, passphrase="secret")
    assert login(fleet, ep) == fleet.user

    wrong = endpoint(fleet, PASSPHRASE_HOST, agent=False, key_data=material, passphrase="nope")
    failure = refused(fleet, wrong)
    assert failure.message == "cannot load the private key given: Incorrect passphrase"
    assert "nope" not in failure.message and "PRIVATE KEY" not in failure.message

    none = endpoint(fleet, PASSPHRASE_HOST, agent=False, key_data=material)
    assert "Passphrase must be specified" in refused(fleet, none).message


def test_passphrase_protected_key_file(fleet: Fleet, encrypted_key: Path) -> None:
    ep = endpoint(
        fleet, PASSPHRASE_HOST, agent=False, key_file=str(encrypted_key), passphrase="secret"
    )
    assert login(fleet, ep) == fleet.user
    wrong = endpoint(
        fleet, PASSPHRASE_HOST, agent=False, key_file=str(encrypted_key), passphrase="nope"
    )
    assert refused(fleet, wrong).message == f"cannot load {encrypted_key}: Incorrect passphrase"


# -- from the inventory --------------------------------------------------------------------


def test_inventory_password_and_certificate_hosts(fleet: Fleet) -> None:
    """Squall's YAML inventory → resolve_endpoints → a login, for each kind."""
    address = fleet.addresses[INVENTORY_HOST]
    common = {"address": address, "port": fleet.port, "user": fleet.user, "agent": False}
    hosts = {
        "cert-host": {
            **common,
            "key_file": str(fleet.cert_key_file),
            "certificate": str(fleet.certificate_file),
        }
    }
    if fleet.sudo_password is not None:
        hosts["password-host"] = {**common, "password": fleet.sudo_password}
    text = "hosts:\n" + "".join(f"  {name}: {json.dumps(h)}\n" for name, h in hosts.items())
    inventory = parse_yaml(text, "fleet.yaml")
    assert not inventory.problems

    endpoints = resolve_endpoints({"hosts": ",".join(hosts)}, inventory)
    assert [ep.name for ep in endpoints] == list(hosts)
    for ep in endpoints:
        assert login(fleet, ep) == fleet.user, ep.name
    by_name = {ep.name: ep for ep in endpoints}
    assert by_name["cert-host"].certificate == str(fleet.certificate_file)
    if fleet.sudo_password is None:
        pytest.skip("password login tested only when the fleet runs as root")
    assert by_name["password-host"].password == fleet.sudo_password
    assert by_name["password-host"].key_file is None
