"""Effects cut into NOTIFY-sized chunks and joined back together."""

from __future__ import annotations

from squall.store.notify import CHUNK_BYTES, Decoder, Publisher


def test_a_large_message_is_chunked_under_the_limit_and_joined_back() -> None:
    publisher = Publisher("origin-a")
    effects = [
        ("wake", "run"),
        ("event", ["st2.execution.output__create", {"data": "héllo wörld ✓ " * 3000}]),
        ("cancel", "abc123"),
    ]
    payloads = publisher.encode(effects)
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)
    assert all(len(p.split("|", 1)[1].encode()) <= CHUNK_BYTES for p in payloads)
    decoder = Decoder("origin-b")
    results = [decoder.feed(p) for p in payloads]
    assert results[:-1] == [None] * (len(payloads) - 1)
    assert results[-1] == [(k, v) for k, v in effects]


def test_small_messages_are_one_notification_and_own_ones_are_skipped() -> None:
    mine, other = Publisher("me"), Publisher("you")
    decoder = Decoder("me")
    (payload,) = other.encode([("wake", "schedule")])
    assert decoder.feed(payload) == [("wake", "schedule")]
    (own,) = mine.encode([("wake", "schedule")])
    assert decoder.feed(own) is None


def test_chunks_of_two_messages_interleaved() -> None:
    a, b = Publisher("a"), Publisher("b")
    big = [("event", ["x", {"data": "y" * 20000}])]
    pa, pb = a.encode(big), b.encode([("event", ["z", {"data": "w" * 9000}])])
    decoder = Decoder("c")
    out = [decoder.feed(p) for pair in zip(pa, pb, strict=False) for p in pair]
    out += [decoder.feed(p) for p in pa[len(pb) :]]
    done = [o for o in out if o]
    assert len(done) == 2
