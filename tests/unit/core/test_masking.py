from __future__ import annotations

import pytest

from squall.core.masking import MASK, Masker, compile_patterns
from squall.errors import ConfigError


def test_values_and_patterns_are_masked_in_text_and_data() -> None:
    masker = Masker(["hunter22", "hunter2222"], compile_patterns([r"AKIA[0-9A-Z]{4}"]))
    assert masker.text("pw=hunter2222 key=AKIAABCD") == f"pw={MASK} key={MASK}"
    data = {"env": {"PW": "hunter22"}, "list": ["x AKIAZZZZ", 3], "hunter22": True}
    assert masker.data(data) == {"env": {"PW": MASK}, "list": [f"x {MASK}", 3], MASK: True}


def test_short_values_are_not_searched_for() -> None:
    # Masking every "ab" would shred the output and protect nothing.
    assert Masker(["ab", "", None, "abcd"]).text("ab abcd") == f"ab {MASK}"
    assert not Masker(["ab"])


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        compile_patterns(["("])
    with pytest.raises(ConfigError, match="matches empty text"):
        compile_patterns(["x*"])
