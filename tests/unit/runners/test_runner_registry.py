"""The runner registry and the runners' metadata (mirrors StackStorm's runner.yaml)."""

from __future__ import annotations

import asyncio

import pytest

from squall.errors import NotFound
from squall.runners.base import RunContext
from squall.runners.registry import RUNNERS, get_runner, register, runner_types

ST2_PARAMETERS = {
    "local-shell-cmd": {"cmd", "cwd", "env", "kwarg_op", "sudo", "sudo_password", "timeout"},
    "local-shell-script": {
        "debug",
        "content_version",
        "cwd",
        "env",
        "kwarg_op",
        "sudo",
        "sudo_password",
        "timeout",
    },
    "python-script": {"debug", "content_version", "env", "timeout", "log_level"},
    "http-request": {
        "allow_redirects",
        "cookies",
        "headers",
        "http_proxy",
        "https_proxy",
        "password",
        "url",
        "username",
        "verify_ssl_cert",
        "url_hosts_blacklist",
        "url_hosts_whitelist",
    },
    "noop": set(),
}


def test_known_runners_and_parameters() -> None:
    metas = {meta.name: meta for meta in runner_types()}
    for name, params in ST2_PARAMETERS.items():
        assert set(metas[name].runner_parameters) == params, name
        assert get_runner(name).meta is metas[name]


def test_defaults_match_st2() -> None:
    local = get_runner("local-shell-cmd").meta.runner_parameters
    assert local["timeout"]["default"] == 60
    assert local["kwarg_op"]["default"] == "--"
    assert local["sudo"]["default"] is False
    assert local["sudo_password"]["secret"] is True
    python = get_runner("python-script").meta
    assert python.runner_parameters["timeout"]["default"] == 600
    assert python.output_key == "result"
    http = get_runner("http-request").meta
    assert http.runner_parameters["url"]["required"] is True
    assert http.runner_parameters["password"]["secret"] is True
    assert http.runner_parameters["verify_ssl_cert"]["default"] is True
    assert http.output_key == "body"


def test_unknown_runner_is_not_found() -> None:
    with pytest.raises(NotFound, match="no runner named 'nope'"):
        get_runner("nope")
    assert "nope" not in RUNNERS
    with pytest.raises(KeyError):
        RUNNERS["nope"]


def test_runners_mapping_is_lazy_and_complete() -> None:
    assert set(ST2_PARAMETERS) <= set(RUNNERS)
    assert RUNNERS["noop"] is get_runner("noop")


def test_register_lazy_spec() -> None:
    register("test-noop-alias", "squall.runners.noop:NoopRunner")
    try:
        assert get_runner("test-noop-alias").meta.name == "noop"
    finally:
        from squall.runners import registry

        registry.RUNNER_SPECS.pop("test-noop-alias", None)
        registry._instances.pop("test-noop-alias", None)


def test_noop_result() -> None:
    ctx = RunContext("e", "core.noop", "core", {}, {})

    async def sink(stream: str, text: str) -> None:
        raise AssertionError("noop prints nothing")

    result = asyncio.run(get_runner("noop").run(ctx, sink))
    assert result.status == "succeeded"
    assert result.result == {"failed": False, "succeeded": True, "return_code": 0}
