"""Tests for squall.runners.remote_job: the wrapper remote commands run under.

The wrapper is run here as sshd would run it: ``<login shell> -c <wrapper>``
in a new session (``setsid``), with ``$HOME`` pointing at a temporary
directory, fed on stdin what Squall would send."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from squall.errors import RunnerError
from squall.runners.remote_job import (
    JOBS_DIR,
    SCRIPT_PATH,
    TRAILER,
    job_id,
    kill_script,
    parse_trailer,
    start_script,
    upload_script,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("setsid") is None,
    reason="runs the wrapper with setsid, as sshd would",
)

SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]
CAP = 4096
DONE = b"done\n"


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _run(
    shell: str, script: str, home: Path, stdin: bytes = DONE, timeout: float = 10
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["setsid", shell, "-c", script],
        input=stdin,
        capture_output=True,
        env=_env(home),
        timeout=timeout,
        check=False,
    )


def _start(shell: str, script: str, home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["setsid", shell, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(home),
    )


def _job(
    shell: str,
    home: Path,
    jid: str,
    command: str,
    stdin: bytes = DONE,
    *,
    cap: int = CAP,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[bytes, bytes, int | None]:
    """Run ``command`` as job ``jid``: (stdout, the command's stderr, its exit status)."""
    proc = _run(shell, start_script(jid, command, cap=cap, env=env, cwd=cwd), home, stdin)
    assert proc.returncode == 0, proc.stderr
    err, rc = parse_trailer(proc.stderr)
    return proc.stdout, err, rc


def _file(home: Path, jid: str, kind: str) -> Path:
    return home / JOBS_DIR / f"{jid}.{kind}"


def _exists(home: Path, jid: str) -> bool:
    """Whether any file of the job is left on the "host"."""
    return any((home / JOBS_DIR).glob(f"{jid}.*"))


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def _live_in_group(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting to be reaped don't)."""
    live = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry.name))
    return live


# -- job_id ----------------------------------------------------------------------------


def test_job_id_is_stable_per_execution_and_host() -> None:
    assert job_id("65f0a1b2c3", "web-01") == job_id("65f0a1b2c3", "web-01")
    assert job_id("65f0a1b2c3", "web-01") != job_id("65f0a1b2c3", "web-02")
    assert job_id("65f0a1b2c3", "web-01") != job_id("65f0a1b2c4", "web-01")


def test_job_id_is_safe_in_a_path_and_a_shell_word() -> None:
    jid = job_id("../x; rm -rf $HOME/`id`" + "a" * 50, "host name/../with $stuff")
    prefix, _, digest = jid.rpartition("-")
    assert prefix == ("xrmrfHOMEid" + "a" * 50)[:32]
    assert len(digest) == 12
    assert jid.replace("-", "").isalnum()


# -- running a command -----------------------------------------------------------------


def test_stdout_stderr_and_exit_status(shell: str, home: Path) -> None:
    out, err, rc = _job(shell, home, "j1", "echo out; echo err >&2; exit 3")
    assert out == b"out\n"
    assert err == b"err\n"
    assert rc == 3


def test_success_with_no_output(shell: str, home: Path) -> None:
    assert _job(shell, home, "j1", "true") == (b"", b"", 0)


def test_stderr_without_final_newline_is_kept_whole(shell: str, home: Path) -> None:
    out, err, rc = _job(shell, home, "j1", "printf 'no newline' >&2; printf 'x'")
    assert (out, err, rc) == (b"x", b"no newline", 0)


def test_binary_output_passes_through(shell: str, home: Path) -> None:
    out, _, rc = _job(shell, home, "j1", r"printf '\000\377\n'")
    assert (out, rc) == (b"\x00\xff\n", 0)


def test_command_does_not_read_the_wrapper_stdin(shell: str, home: Path) -> None:
    # The command gets /dev/null: "done" still reaches the wrapper.
    out, _, rc = _job(shell, home, "j1", "cat; echo after")
    assert (out, rc) == (b"after\n", 0)
    assert not _exists(home, "j1")


