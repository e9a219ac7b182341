"""Sign-in backends: who checks a user name and password.

The local backend (the default) checks the scrypt hash in the ``users``
table. Another backend (LDAP, OIDC...) is a class with the same two
members, named by ``SQUALL_AUTH_BACKEND=package.module:ClassName`` and
built with the settings; see docs/security.md. Whatever the backend says,
a user disabled in Squall cannot sign in, and roles are still Squall's.

A backend is called before the sign-in transaction, so one that talks to a
directory over the network never holds a database transaction open.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from squall.config import Settings
from squall.errors import ConfigError
from squall.store import auth
from squall.store.db import Database


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str | None = None  # why it was refused, for the audit trail


class SignInBackend(Protocol):
    name: str

    async def authenticate(self, db: Database, user: str, password: str) -> Outcome:
        """Whether ``password`` is ``user``'s. A backend that accepts a user
        unknown to Squall creates it (without a password) before answering."""
        ...


class LocalBackend:
    """Passwords kept in Squall's own database (scrypt)."""

    name = "local"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    async def authenticate(self, db: Database, user: str, password: str) -> Outcome:
        def check(conn: Any) -> Outcome:
            row = auth.get_user(conn, user)
            if row is None:
                return Outcome(False, "no such user")
            if not auth.verify_password(password, row["password_hash"]):
                return Outcome(False, "wrong password")
            return Outcome(True)

        return await db.read(check)


_loaded: dict[str, SignInBackend] = {}


def backend(settings: Settings) -> SignInBackend:
    """The configured backend (built once per process)."""
    spec = settings.auth_backend
    if spec not in _loaded:
        if spec == "local":
            _loaded[spec] = LocalBackend(settings)
        else:
            module, _, attr = spec.partition(":")
            try:
                cls = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                raise ConfigError(
                    f"SQUALL_AUTH_BACKEND {spec!r} cannot be loaded ({exc}); "
                    "give 'local' or 'package.module:ClassName'"
                ) from None
            _loaded[spec] = cls(settings)
    return _loaded[spec]
