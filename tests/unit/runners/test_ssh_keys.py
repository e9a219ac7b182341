"""Private key files are read once per version: a rollout runs one execution
(one connector) per host, all with the same key."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from squall.runners import ssh


def _write_key(path: Path) -> bytes:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    return key.public_data


def test_a_key_file_is_read_once_per_version(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    public = _write_key(path)
    first = ssh._read_private_key(str(path), None)
    assert first.public_data == public
    assert ssh._read_private_key(str(path), None) is first
    # Replaced (a new mtime): read again.
    public = _write_key(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = ssh._read_private_key(str(path), None)
    assert again is not first and again.public_data == public


def test_connectors_share_the_key_read(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    _write_key(path)
    ep = ssh.Endpoint(name="h1", address="127.0.0.1", key_file=str(path))
    one = ssh.Connector()._client_keys(ep)
    other = ssh.Connector()._client_keys(ep)
    assert one is not None and other is not None and one[0] is other[0]
