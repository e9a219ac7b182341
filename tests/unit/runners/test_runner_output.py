"""Pure output helpers: masking across chunks, truncation, decoding."""

from __future__ import annotations

import random

import pytest

from squall.runners.output import (
    MASK,
    CappedText,
    SecretMasker,
    StreamCollector,
    mask_secrets,
    maybe_json,
    strip_trailing_newline,
    truncation_marker,
)


def feed_all(masker: SecretMasker, chunks: list[str]) -> str:
    return "".join(masker.feed(c) for c in chunks) + masker.flush()


def test_mask_secrets_whole_text() -> None:
    assert mask_secrets("a hunter2 b hunter2", ["hunter2"]) == f"a {MASK} b {MASK}"
    assert mask_secrets("nothing", []) == "nothing"
    assert mask_secrets("x", ["", None]) == "x"


def test_longest_secret_wins() -> None:
    assert mask_secrets("abcdef", ["abc", "abcdef"]) == MASK


@pytest.mark.parametrize("split", range(1, 12))
def test_secret_split_across_two_chunks(split: int) -> None:
    text = "xx topsecret yy"
    masker = SecretMasker(["topsecret"])
    out = feed_all(masker, [text[:split], text[split:]])
    assert out == f"xx {MASK} yy"


def test_secret_split_into_single_characters() -> None:
    text = "start topsecret middle topsecret end"
    masker = SecretMasker(["topsecret"])
    emitted = [masker.feed(ch) for ch in text]
    out = "".join(emitted) + masker.flush()
    assert out == f"start {MASK} middle {MASK} end"
    # Nothing released along the way may contain a partial secret run longer than
    # what could be innocent text: the concatenation never shows the secret.
    assert "topsecret" not in "".join(emitted)


def test_prefix_of_longer_secret_is_held_until_decided() -> None:
    masker = SecretMasker(["abcd", "abcdef"])
    assert masker.feed("xxabcd") == "xx"  # "abcd" could still become "abcdef"
    assert masker.feed("ef!") == f"{MASK}!"
    masker = SecretMasker(["abcd", "abcdef"])
    assert masker.feed("xxabcd") == "xx"
    assert masker.feed("Z") == f"{MASK}Z"


def test_values_too_short_to_search_for_are_left_alone() -> None:
    # Masking every "ab" would shred the output (see squall/core/masking.py).
    assert SecretMasker(["ab"]).feed("ab cab") == "ab cab"


def test_overlapping_secrets_never_leak() -> None:
    rng = random.Random(7)
    secrets = ["abcd", "cdx", "s3cr3t-value"]
    text = "..abcd..cdx..s3cr3t-value..abcdx..ab..c"
    expected = mask_secrets(text, secrets)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 8)))
        chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert feed_all(SecretMasker(secrets), chunks) == expected


def test_masker_without_secrets_is_passthrough() -> None:
    masker = SecretMasker([])
    assert not masker.active
    assert masker.feed("abc") == "abc"
    assert masker.flush() == ""


def test_capped_text_marks_truncation() -> None:
    cap = CappedText(10)
    cap.add("0123456")
    cap.add("789abcdef")
    assert cap.truncated
    assert cap.value() == "0123456789" + truncation_marker(6)
    cap.add("xyz")
    assert cap.value() == "0123456789" + truncation_marker(9)


def test_capped_text_never_splits_a_character() -> None:
    cap = CappedText(5)
    cap.add("ééé")  # 6 bytes
    assert cap.value() == "éé" + truncation_marker(2)


def test_capped_text_under_limit() -> None:
    cap = CappedText(100)
    cap.add("hello")
    assert not cap.truncated
    assert cap.value() == "hello"


def test_collector_decodes_multibyte_split_across_chunks() -> None:
    data = "héllo → wörld".encode()
    collector = StreamCollector([], 1024)
    out = "".join(collector.feed(data[i : i + 1]) for i in range(len(data)))
    out += collector.finish()
    assert out == "héllo → wörld"
    assert collector.value() == "héllo → wörld"


def test_collector_replaces_invalid_utf8() -> None:
    collector = StreamCollector([], 1024)
    out = collector.feed(b"ok \xff\xfe end") + collector.finish()
    assert out == "ok \ufffd\ufffd end"


def test_collector_truncated_tail_byte_at_eof() -> None:
    collector = StreamCollector([], 1024)
    out = collector.feed(b"abc\xc3") + collector.finish()
    assert out == "abc\ufffd"


def test_collector_masks_and_caps() -> None:
    collector = StreamCollector(["pw123"], 12)
    streamed = (
        collector.feed(b"user pw") + collector.feed(b"123 and more text") + collector.finish()
    )
    assert "pw123" not in streamed
    assert streamed == f"user {MASK} and more text"
    assert collector.truncated
    assert collector.value() == streamed[:12] + truncation_marker(len(streamed) - 12)


def test_strip_and_json() -> None:
    assert strip_trailing_newline("a\n\n") == "a\n"
    assert strip_trailing_newline("a\r\n") == "a"
    assert maybe_json('{"a": [1, 2]}') == {"a": [1, 2]}
    assert maybe_json("1") == 1
    assert maybe_json("plain text") == "plain text"
    assert maybe_json("") == ""
    assert maybe_json("NaN") == "NaN"
