"""Which runner runs which runner type, looked up by name.

Runner modules are imported lazily, on first use of a name, so a broken or
heavy runner does not slow down or break the others. To add a runner, add
its name and ``"module:ClassName"`` to :data:`RUNNER_SPECS` (or call
:func:`register`); the class must build with no arguments and satisfy
:class:`squall.runners.base.Runner`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator, Mapping

from squall.errors import NotFound, RunnerError
from squall.runners.base import Runner, RunnerType

__all__ = ["RUNNERS", "RUNNER_SPECS", "get_runner", "register", "runner_types"]

log = logging.getLogger(__name__)

RUNNER_SPECS: dict[str, str] = {
    "local-shell-cmd": "squall.runners.local:LocalShellCommandRunner",
    "local-shell-script": "squall.runners.local:LocalShellScriptRunner",
    "python-script": "squall.runners.python_script:PythonScriptRunner",
    "http-request": "squall.runners.http:HttpRequestRunner",
    "noop": "squall.runners.noop:NoopRunner",
    "orquesta": "squall.runners.workflow:OrquestaRunner",
    "action-chain": "squall.runners.workflow:ActionChainRunner",
    "inquirer": "squall.runners.inquirer:InquirerRunner",
    "remote-shell-cmd": "squall.runners.remote:RemoteShellCommandRunner",
    "remote-shell-script": "squall.runners.remote:RemoteShellScriptRunner",
    "remote-reboot": "squall.runners.remote:RemoteRebootRunner",
    "rollout": "squall.runners.rollout:RolloutRunner",
    "tcp": "squall.runners.tcp:TcpRunner",
}

_instances: dict[str, Runner] = {}
_lock = threading.Lock()


def register(name: str, spec: str | Runner) -> None:
    """Register a runner: a ``"module:ClassName"`` spec (lazy) or a runner instance."""
    with _lock:
        if isinstance(spec, str):
            RUNNER_SPECS[name] = spec
            _instances.pop(name, None)
        else:
            RUNNER_SPECS.setdefault(name, f"{type(spec).__module__}:{type(spec).__qualname__}")
            _instances[name] = spec


def _load(name: str) -> Runner:
    spec = RUNNER_SPECS[name]
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        runner: Runner = getattr(module, class_name)()
    except Exception as exc:
        raise RunnerError(f"runner '{name}' could not be loaded from {spec}: {exc}") from exc
    return runner


def get_runner(name: str) -> Runner:
    """The runner for runner type ``name``; NotFound when there is none."""
    runner = _instances.get(name)
    if runner is not None:
        return runner
    if name not in RUNNER_SPECS:
        known = ", ".join(sorted(RUNNER_SPECS))
        raise NotFound(f"no runner named '{name}'; known runners: {known}")
    with _lock:
        runner = _instances.get(name)
        if runner is None:
            runner = _load(name)
            _instances[name] = runner
    return runner


def runner_types() -> list[RunnerType]:
    """Metadata of every runner that loads, sorted by name (a broken one is logged, skipped)."""
    types: list[RunnerType] = []
    for name in sorted(RUNNER_SPECS):
        try:
            types.append(get_runner(name).meta)
        except RunnerError as exc:
            log.warning("%s", exc)
    return types


class _Runners(Mapping[str, Runner]):
    """``RUNNERS[name]`` loads on first access; iteration lists registered names."""

    def __getitem__(self, name: str) -> Runner:
        try:
            return get_runner(name)
        except NotFound:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(RUNNER_SPECS))

    def __len__(self) -> int:
        return len(RUNNER_SPECS)

    def __contains__(self, name: object) -> bool:
        return name in RUNNER_SPECS


RUNNERS: Mapping[str, Runner] = _Runners()
