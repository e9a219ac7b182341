"""Encryption of secrets at rest: AES-256-GCM with a key ring kept in a file.

Ciphertext is ``<key id>:<base64 of nonce + sealed bytes>``, so a rotated ring
can still read values written under an older key until they are re-encrypted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from squall.errors import ConfigError, InvalidInput


class KeyRing:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.active, self.keys = self._load_or_create()

    def _load_or_create(self) -> tuple[str, dict[str, bytes]]:
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                keys = {k: base64.b64decode(v) for k, v in data["keys"].items()}
                return data["active"], keys
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"the key file {self.path} is damaged: {exc}") from exc
        kid = secrets.token_hex(4)
        keys = {kid: AESGCM.generate_key(bit_length=256)}
        self._save(kid, keys)
        return kid, keys

    def _save(self, active: str, keys: dict[str, bytes]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {
            "active": active,
            "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()},
        }
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh)
        os.replace(tmp, self.path)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.active]).encrypt(nonce, plaintext.encode(), None)
        return f"{self.active}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, ciphertext: str) -> str:
        kid, _, body = ciphertext.partition(":")
        key = self.keys.get(kid)
        if key is None and self.path.exists():
            # Another process may have rotated the ring: read it again once.
            self.active, self.keys = self._load_or_create()
            key = self.keys.get(kid)
        if key is None:
            raise InvalidInput(f"value was encrypted with key {kid!r}, which this key ring lacks")
        raw = base64.b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()
        except InvalidTag:
            raise InvalidInput("encrypted value is damaged or was not made by this key") from None

    def add_key(self) -> str:
        """Make a new key active, keeping the old ones for reading."""
        kid = secrets.token_hex(4)
        self.keys[kid] = AESGCM.generate_key(bit_length=256)
        self.active = kid
        self._save(self.active, self.keys)
        return kid

    def retire_others(self) -> None:
        """Forget every key but the active one (after re-encrypting everything)."""
        self.keys = {self.active: self.keys[self.active]}
        self._save(self.active, self.keys)