def test_env_and_cwd(shell: str, home: Path, tmp_path: Path) -> None:
    work = tmp_path / "work dir"
    work.mkdir()
    env = {"GREETING": 'it\'s $HOME `id` "x"', "EMPTY": "", "_N2": "2"}
    out, err, rc = _job(
        shell,
        home,
        "j1",
        'pwd; printf "%s|%s|%s\\n" "$GREETING" "$EMPTY" "$_N2"',
        env=env,
        cwd=str(work),
    )
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert Path(lines[0]).resolve() == work.resolve()
    assert lines[1] == 'it\'s $HOME `id` "x"||2'


def test_missing_cwd_fails_without_running_the_command(
    shell: str, home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    out, err, rc = _job(shell, home, "j1", f"touch {marker}", cwd=str(tmp_path / "nope"))
    assert rc == 1
    assert out == b""
    assert err  # the shell says why
    assert not marker.exists()


@pytest.mark.parametrize("name", ["1X", "A-B", "A B", "", "X;id", "É"])
def test_bad_env_name_raises(name: str) -> None:
    with pytest.raises(RunnerError, match="environment variable name"):
        start_script("j1", "true", cap=10, env={name: "v"})
    with pytest.raises(RunnerError):
        start_script("j1", "true", cap=10, env={name: "v"}, sudo="nopass")


def test_bad_sudo_mode_raises() -> None:
    with pytest.raises(ValueError, match="sudo"):
        start_script("j1", "true", cap=10, sudo="yes")


def test_output_is_capped_at_cap_plus_one_bytes(shell: str, home: Path) -> None:
    out, err, rc = _job(
        shell, home, "j1", "head -c 5000 /dev/zero; head -c 300 /dev/zero >&2", cap=100
    )
    assert rc == 0
    assert out == b"\0" * 101
    assert err == b"\0" * 101


def test_output_at_the_cap_is_whole(shell: str, home: Path) -> None:
    out, _, _ = _job(shell, home, "j1", "printf 0123456789", cap=10)
    assert out == b"0123456789"


def test_job_files_are_private(shell: str, home: Path) -> None:
    _job(shell, home, "j1", "echo secret", stdin=b"")
    jobs = home / JOBS_DIR
    assert stat.S_IMODE(jobs.stat().st_mode) == 0o700
    assert stat.S_IMODE(_file(home, "j1", "out").stat().st_mode) == 0o600
    assert stat.S_IMODE(_file(home, "j1", "pid").stat().st_mode) == 0o600


# -- the job files: kept until "done", attached to when run again -------------------------


def test_done_removes_the_job_files(shell: str, home: Path) -> None:
    _job(shell, home, "j1", "echo hi")
    assert not _exists(home, "j1")
    assert (home / JOBS_DIR).is_dir()


@pytest.mark.parametrize("stdin", [b"", b"done-ish\n"])
def test_without_done_the_job_files_stay(shell: str, home: Path, stdin: bytes) -> None:
    out, _, rc = _job(shell, home, "j1", "echo hi; exit 4", stdin=stdin)
    assert (out, rc) == (b"hi\n", 4)
    assert _file(home, "j1", "out").read_bytes() == b"hi\n"
    assert _file(home, "j1", "rc").read_text().strip() == "4"
    assert _file(home, "j1", "pid").read_text().strip().isdigit()


def test_running_again_attaches_instead_of_running_twice(
    shell: str, home: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    command = f"echo run >>{runs}; echo hello; echo warn >&2; exit 5"
    first = _job(shell, home, "j1", command, stdin=b"")  # Squall died before storing it
    assert first == (b"hello\n", b"warn\n", 5)
    assert _exists(home, "j1")
    second = _job(shell, home, "j1", command)
    assert second == first
    assert runs.read_text() == "run\n"
    assert not _exists(home, "j1")


def test_attaching_to_a_running_job_waits_for_it(home: Path, tmp_path: Path) -> None:
    # One job per shell, all at once: the attacher polls once a second.
    jobs = []
    for shell in SHELLS:
        runs = tmp_path / f"runs-{shell}"
        command = f"echo run >>{runs}; sleep 0.3; echo late"
        first = _start(shell, start_script(shell, command, cap=CAP), home)
        jobs.append((shell, runs, command, first))
    try:
        for _shell, runs, _, _ in jobs:
            _wait_for(runs.exists)
        attachers = [
            (_start(shell, start_script(shell, command, cap=CAP), home), first)
            for shell, _, command, first in jobs
        ]
        for second, _ in attachers:
            out, err = second.communicate(b"", timeout=10)
            assert second.returncode == 0
            assert (out, parse_trailer(err)) == (b"late\n", (b"", 0))
    finally:
        results = [first.communicate(DONE, timeout=10) for *_, first in jobs]
    for (shell, runs, _, first), (out, err) in zip(jobs, results, strict=True):
        assert first.returncode == 0
        assert out == b"late\n"
        assert parse_trailer(err) == (b"", 0)
        assert runs.read_text() == "run\n"
        assert not _exists(home, shell)


def test_attaching_to_a_job_whose_processes_are_gone_reports_255(shell: str, home: Path) -> None:
    # The host rebooted while the job ran: job files, no exit status, and no
    # process left in its group.
    gone = subprocess.Popen(["true"])
    gone.wait()
    (home / JOBS_DIR).mkdir(parents=True)
    _file(home, "j1", "pid").write_text(f"{gone.pid}\n")
    _file(home, "j1", "out").write_text("partial\n")
    started = time.monotonic()
    out, err, rc = _job(shell, home, "j1", "echo never")
    assert (out, err, rc) == (b"partial\n", b"", 255)
    assert time.monotonic() - started < 3
    assert not _exists(home, "j1")


# -- kill ------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_script_stops_the_command_and_its_group(
    shell: str, home: Path, tmp_path: Path
) -> None:
    jid = "j1"
    wrapper = _start(shell, start_script(jid, "echo started; sleep 30; echo never", cap=CAP), home)
    try:
        out_file = _file(home, jid, "out")
        _wait_for(lambda: out_file.exists() and out_file.read_bytes() == b"started\n")
        pgid = int(_file(home, jid, "pid").read_text())
        assert pgid == wrapper.pid  # the session leader's group
        killed = _run(shell, kill_script(jid, grace=2), home, stdin=b"")
        assert killed.returncode == 0
        out, err = wrapper.communicate(DONE, timeout=5)
    finally:
        if wrapper.returncode is None:
            wrapper.kill()
            wrapper.wait()
    assert wrapper.returncode == 0
    assert out == b"started\n"
    assert parse_trailer(err) == (b"", 143)
    assert not _exists(home, jid)
    _wait_for(lambda: not _live_in_group(pgid), timeout=3)


def test_kill_script_without_a_job_does_nothing(shell: str, home: Path) -> None:
    proc = _run(shell, kill_script("nothing-here"), home, stdin=b"")
    assert proc.returncode == 0
    assert proc.stdout == b""


def test_kill_script_grace_is_written_plainly() -> None:
    assert "sleep 5;" in kill_script("j1")
    assert "sleep 0.5;" in kill_script("j1", grace=0.5)
    assert "kill -TERM -" in kill_script("j1")


# -- uploaded scripts ------------------------------------------------------------------

SCRIPT = b"#!/bin/sh\nprintf '[%s]' \"$@\"; echo; pwd >&2\n"


def test_upload_then_run_the_script(shell: str, home: Path) -> None:
    up = _run(shell, upload_script("j1"), home, stdin=SCRIPT)
    assert up.returncode == 0, up.stderr
    path = home / JOBS_DIR / "j1.script"
    assert path.read_bytes() == SCRIPT
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / JOBS_DIR).stat().st_mode) == 0o700

    out, err, rc = _job(shell, home, "j1", f"{SCRIPT_PATH} a 'b c' '$x'", cwd="/")
    assert rc == 0, err
    assert out == b"[a][b c][$x]\n"
    assert err == b"/\n"
    assert not path.exists()  # removed with the job files


