"""The small job wrapper every remote command runs under.

A command started over SSH dies with nothing to show for it when the
connection does, and Squall restarting must neither lose a command still
running on a host nor start it twice. So each command runs detached from the
SSH session, with a few job files on the host (``~/.squall/jobs/<job
id>.pid``, ``.out``, ``.err``, ``.rc``) holding the process group to stop on
timeout or cancel, its output and its exit status. The job id is derived
from the execution and the host, so running the wrapper again for the same
pair *attaches* to the job instead of starting another: creating the pid
file exclusively is the atomic "start once".

Protocol, one SSH exec channel per host:

1. the wrapper creates the job's pid file and starts the command in the
   background (its stdout/stderr go to files), or attaches when it exists;
2. when the command has ended, it prints the output (each stream capped at
   ``cap + 1`` bytes, so the reader can tell it was cut) and a trailer line
   on stderr carrying the exit status;
3. it closes its output (the reader sees the end of both streams) and waits
   for one line on stdin: ``done`` once Squall has stored the
   result, and only then removes the job files. Without that line (Squall
   died meanwhile) they stay and the next attach collects them again.

With ``sudo`` and a password, the first stdin line is the password; it is
read by the shell's ``read`` builtin and piped to ``sudo -S``, so it never
appears on a command line. The wrapper is POSIX sh (the remote login shell
runs it: bash, dash, zsh, ksh); it forks little, because on a large fleet
the cost of every extra process on each host adds up: the usual run execs
nothing but the command (and ``rm`` in place of the wrapper at the end).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping

from squall.errors import RunnerError

__all__ = [
    "JOBS_DIR",
    "SCRIPT_PATH",
    "job_id",
    "kill_script",
    "parse_trailer",
    "start_script",
    "upload_script",
]

JOBS_DIR = ".squall/jobs"  # under the remote user's home
TRAILER = "__squall_job_rc__"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def job_id(execution_id: str, host: str) -> str:
    """Stable per execution and host, and safe in a path and a shell word."""
    digest = hashlib.sha256(host.encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9]", "", execution_id)[:32]
    return f"{safe}-{digest}"


def _prelude(jid: str) -> str:
    return f'umask 077; B="$HOME/{JOBS_DIR}"; J="$B/{jid}"; S="$J.script"\n'


def _command_line(
    command: str, *, sudo: str, env: Mapping[str, str] | None, cwd: str | None
) -> str:
    """What the detached subshell runs: cd, environment, then the command."""
    parts = []
    if cwd:
        parts.append(f"cd -- {shlex.quote(cwd)} || exit 1")
    assignments = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise RunnerError(f"environment variable name {name!r} is not valid in a shell")
        assignments.append(f"{name}={shlex.quote(value)}")
    if sudo:
        # sudo resets the environment, so variables go through env(1) after it.
        env_prefix = ("env " + " ".join(assignments) + " ") if assignments else ""
        how = "-S -p ''" if sudo == "password" else "-n"
        # $S (the uploaded script's path) is passed on: sudo drops variables.
        inner = shlex.quote("S=$1; shift; " + command)
        run = f'sudo {how} -- {env_prefix}"${{SHELL:-/bin/sh}}" -c {inner} squall-job "$S"'
        if sudo == "password":
            run = f"printf '%s\\n' \"$P\" | {run}"
        parts.append(run)
    else:
        parts.extend(f"export {a}" for a in assignments)
        parts.append(f"eval {shlex.quote(command)}")
    return "; ".join(parts)


def start_script(
    jid: str,
    command: str,
    *,
    cap: int,
    sudo: str = "",
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """The wrapper: start (or attach to) job ``jid`` and report its outcome.

    ``sudo`` is "" (none), "nopass" or "password" (first stdin line)."""
    if sudo not in ("", "nopass", "password"):
        raise ValueError(f"bad sudo mode {sudo!r}")
    line = _command_line(command, sudo=sudo, env=env, cwd=cwd)
    read_password = "IFS= read -r P\n" if sudo == "password" else ""
    # "set -C" makes creating the pid file an O_EXCL open: the atomic "start
    # once", without running mkdir. The command's group is the wrapper's own
    # (sshd made it a session leader), so $$ names it for kill_script. The
    # collecting subshell ignores TERM so it outlives a stopped command and
    # records its status; the command gets the signals back. HUP stays
    # ignored: the command must outlive the session. The attach loop waits
    # for the pid while the starting wrapper may still be writing it.
    return (
        _prelude(jid)
        + read_password
        + '[ -d "$B" ] || mkdir -p "$B" || exit 250\n'
        + "set -C\n"
        + 'if echo $$ 2>/dev/null >"$J.pid"; then\n'
        + "  set +C\n"
        + "  ( trap '' HUP TERM INT\n"
        + f'    ( trap - TERM INT; {line} ) </dev/null >"$J.out" 2>"$J.err"\n'
        + '    echo $? >"$J.rc" ) 2>/dev/null &\n'
        + "  trap '' TERM HUP\n"
        + "  wait $!\n"
        + "else\n"
        + "  set +C; n=0\n"
        + '  while [ ! -s "$J.rc" ]; do\n'
        + '    p=; read p 2>/dev/null <"$J.pid"\n'
        + '    if [ -n "$p" ]; then kill -0 -"$p" 2>/dev/null || break\n'
        + '    else n=$((n + 1)); [ "$n" -gt 30 ] && break; fi\n'
        + "    sleep 1\n"
        + "  done\n"
        + "fi\n"
        + 'rc=255; [ -s "$J.rc" ] && read rc <"$J.rc"\n'
        + f'[ -s "$J.out" ] && head -c {cap + 1} "$J.out"\n'
        + f'[ -s "$J.err" ] && head -c {cap + 1} "$J.err" >&2\n'
        + f"printf '\\n{TRAILER}=%s\\n' \"$rc\" >&2\n"
        # Closing both streams ends the channel's output (the reader sees EOF)
        # while the wrapper stays to hear whether the result was stored.
        + "exec >&- 2>&-\n"
        + "IFS= read -r A\n"
        + '[ "$A" = done ] && exec rm -f "$J.pid" "$J.out" "$J.err" "$J.rc" "$S"\n'
        + "exit 0\n"
    )


def upload_script(jid: str) -> str:
    """Stores stdin as the job's script, unless the job already started
    (a re-attach must not rewrite a script that may be running)."""
    return (
        _prelude(jid)
        + '[ -e "$J.pid" ] && exit 0\n'
        + '[ -d "$B" ] || mkdir -p "$B" || exit 250\n'
        + 'cat >"$S" && chmod 700 "$S"\n'
    )


# The uploaded script, as a word a command can use (the wrapper sets $S).
SCRIPT_PATH = '"$S"'


def kill_script(jid: str, grace: float = 5.0) -> str:
    """Stop the job's processes: TERM now, KILL after ``grace`` seconds."""
    return (
        _prelude(jid)
        + 'read p 2>/dev/null <"$J.pid" || exit 0\n'
        + 'kill -TERM -"$p" 2>/dev/null\n'
        + f'( sleep {grace:g}; kill -KILL -"$p" ) >/dev/null 2>&1 </dev/null &\n'
        + "exit 0\n"
    )


def parse_trailer(stderr: bytes) -> tuple[bytes, int | None]:
    """Split the wrapper's stderr into the command's stderr and its exit status
    (None when the trailer is missing: the wrapper was cut off)."""
    marker = b"\n" + TRAILER.encode() + b"="
    at = stderr.rfind(marker)
    if at < 0:
        return stderr, None
    tail = stderr[at + len(marker) :].strip()
    try:
        rc = int(tail)
    except ValueError:
        return stderr[:at], None
    return stderr[:at], rc
