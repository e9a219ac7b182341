"""Values rendered into shell commands stay data: run the commands with sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from squall.core import templating
from squall.core.orquesta.expressions import ExpressionError, Scope, evaluate

PAYLOADS = [
    "; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "a\ntouch {marker}",
    'it\'s "quoted" \\ $HOME',
    "{{{{ 7*7 }}}}",
    "",
]

COMMANDS = [
    "printf '%s' {v}",
    'printf "%s" "{v}"',
    "printf '%s' '{v}'",
    "printf '%s' x{v}y",
    "printf '%s' \\{v}",
    "{{% if true %}}printf '%s' {v}{{% endif %}}",
]


def _sh(command: str) -> str:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)
    return done.stdout


def _expected(command: str, payload: str) -> str:
    return f"x{payload}y" if "x{v}y" in command else payload


@pytest.mark.parametrize("command", COMMANDS)
def test_every_insertion_is_quoted_for_where_it_lands(command: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    schema = {"cmd": {"type": "string"}}
    for template in PAYLOADS:
        payload = template.format(marker=marker)
        context = templating.build_context(extra={"msg": payload})
        rendered = templating.render_parameters(
            schema,
            {"cmd": command.format(v="{{ msg }}")},
            context,
            shell_parameters=frozenset({"cmd"}),
        )["cmd"]
        assert _sh(rendered) == _expected(command, payload), rendered
        assert not marker.exists(), rendered


def test_raw_inserts_shell_syntax_and_other_parameters_are_not_quoted() -> None:
    schema = {"cmd": {"type": "string"}, "msg": {"type": "string"}}
    context = templating.build_context(extra={"op": "printf ok; printf !", "m": "a b"})
    rendered = templating.render_parameters(
        schema,
        {"cmd": "{{ op | raw }}", "msg": "{{ m }}"},
        context,
        shell_parameters=frozenset({"cmd"}),
    )
    assert _sh(rendered["cmd"]) == "ok!"
    assert rendered["msg"] == "a b"


def test_workflow_inputs_that_are_shell_commands_are_quoted(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = f"$(touch {marker}); {{{{ 7*7 }}}} `id`"
    scope = Scope(ctx={"msg": payload, "op": "printf raw"})
    for command in ("printf '%s' {{ ctx().msg }}", "printf '%s' <% ctx().msg %>"):
        rendered = evaluate({"cmd": command}, scope, shell=frozenset({"cmd"}))
        assert _sh(rendered["cmd"]) == payload
    assert _sh(evaluate({"cmd": "{{ ctx().op | raw }}"}, scope, shell=frozenset({"cmd"}))["cmd"])
    assert not marker.exists()
    # Not a shell command: the value as is.
    assert evaluate({"msg": "<% ctx().msg %>"}, scope) == {"msg": payload}


class _Store:
    """A datastore with one secret: system.token (its ciphertext reversed)."""

    def get(self, scope: str, name: str) -> templating.SecretValue | None:
        found = scope == "system" and name == "token"
        return templating.SecretValue("terces-ytrid") if found else None

    def decrypt(self, ciphertext: str) -> str:
        return ciphertext[::-1]


def test_an_expression_inside_a_value_cannot_decrypt_a_secret() -> None:
    reads = "<% st2kv('system.token', decrypt => true) %>"
    scope = Scope(ctx={"event": f"echo {reads}"}, kv=_Store())
    assert evaluate(reads, scope) == "dirty-secret"
    with pytest.raises(ExpressionError, match="written in the workflow"):
        evaluate("<% ctx().event %>", scope)
