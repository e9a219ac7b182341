"""What the follower prints at the end, when the live output and the stored one differ."""

from __future__ import annotations

from typing import Any

from squall.cli.follow import Follower


class _Stored:
    """The API's stored output of one execution."""

    def __init__(self, text: str) -> None:
        self.text = text

    def output(self, _execution_id: str, name: str) -> str:
        return self.text if name == "stdout" else ""


def _shown_after(live: list[str], stored: str, capsys: Any) -> str:
    follower = Follower(_Stored(stored), spinner=False)  # type: ignore[arg-type]
    for chunk in live:
        follower._write("stdout", chunk)
    follower._print_rest("e1")
    return str(capsys.readouterr().out)


def test_the_rest_of_the_stored_output_is_printed(capsys: Any) -> None:
    out = _shown_after(["h1: a\n"], "h1: a\nh2: b\n", capsys)
    assert out == "h1: a\nh2: b\n"


def test_hosts_stored_in_another_order_are_each_printed_once(capsys: Any) -> None:
    # Live: h11, h12, h10; stored: h09 before h10. Same lengths, so a rest
    # cut by length would print h10 twice and never h09.
    live = ["h11: same\n", "h12: same\n", "h10: same\n"]
    stored = "h11: same\nh12: same\nh09: same\nh10: same\n"
    out = _shown_after(live, stored, capsys)
    assert sorted(out.splitlines()) == ["h09: same", "h10: same", "h11: same", "h12: same"]


def test_repeated_lines_are_counted(capsys: Any) -> None:
    out = _shown_after(["ok\n"], "ok\nok\nok\n", capsys)
    assert out.count("ok\n") == 3
