"""The audit trail's hash chain."""

from __future__ import annotations

from typing import Any

from squall.core import audit


def chain(count: int) -> list[dict[str, Any]]:
    records, prev = [], audit.GENESIS
    for i in range(1, count + 1):
        record = {
            "seq": i * 2,  # sequence numbers need not be contiguous
            "at": 1_700_000_000.0 + i,
            "actor": "alice",
            "kind": "api",
            "action": f"POST /api/v1/rules/r{i}",
            "target": f"r{i}",
            "outcome": "ok",
            "source": "10.0.0.1",
            "details": {"status": 201, "nested": {"b": 1, "a": [1, 2]}},
            "position": i,
        }
        prev = record["hash"] = audit.seal(prev, i, record)
        records.append(record)
    return records


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    records = chain(5)
    result = audit.verify(records)
    assert result.ok and result.records == 5
    assert result.head_position == 5 and result.head_hash == records[-1]["hash"]
    assert audit.verify([]).ok and audit.verify([]).head_hash == audit.GENESIS


def test_the_hash_covers_every_field_but_not_key_order() -> None:
    record = chain(1)[0]
    reordered = dict(reversed(list(record.items())))
    reordered["details"] = {"nested": {"a": [1, 2], "b": 1}, "status": 201}
    assert audit.seal(audit.GENESIS, 1, reordered) == record["hash"]
    for name in audit.FIELDS:
        changed = {**record, name: "x" if record[name] != "x" else "y"}
        assert audit.seal(audit.GENESIS, 1, changed) != record["hash"], name
    # The position and the previous hash count too.
    assert audit.seal(audit.GENESIS, 2, record) != record["hash"]
    assert audit.seal("1" * 64, 1, record) != record["hash"]


def test_a_changed_record_is_found() -> None:
    records = chain(5)
    records[2] = {**records[2], "actor": "mallory"}
    result = audit.verify(records)
    assert not result.ok and result.first_bad == 3 and "changed" in (result.problem or "")
    assert result.records == 2


def test_a_deleted_record_is_found() -> None:
    records = chain(5)
    del records[1]
    result = audit.verify(records)
    assert not result.ok and result.first_bad == 2 and "missing" in (result.problem or "")


def test_a_rebuilt_tail_does_not_match_the_kept_head() -> None:
    # Re-sealing everything after an edit gives a consistent chain, but a
    # different head than the one kept elsewhere.
    records = chain(4)
    head = audit.verify(records).head_hash
    records[1]["actor"] = "mallory"
    prev = records[0]["hash"]
    for r in records[1:]:
        prev = r["hash"] = audit.seal(prev, r["position"], r)
    result = audit.verify(records)
    assert result.ok and result.head_hash != head


def test_an_inserted_record_is_found() -> None:
    records = chain(3)
    fake = {**records[1], "position": 2, "actor": "mallory"}
    fake["hash"] = audit.seal(records[0]["hash"], 2, fake)
    records.insert(1, fake)
    for r in records[2:]:
        r["position"] += 1
    result = audit.verify(records)
    assert not result.ok and result.first_bad == 3