def test_upload_does_not_rewrite_the_script_of_a_started_job(shell: str, home: Path) -> None:
    _run(shell, upload_script("j1"), home, stdin=SCRIPT)
    _job(shell, home, "j1", f"{SCRIPT_PATH} x", stdin=b"")  # started, not collected
    again = _run(shell, upload_script("j1"), home, stdin=b"#!/bin/sh\necho replaced\n")
    assert again.returncode == 0
    assert (home / JOBS_DIR / "j1.script").read_bytes() == SCRIPT
    out, _, rc = _job(shell, home, "j1", f"{SCRIPT_PATH} x")
    assert (out, rc) == (b"[x]\n", 0)


def test_script_path_is_the_quoted_variable() -> None:
    assert SCRIPT_PATH == '"$S"'
    assert 'S="$J.script"' in upload_script("j1")
    assert 'S="$J.script"' in start_script("j1", "true", cap=1)


# -- parse_trailer ---------------------------------------------------------------------


def test_parse_trailer_splits_stderr_and_status() -> None:
    assert parse_trailer(b"oops\n\n" + TRAILER.encode() + b"=2\n") == (b"oops\n", 2)
    assert parse_trailer(b"\n" + TRAILER.encode() + b"=0\n") == (b"", 0)
    assert parse_trailer(b"\n" + TRAILER.encode() + b"=-1") == (b"", -1)


