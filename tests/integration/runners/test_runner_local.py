"""local-shell-cmd / local-shell-script with real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from squall.runners.local import LocalShellCommandRunner, LocalShellScriptRunner
from squall.runners.output import MASK
from tests.integration.runners.support import Sink, alive, context, read_pids, run, wait_gone

CMD = LocalShellCommandRunner(kill_grace=0.3)


def cmd(command: str, **kwargs: Any) -> tuple[dict[str, Any], str, Sink]:
    sink = Sink()
    rp = {"cmd": command, **kwargs.pop("rp", {})}
    result = run(CMD, context(rp, timeout=kwargs.pop("timeout", 10), **kwargs), sink)
    return result.result, result.status, sink


def test_stdout_stderr_and_success() -> None:
    result, status, sink = cmd("echo out; echo err >&2")
    assert status == "succeeded"
    assert result == {
        "failed": False,
        "succeeded": True,
        "return_code": 0,
        "stdout": "out",
        "stderr": "err",
    }
    assert sink.text("stdout") == "out\n"
    assert sink.text("stderr") == "err\n"


def test_exit_code_failure() -> None:
    result, status, _ = cmd("echo nope >&2; exit 3")
    assert status == "failed"
    assert result["return_code"] == 3
    assert result["failed"] is True and result["succeeded"] is False
    assert result["stderr"] == "nope"


def test_json_stdout_is_parsed_like_st2() -> None:
    result, _, _ = cmd("""echo '{"a": [1, 2]}'""")
    assert result["stdout"] == {"a": [1, 2]}


def test_runs_with_bash() -> None:
    result, _, _ = cmd("[[ 1 == 1 ]] && echo $BASH_VERSION")
    assert result["stdout"]


def test_env_cwd_and_st2_variables(tmp_path: Path) -> None:
    result, status, _ = cmd(
        'echo "$FOO|$BAR|$ST2_ACTION_PACK_NAME|$ST2_ACTION_EXECUTION_ID|$(pwd)"',
        rp={"env": {"FOO": "from env", "BAR": 5}, "cwd": str(tmp_path)},
        env={"BAR": "ctx wins"},
    )
    assert status == "succeeded"
    assert result["stdout"] == f"from env|ctx wins|tests|e1|{tmp_path}"


def test_action_parameters_are_not_exported() -> None:
    result, _, _ = cmd('echo "<$secretparam>"', parameters={"secretparam": "x"})
    assert result["stdout"] == "<>"


def test_missing_cwd_is_a_clear_failure() -> None:
    result, status, _ = cmd("true", rp={"cwd": "/nonexistent/squall-test"})
    assert status == "failed"
    assert "does not exist" in str(result["error"])


def test_non_utf8_output_is_replaced() -> None:
    result, status, sink = cmd(r"printf 'ok \xff\xfe\n'; printf 'caf\xc3\xa9\n'")
    assert status == "succeeded"
    assert result["stdout"] == "ok \ufffd\ufffd\ncafé"
    assert "\ufffd" in sink.text("stdout")


def test_output_cap_marker() -> None:
    runner = LocalShellCommandRunner(max_output_bytes=1000)
    sink = Sink()
    res = run(runner, context({"cmd": "head -c 5000 /dev/zero | tr '\\0' a"}, timeout=10), sink)
    out = res.result["stdout"]
    assert out.startswith("a" * 1000)
    assert out.endswith("[... output truncated: 4000 bytes omitted ...]")
    assert len(sink.text("stdout")) == 5000  # streaming is not capped here


def test_secrets_masked_in_stream_and_result() -> None:
    secret = "hunter2-SECRET"
    # Print the secret slowly, in pieces, so it crosses read boundaries.
    result, _, sink = cmd(
        "printf 'pw=hunt'; sleep 0.05; printf 'er2-SEC'; sleep 0.05; printf 'RET done\\n';"
        f" echo {secret} >&2",
        secrets=[secret],
    )
    assert result["stdout"] == f"pw={MASK} done"
    assert result["stderr"] == MASK
    assert secret not in sink.text("stdout") + sink.text("stderr")
    assert sink.text("stdout") == f"pw={MASK} done\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    sink = Sink()
    res = run(
        CMD,
        context(
            {"cmd": f"sleep 30 & echo $! > {pidfile}; echo $$ >> {pidfile}; sleep 30"}, timeout=1
        ),
        sink,
    )
    assert res.status == "timeout"
    assert res.result["return_code"] == -9
    assert res.result["failed"] is True
    assert "1 seconds" in res.result["error"]
    for pid in read_pids(str(pidfile), 2):
        assert wait_gone(pid), f"process {pid} survived the timeout"


def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    res = run(
        CMD,
        context({"cmd": f"trap '' TERM; sleep 30 & echo $! > {pidfile}; sleep 30"}, timeout=0.5),
    )
    assert res.status == "timeout"
    (pid,) = read_pids(str(pidfile), 1)
    assert wait_gone(pid), "SIGTERM-ignoring child survived"


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"

    async def scenario() -> None:
        started = asyncio.Event()

        async def sink(stream: str, text: str) -> None:
            if "started" in text:
                started.set()

        ctx = context(
            {"cmd": f"sleep 30 & echo $! > {pidfile}; echo $$ >> {pidfile}; echo started; wait"},
            timeout=30,
        )
        task = asyncio.create_task(CMD.run(ctx, sink))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    for pid in read_pids(str(pidfile), 2):
        assert wait_gone(pid, 1.0), f"process {pid} survived the cancel"


def test_background_process_holding_pipe_does_not_hang(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    res = run(CMD, context({"cmd": f"sleep 30 & echo $! > {pidfile}; echo done"}, timeout=1))
    assert res.status == "succeeded"
    assert res.result["stdout"] == "done"
    (pid,) = read_pids(str(pidfile), 1)
    assert wait_gone(pid)


def test_background_process_not_holding_pipe_survives(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    res = run(
        CMD,
        context({"cmd": f"sleep 30 >/dev/null 2>&1 & echo $! > {pidfile}"}, timeout=5),
    )
    assert res.status == "succeeded"
    (pid,) = read_pids(str(pidfile), 1)
    try:
        assert alive(pid)
    finally:
        os.kill(pid, 9)


def test_sudo_without_sudo_installed_fails_clearly() -> None:
    if shutil.which("sudo") is not None:
        pytest.skip("sudo is installed here")
    result, status, _ = cmd("id -u", rp={"sudo": True})
    assert status == "failed"
    assert "sudo" in str(result["error"])


def test_sudo_password_is_masked_and_never_on_the_command_line() -> None:
    if shutil.which("sudo") is None or os.geteuid() != 0:
        pytest.skip("needs sudo and root")
    result, _, sink = cmd(
        "echo pw-top-secret; id -u", rp={"sudo": True, "sudo_password": "pw-top-secret"}
    )
    assert "pw-top-secret" not in str(result) + sink.text("stdout")


def test_concurrent_true_runs() -> None:
    async def scenario() -> list[str]:
        sink = Sink()
        runs = [CMD.run(context({"cmd": "true"}, timeout=10), sink) for _ in range(50)]
        return [r.status for r in await asyncio.gather(*runs)]

    assert asyncio.run(scenario()) == ["succeeded"] * 50


# -- local-shell-script ---------------------------------------------------------------


def write_script(path: Path, text: str, executable: bool) -> str:
    path.write_text(text)
    mode = 0o755 if executable else 0o644
    path.chmod(mode)
    return str(path)


SCHEMA = {
    "first": {"type": "string", "position": 0},
    "flag": {"type": "boolean", "position": 1},
    "name": {"type": "string"},
    "verbose": {"type": "boolean"},
}


@pytest.mark.parametrize("executable", [True, False])
def test_script_with_shebang_and_arguments(tmp_path: Path, executable: bool) -> None:
    script = write_script(
        tmp_path / "s.sh",
        '#!/usr/bin/env bash\nfor a in "$@"; do echo "<$a>"; done\necho "$SQUALL_X" >&2\n',
        executable,
    )
    sink = Sink()
    ctx = context(
        {"__param_schema__": SCHEMA, "env": {"SQUALL_X": "xx"}},
        {"first": "a b", "flag": True, "name": "n", "verbose": True},
        entry_point=script,
        timeout=10,
    )
    res = run(LocalShellScriptRunner(), ctx, sink)
    assert res.status == "succeeded", res.result
    assert res.result["stdout"] == "<--name=n>\n<--verbose>\n<a b>\n<1>"
    assert res.result["stderr"] == "xx"
    assert stat.S_IMODE(os.stat(script).st_mode) == (0o755 if executable else 0o644)


def test_script_without_shebang_runs_with_bash(tmp_path: Path) -> None:
    for executable in (True, False):
        script = write_script(
            tmp_path / f"plain{executable}.sh", 'echo "$1|$BASH_VERSION"\n', executable
        )
        ctx = context(
            {"__param_schema__": {"p": {"type": "string", "position": 0}}},
            {"p": "v"},
            entry_point=script,
            timeout=10,
        )
        res = run(LocalShellScriptRunner(), ctx)
        assert res.status == "succeeded", res.result
        assert str(res.result["stdout"]).startswith("v|")
        assert len(str(res.result["stdout"])) > 2


def test_python_script_via_shebang(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "p.py",
        "#!/usr/bin/env python3\nimport sys, json\nprint(json.dumps(sys.argv[1:]))\nsys.exit(4)\n",
        False,
    )
    res = run(
        LocalShellScriptRunner(),
        context({"kwarg_op": "-"}, {"k": "v"}, entry_point=script, timeout=10),
    )
    assert res.status == "failed"
    assert res.result["return_code"] == 4
    assert res.result["stdout"] == ["-k=v"]


def test_script_timeout(tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow.sh", "#!/bin/bash\nsleep 30\n", True)
    res = run(LocalShellScriptRunner(kill_grace=0.2), context({}, entry_point=script, timeout=0.5))
    assert res.status == "timeout"
    assert res.result["return_code"] == -9
