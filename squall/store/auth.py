"""Users, API keys and tokens. Keys and tokens are stored as SHA-256 hashes:
the secret itself is shown once, when it is made, and never again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.errors import Conflict, NotFound
from squall.store.ids import new_id
from squall.store.tables import api_keys, tokens, users

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(
    conn: Connection, name: str, password: str | None, *, is_admin: bool = False
) -> None:
    if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first():
        raise Conflict(f"user {name!r} already exists")
    conn.execute(
        users.insert().values(
            name=name,
            password_hash=hash_password(password) if password else None,
            enabled=True,
            is_admin=is_admin,
            created_at=time.time(),
        )
    )


def get_user(conn: Connection, name: str) -> dict[str, Any] | None:
    r = conn.execute(sa.select(users).where(users.c.name == name)).first()
    return dict(r._mapping) if r else None


def any_user(conn: Connection) -> bool:
    return conn.execute(sa.select(users.c.name).limit(1)).first() is not None


def create_api_key(
    conn: Connection,
    user: str,
    *,
    key: str | None = None,
    metadata: dict[str, Any] | None = None,
    expires_at: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """Make an API key; returns the key (shown once) and its stored record."""
    key = key or secrets.token_urlsafe(32)
    row = {
        "id": new_id(),
        "key_hash": _digest(key),
        "user": user,
        "enabled": True,
        "metadata": metadata or {},
        "created_at": time.time(),
        "expires_at": expires_at,
    }
    conn.execute(api_keys.insert().values(**row))
    return key, row


def list_api_keys(conn: Connection, user: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(api_keys).order_by(api_keys.c.created_at)
    if user:
        q = q.where(api_keys.c.user == user)
    return [dict(r._mapping) for r in conn.execute(q).all()]


def get_api_key(conn: Connection, key_id: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(api_keys).where(sa.or_(api_keys.c.id == key_id, api_keys.c.key_hash == key_id))
    ).first()
    if r is None:
        raise NotFound(f"no API key with id {key_id!r}")
    return dict(r._mapping)


def update_api_key(conn: Connection, key_id: str, **values: Any) -> None:
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(**values))


def delete_api_key(conn: Connection, key_id: str) -> None:
    if not conn.execute(api_keys.delete().where(api_keys.c.id == key_id)).rowcount:
        raise NotFound(f"no API key with id {key_id!r}")


def user_for_api_key(conn: Connection, key: str) -> str | None:
    r = conn.execute(
        sa.select(api_keys.c.user, api_keys.c.enabled, api_keys.c.expires_at).where(
            api_keys.c.key_hash == _digest(key)
        )
    ).first()
    if r is None or not r.enabled or (r.expires_at is not None and r.expires_at < time.time()):
        return None
    return str(r.user)


def create_token(
    conn: Connection, user: str, ttl: float, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    token = secrets.token_hex(16)
    now = time.time()
    row = {
        "id": new_id(),
        "token_hash": _digest(token),
        "user": user,
        "metadata": metadata or {},
        "created_at": now,
        "expiry": now + ttl,
    }
    conn.execute(tokens.insert().values(**row))
    return {**row, "token": token}


def user_for_token(conn: Connection, token: str) -> str | None:
    r = conn.execute(
        sa.select(tokens.c.user, tokens.c.expiry).where(tokens.c.token_hash == _digest(token))
    ).first()
    if r is None or r.expiry < time.time():
        return None
    return str(r.user)


def delete_token(conn: Connection, token: str) -> bool:
    """Revoke a token (signing out); False if there was no such token."""
    result = conn.execute(tokens.delete().where(tokens.c.token_hash == _digest(token)))
    return bool(result.rowcount)


def user_is_active(conn: Connection, name: str) -> bool:
    r = conn.execute(sa.select(users.c.enabled).where(users.c.name == name)).first()
    return bool(r and r.enabled)


def delete_expired_tokens(conn: Connection) -> int:
    return conn.execute(tokens.delete().where(tokens.c.expiry < time.time())).rowcount or 0


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(users).order_by(users.c.name)).all()
    return [dict(r._mapping) for r in rows]


def set_user(conn: Connection, name: str, **values: Any) -> None:
    """Change a user (``enabled``, ``password``); NotFound if there is none."""
    if "password" in values:
        password = values.pop("password")
        values["password_hash"] = hash_password(password) if password else None
    result = conn.execute(users.update().where(users.c.name == name).values(**values))
    if not result.rowcount:
        raise NotFound(f"no user named {name!r}")