def test_parse_trailer_without_trailer() -> None:
    assert parse_trailer(b"") == (b"", None)
    assert parse_trailer(b"cut off mid-way") == (b"cut off mid-way", None)
    # The marker must start a line of its own.
    assert parse_trailer(TRAILER.encode() + b"=0\n") == (TRAILER.encode() + b"=0\n", None)


@pytest.mark.parametrize("tail", [b"", b"abc", b"1 2", b"0x1", b"1.5"])
def test_parse_trailer_with_garbage_status(tail: bytes) -> None:
    assert parse_trailer(b"err\n" + TRAILER.encode() + b"=" + tail) == (b"err", None)


def test_parse_trailer_uses_the_last_trailer() -> None:
    fake = b"\n" + TRAILER.encode() + b"=0\n"
    real = b"\n" + TRAILER.encode() + b"=7\n"
    assert parse_trailer(b"x" + fake + real) == (b"x" + fake, 7)


# -- sudo: the generated text only -----------------------------------------------------


def test_sudo_with_password_reads_it_from_stdin_and_pipes_it() -> None:
    script = start_script("j1", "id -u", cap=10, sudo="password", env={"A": "1 2", "B": "x"})
    lines = script.splitlines()
    assert lines[1] == "IFS= read -r P"  # the first stdin line, before anything runs
    assert "printf '%s\\n' \"$P\" | sudo -S -p '' -- env A='1 2' B=x " in script
    # The password is only ever expanded as printf's argument (a shell builtin).
    assert script.count("$P") == 1
    assert "export" not in script


def test_sudo_without_password() -> None:
    script = start_script("j1", "id -u", cap=10, sudo="nopass", cwd="/srv/app dir")
    assert "read -r P" not in script
    assert "$P" not in script
    assert 'sudo -n -- "${SHELL:-/bin/sh}" -c \'S=$1; shift; id -u\' squall-job "$S"' in script
    # cd happens before sudo, in the user's shell.
    assert script.index("cd -- '/srv/app dir' || exit 1") < script.index("sudo -n")
    assert " env " not in script


def test_without_sudo_env_is_exported_and_the_command_evaluated() -> None:
    script = start_script("j1", "echo $A", cap=10, env={"A": "a'b"})
    assert "sudo" not in script
    assert "export A='a'\"'\"'b'" in script
    assert "eval 'echo $A'" in script
