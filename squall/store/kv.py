"""The key-value datastore (StackStorm's ``st2kv``).

Secret values are stored encrypted; the caller passes the key ring's
``encrypt``/``decrypt`` so this module never holds keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.core import triggers as t
from squall.core.timestamps import iso
from squall.errors import InvalidInput, NotFound
from squall.store import triggers as trigger_store
from squall.store.tables import kv

SCOPES = ("system", "user")


def normalize_scope(scope: str | None) -> str:
    """Accept StackStorm's spellings: system, st2kv.system, user, st2kv.user."""
    if scope is not None and not isinstance(scope, str):
        raise InvalidInput("scope must be a string: system or user")
    s = (scope or "system").removeprefix("st2kv.")
    if s not in SCOPES:
        raise InvalidInput(
            f"scope must be 'system' or 'user' (or st2kv.system/st2kv.user), not {scope!r}"
        )
    return s


def _owner(scope: str, user: str | None) -> str:
    return (user or "") if scope == "user" else ""


def _alive(now: float) -> Any:
    return sa.or_(kv.c.expire_at.is_(None), kv.c.expire_at > now)


def set_value(
    conn: Connection,
    *,
    scope: str,
    user: str | None,
    name: str,
    value: str,
    secret: bool,
    ttl: float | None,
    encrypt: Callable[[str], str],
) -> dict[str, Any]:
    if not name:
        raise InvalidInput("a key needs a name")
    now = time.time()
    row = {
        "scope": scope,
        "owner": _owner(scope, user),
        "name": name,
        "value": encrypt(value) if secret else value,
        "secret": secret,
        "expire_at": now + ttl if ttl else None,
        "updated_at": now,
    }
    key = (kv.c.scope == scope, kv.c.owner == row["owner"], kv.c.name == name)
    old = conn.execute(sa.select(kv).where(*key)).first()
    if old is None:
        conn.execute(kv.insert().values(**row))
        _emit(conn, t.KV_CREATE, {"object": _event_object(row)})
    else:
        conn.execute(kv.update().where(*key).values(**row))
        _emit(conn, t.KV_UPDATE, {"object": _event_object(row)})
        if old.value != row["value"] or old.secret != row["secret"]:
            change = {"old_object": _event_object(old._mapping), "new_object": _event_object(row)}
            _emit(conn, t.KV_VALUE_CHANGE, change)
    return row


def _event_object(row: Any) -> dict[str, Any]:
    """A key as datastore events show it: secret values stay hidden."""
    scope = row["scope"]
    return {
        "name": row["name"],
        "scope": "st2kv.system" if scope == "system" else "st2kv.user",
        "user": row["owner"] or None,
        "secret": bool(row["secret"]),
        "value": "********" if row["secret"] else row["value"],
        "expire_timestamp": iso(row["expire_at"]),
    }


def _emit(conn: Connection, type_ref: str, payload: dict[str, Any]) -> None:
    # Stored only when a rule listens: a busy datastore would otherwise
    # double its writes for events nothing reacts to.
    if trigger_store.listened(conn, type_ref):
        trigger_store.create_instance(conn, type_ref, payload, {"source": "datastore"})


def get(conn: Connection, *, scope: str, user: str | None, name: str) -> dict[str, Any]:
    r = conn.execute(
        sa.select(kv).where(
            kv.c.scope == scope,
            kv.c.owner == _owner(scope, user),
            kv.c.name == name,
            _alive(time.time()),
        )
    ).first()
    if r is None:
        raise NotFound(f"no key {name!r} in the {scope} scope")
    return dict(r._mapping)


def list_(
    conn: Connection,
    *,
    scope: str | None,
    user: str | None,
    prefix: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    where = [_alive(time.time())]
    if scope == "user":
        where += [kv.c.scope == "user", kv.c.owner == (user or "")]
    elif scope == "system":
        where.append(kv.c.scope == "system")
    else:  # all scopes visible to this user
        where.append(sa.or_(kv.c.scope == "system", kv.c.owner == (user or "")))
    if prefix:
        where.append(kv.c.name.startswith(prefix, autoescape=True))
    total = conn.execute(sa.select(sa.func.count()).select_from(kv).where(*where)).scalar() or 0
    rows = conn.execute(
        sa.select(kv).where(*where).order_by(kv.c.scope, kv.c.name).limit(limit).offset(offset)
    ).all()
    return [dict(r._mapping) for r in rows], int(total)


def delete(conn: Connection, *, scope: str, user: str | None, name: str) -> None:
    key = (kv.c.scope == scope, kv.c.owner == _owner(scope, user), kv.c.name == name)
    old = conn.execute(sa.select(kv).where(*key)).first()
    if old is None:
        raise NotFound(f"no key {name!r} in the {scope} scope")
    conn.execute(kv.delete().where(*key))
    _emit(conn, t.KV_DELETE, {"object": _event_object(old._mapping)})


def delete_expired(conn: Connection) -> int:
    expired = kv.c.expire_at <= time.time()
    if trigger_store.listened(conn, t.KV_EXPIRE):
        for old in conn.execute(sa.select(kv).where(expired)).all():
            _emit(conn, t.KV_EXPIRE, {"object": _event_object(old._mapping)})
    return conn.execute(kv.delete().where(expired)).rowcount or 0


def reencrypt_all(
    conn: Connection, decrypt: Callable[[str], str], encrypt: Callable[[str], str]
) -> int:
    rows = conn.execute(sa.select(kv).where(kv.c.secret.is_(True))).all()
    for r in rows:
        conn.execute(
            kv.update()
            .where(kv.c.scope == r.scope, kv.c.owner == r.owner, kv.c.name == r.name)
            .values(value=encrypt(decrypt(r.value)))
        )
    return len(rows)


def secrets_version(conn: Connection) -> tuple[int, float | None]:
    """Changes whenever a secret is added, changed or removed (for masking)."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(kv.c.updated_at)).where(kv.c.secret.is_(True))
    ).one()
    return int(row[0]), row[1]


def secret_ciphertexts(conn: Connection) -> list[str]:
    """Every secret's stored (encrypted) value."""
    return list(conn.execute(sa.select(kv.c.value).where(kv.c.secret.is_(True))).scalars())
