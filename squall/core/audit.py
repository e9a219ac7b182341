"""The audit trail's hash chain: how a record is hashed and how a chain is verified.

Records are sealed one after the other: the n-th record sealed gets
``position`` n and ``hash = sha256(previous hash | n | record)``, where
``record`` is its fields in a canonical JSON form. Changing a sealed record,
deleting one or slipping one in breaks the chain from there on, and
:func:`verify` names the first break. Removing records from the end cannot
be seen from the chain alone: the head (last position and hash) is what to
keep elsewhere to notice that.

Records are sealed shortly after they are written, by one sealer, in the
order it sees them committed, not by the transaction that writes them: a
chain built at insert time would make every writing transaction wait for
the one before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64  # the "previous hash" of the first record
FIELDS = ("seq", "at", "actor", "kind", "action", "target", "outcome", "source", "details")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: its fields, keys sorted, no spaces."""
    data = {name: record.get(name) for name in FIELDS}
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def seal(prev_hash: str, position: int, record: Mapping[str, Any]) -> str:
    """The hash of ``record`` sealed at ``position``, after ``prev_hash``."""
    digest = hashlib.sha256()
    digest.update(f"{prev_hash}|{position}|".encode())
    digest.update(canonical(record))
    return digest.hexdigest()


@dataclass
class Verification:
    """What :func:`verify` found."""

    ok: bool = True
    records: int = 0  # sealed records checked
    head_position: int = 0
    head_hash: str = GENESIS
    first_bad: int | None = None  # the position where the chain breaks
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head": {"position": self.head_position, "hash": self.head_hash},
            "first_bad": self.first_bad,
            "problem": self.problem,
        }


def verify(sealed: Iterable[Mapping[str, Any]]) -> Verification:
    """Check the sealed records, given in ``position`` order."""
    result = Verification()
    prev_hash, prev_position = GENESIS, 0
    for record in sealed:
        position = int(record["position"])
        if position != prev_position + 1:
            result.ok = False
            result.first_bad = prev_position + 1
            result.problem = (
                f"the chain jumps from position {prev_position} to {position}: "
                f"{position - prev_position - 1} sealed records are missing"
            )
            return result
        expected = seal(prev_hash, position, record)
        if expected != record.get("hash"):
            result.ok = False
            result.first_bad = position
            result.problem = (
                f"the record at position {position} (seq {record.get('seq')}) does not "
                "match its hash: it was changed, or the chain was rebuilt"
            )
            return result
        prev_hash, prev_position = expected, position
        result.records += 1
    result.head_position, result.head_hash = prev_position, prev_hash
    return result
