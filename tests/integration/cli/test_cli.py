"""The ``squall`` command against a real server, run as a user would."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from squall.cli.client import SseEvent, normalize_url, parse_sse
from tests.integration.cli.conftest import CliServer, Squall, base_env, free_port


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def execution_id(result: subprocess.CompletedProcess[str]) -> str:
    return str(json.loads(result.stdout)["id"])


def wait_status(
    squall: Squall, eid: str, wanted: set[str], timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = json.loads(ok(squall("execution", "get", eid, "--json")).stdout)
        if found["status"] in wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# -- run ------------------------------------------------------------------------------


def test_run_shows_the_output_and_succeeds(squall: Squall) -> None:
    result = ok(squall("run", "core.local", "cmd=echo hi"))
    assert result.stdout == "hi\n"  # the summary goes to stderr: stdout stays pipeable
    assert "succeeded" in result.stderr


def test_run_sends_stderr_to_stderr_and_keeps_order(squall: Squall) -> None:
    result = ok(squall("run", "core.local", "cmd=seq 1 2000; echo warn >&2"))
    assert result.stdout.splitlines() == [str(i) for i in range(1, 2001)]
    assert result.stderr.startswith("warn\n")


def test_failing_command_exits_1(squall: Squall) -> None:
    result = squall("run", "core.local", "cmd=echo oops >&2; exit 3")
    assert result.returncode == 1
    assert "oops" in result.stderr
    assert "failed" in result.stderr and "exit code 3" in result.stderr
    no_traceback(result)


def test_unknown_action_is_an_error(squall: Squall) -> None:
    result = squall("run", "core.no_such_action", "x=1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "core.no_such_action" in result.stderr
    no_traceback(result)


def test_wrong_parameter_type_names_the_parameter(squall: Squall) -> None:
    result = squall("run", "core.local", "cmd=true", "timeout=soon")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "timeout" in result.stderr
    no_traceback(result)


def test_parameters_must_be_key_value(squall: Squall) -> None:
    result = squall("run", "core.local", "echo")
    assert result.returncode == 2
    assert "key=value" in result.stderr
    no_traceback(result)


def test_parameter_from_file(squall: Squall, cli_server: CliServer) -> None:
    (cli_server.home / "cmd.sh").write_text("echo from a file\n")
    result = ok(squall("run", "core.local", "cmd=@cmd.sh"))
    assert result.stdout == "from a file\n"
    missing = squall("run", "core.local", "cmd=@no-such-file")
    assert missing.returncode == 2
    no_traceback(missing)


def test_run_json_prints_the_final_execution(squall: Squall) -> None:
    result = ok(squall("run", "core.local", "cmd=echo hi", "--json"))
    execution = json.loads(result.stdout)
    assert execution["status"] == "succeeded"
    assert execution["result"]["stdout"] == "hi"


def test_run_yaml(squall: Squall) -> None:
    result = ok(squall("run", "core.echo", "message=hello there", "--yaml"))
    execution = yaml.safe_load(result.stdout)
    assert execution["status"] == "succeeded"
    assert execution["result"]["stdout"] == "hello there"


def test_async_run_then_tail(squall: Squall) -> None:
    started = ok(
        squall(
            "run",
            "core.local",
            "cmd=for i in 1 2 3; do echo line $i; sleep 0.3; done",
            "--async",
            "--json",
        )
    )
    eid = execution_id(started)
    tail = ok(squall("execution", "tail", eid))
    assert tail.stdout == "line 1\nline 2\nline 3\n"
    # Once it is over, tail prints the stored output.
    again = ok(squall("execution", "tail", eid))
    assert again.stdout == tail.stdout


def test_timeout_wait(squall: Squall) -> None:
    result = squall("run", "core.local", "cmd=sleep 20", "--timeout-wait", "0.5")
    assert result.returncode == 124
    assert "squall execution tail" in result.stderr
    eid = result.stderr.split("execution ", 1)[1].split()[0]
    ok(squall("execution", "cancel", eid))


# -- executions --------------------------------------------------------------------------


def test_execution_list_json_parses(squall: Squall) -> None:
    eid = execution_id(ok(squall("run", "core.local", "cmd=echo listed", "--json")))
    rows = json.loads(ok(squall("execution", "list", "--json")).stdout)
    assert isinstance(rows, list)
    assert eid in [r["id"] for r in rows]
    only = json.loads(
        ok(
            squall(
                "execution",
                "list",
                "--action",
                "core.local",
                "--status",
                "succeeded",
                "--limit",
                "5",
                "--json",
            )
        ).stdout
    )
    assert 0 < len(only) <= 5
    assert {r["status"] for r in only} == {"succeeded"}


def test_execution_list_table(squall: Squall) -> None:
    eid = execution_id(ok(squall("run", "core.local", "cmd=true", "--json")))
    table = ok(squall("execution", "list")).stdout
    assert table.split()[:6] == ["id", "action", "status", "started", "elapsed", "user"]
    row = next(line for line in table.splitlines() if line.startswith(eid))
    assert "core.local" in row and "succeeded" in row and "admin" in row


def test_execution_get(squall: Squall) -> None:
    eid = execution_id(ok(squall("run", "core.local", "cmd=echo shown plainly", "--json")))
    text = ok(squall("execution", "get", eid)).stdout
    assert eid in text
    assert "succeeded" in text
    assert "cmd: echo shown plainly" in text
    assert "\n    shown plainly\n" in text  # stdout verbatim, not quoted
    as_yaml = yaml.safe_load(ok(squall("execution", "get", eid, "--yaml")).stdout)
    assert as_yaml["id"] == eid
    missing = squall("execution", "get", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")


def test_cancel(squall: Squall) -> None:
    eid = execution_id(ok(squall("run", "core.local", "cmd=sleep 30", "--async", "--json")))
    wait_status(squall, eid, {"running"})
    ok(squall("execution", "cancel", eid))
    assert wait_status(squall, eid, {"canceled"})["status"] == "canceled"
    again = squall("execution", "cancel", eid)
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    # Following a canceled execution exits 1.
    assert squall("execution", "tail", eid).returncode == 1


def test_rerun_with_changed_parameters(squall: Squall) -> None:
    eid = execution_id(ok(squall("run", "core.local", "cmd=echo first", "--json")))
    result = ok(squall("execution", "rerun", eid, "cmd=echo second"))
    assert result.stdout == "second\n"


# -- actions and packs -----------------------------------------------------------------------


def test_action_list_shows_core_local(squall: Squall) -> None:
    result = ok(squall("action", "list"))
    assert any(
        line.split()[:2] == ["core.local", "local-shell-cmd"] for line in result.stdout.splitlines()
    )
    refs = [
        a["ref"]
        for a in json.loads(ok(squall("action", "list", "--pack", "core", "--json")).stdout)
    ]
    assert "core.local" in refs
    assert all(r.startswith("core.") for r in refs)


def test_action_get_shows_parameters(squall: Squall) -> None:
    text = ok(squall("action", "get", "core.local")).stdout
    assert "local-shell-cmd" in text
    cmd_row = next(line for line in text.splitlines() if line.startswith("cmd "))
    assert "string" in cmd_row and "yes" in cmd_row
    assert any(line.startswith("timeout ") for line in text.splitlines())  # a runner parameter
    as_json = json.loads(ok(squall("action", "get", "core.local", "--json")).stdout)
    assert as_json["ref"] == "core.local"
    missing = squall("action", "get", "core.nope")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")


def test_pack_list_and_register(squall: Squall) -> None:
    assert "core" in [p["ref"] for p in json.loads(ok(squall("pack", "list", "--json")).stdout)]
    result = ok(squall("pack", "register", "core"))
    assert "registered 1 pack: core" in result.stdout
    unknown = squall("pack", "register", "no_such_pack")
    assert unknown.returncode == 1
    assert "no_such_pack" in unknown.stderr


def test_pack_install_from_a_directory(squall: Squall, cli_server: CliServer) -> None:
    pack = cli_server.home / "src" / "clitest"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "ref: clitest\nname: clitest\ndescription: t\nversion: 0.1.0\nauthor: t\n"
    )
    (pack / "actions" / "hello.yaml").write_text(
        "name: hello\nrunner_type: local-shell-cmd\nparameters:\n"
        "  cmd:\n    default: echo hello from clitest\n"
    )
    result = ok(squall("pack", "install", "src/clitest", timeout=120))
    assert "installed clitest" in result.stdout
    assert "1 action" in result.stdout
    assert ok(squall("run", "clitest.hello")).stdout == "hello from clitest\n"


# -- the datastore ------------------------------------------------------------------------------


def test_key_round_trip(squall: Squall) -> None:
    ok(squall("key", "set", "cli.plain", "hello"))
    got = json.loads(ok(squall("key", "get", "cli.plain", "--json")).stdout)
    assert got["value"] == "hello" and got["secret"] is False
    assert "hello" in ok(squall("key", "get", "cli.plain")).stdout

    ok(squall("key", "set", "cli.secret", "s3cr3t-value", "--secret", "--ttl", "3600"))
    hidden = ok(squall("key", "get", "cli.secret"))
    assert "s3cr3t-value" not in hidden.stdout
    assert "secret" in hidden.stdout
    shown = json.loads(ok(squall("key", "get", "cli.secret", "--decrypt", "--json")).stdout)
    assert shown["value"] == "s3cr3t-value"
    assert shown["expire_timestamp"]

    listed = json.loads(ok(squall("key", "list", "--prefix", "cli.", "--json")).stdout)
    assert {k["name"] for k in listed} == {"cli.plain", "cli.secret"}
    assert "s3cr3t-value" not in ok(squall("key", "list", "--prefix", "cli.")).stdout
    decrypted = json.loads(
        ok(squall("key", "list", "--prefix", "cli.", "--decrypt", "--json")).stdout
    )
    assert {k["name"]: k["value"] for k in decrypted}["cli.secret"] == "s3cr3t-value"

    rotated = ok(squall("key", "rotate"))
    assert "re-encrypted" in rotated.stdout
    again = json.loads(ok(squall("key", "get", "cli.secret", "--decrypt", "--json")).stdout)
    assert again["value"] == "s3cr3t-value"

    for name in ("cli.plain", "cli.secret"):
        ok(squall("key", "delete", name))
    gone = squall("key", "get", "cli.secret")
    assert gone.returncode == 1 and gone.stderr.startswith("error: ")
    assert json.loads(ok(squall("key", "list", "--prefix", "cli.", "--json")).stdout) == []


def test_key_user_scope_and_stdin(squall: Squall) -> None:
    ok(squall("key", "set", "cli.mine", "-", "--scope", "user", input="from stdin\n"))
    got = json.loads(ok(squall("key", "get", "cli.mine", "--scope", "user", "--json")).stdout)
    assert got["value"] == "from stdin"
    assert squall("key", "get", "cli.mine").returncode == 1  # not in the system scope
    ok(squall("key", "delete", "cli.mine", "--scope", "user"))


# -- configuration and errors ---------------------------------------------------------------------


def test_finds_the_server_through_its_credentials_file(
    squall: Squall, cli_server: CliServer
) -> None:
    env = {**base_env(cli_server.home), "SQUALL_DATA_DIR": str(cli_server.data_dir)}
    assert isinstance(json.loads(ok(squall("execution", "list", "--json", env=env)).stdout), list)


def test_finds_the_server_in_the_default_data_dir(
    squall: Squall, cli_server: CliServer, tmp_path: Path
) -> None:
    # A home whose default data directory holds the server's credentials.
    default_dir = tmp_path / ".local" / "share" / "squall"
    default_dir.mkdir(parents=True)
    (default_dir / "credentials.json").write_text(
        (cli_server.data_dir / "credentials.json").read_text()
    )
    env = base_env(tmp_path)
    assert isinstance(json.loads(ok(squall("key", "list", "--json", env=env)).stdout), list)


def test_unreachable_server(squall: Squall, cli_server: CliServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = squall("--url", url, "execution", "list")
    assert result.returncode == 1
    assert url in result.stderr and "squall up" in result.stderr
    no_traceback(result)


def test_bad_api_key(squall: Squall, cli_server: CliServer) -> None:
    result = squall("action", "list", env=cli_server.env(SQUALL_API_KEY="wrong"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    no_traceback(result)


def test_no_api_key_says_where_it_looked(squall: Squall, cli_server: CliServer) -> None:
    env = {**base_env(cli_server.home), "SQUALL_API_URL": cli_server.url}
    result = squall("action", "list", env=env)
    assert result.returncode == 1
    assert "SQUALL_API_KEY" in result.stderr


def test_version(squall: Squall) -> None:
    assert ok(squall("version")).stdout.startswith("squall ")
    assert ok(squall("--version")).stdout.startswith("squall ")


# -- pieces that need no server -------------------------------------------------------------


def test_parse_sse() -> None:
    lines = [
        "retry: 1000",
        "",
        ": keep-alive",
        "",
        "event: st2.execution__update",
        'data: {"id": "a", "status": "running"}',
        "",
        "event: message",
        "id: 7",
        "data: line one",
        "data: line two",
        "",
    ]
    assert list(parse_sse(lines)) == [
        SseEvent("st2.execution__update", {"id": "a", "status": "running"}),
        SseEvent("message", "line one\nline two", "7"),
    ]


def test_normalize_url() -> None:
    assert normalize_url("localhost:9101") == "http://localhost:9101"
    assert normalize_url("https://squall.example/api/v1/") == "https://squall.example"
