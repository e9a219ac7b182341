"""Child-process side of the ``python-script`` runner (run as a script).

Usage: ``python -u python_wrapper.py --result-fd N`` with a JSON document on
stdin::

    {"entry_point": "/path/to/action.py", "pack": "mypack",
     "parameters": {...}, "config": {...}, "log_level": "DEBUG"}

It loads the entry point, picks the action class, instantiates it with the
pack config (and an action service), calls ``run(**parameters)`` and writes
one JSON document to fd ``N``:

* ``{"status": true|false|null, "result": ...}`` after ``run`` returned;
* ``{"error": "...", "traceback": "..."}`` when loading or running raised
  (the traceback is also printed to stderr; the exit code is 1).

The action's own prints stay on stdout and its logging on stderr. Only the
standard library is used, and the code runs on the pack's interpreter, which
may be older than Squall's.
"""

from __future__ import annotations

import os
import sys

# Running as a script puts this directory first on sys.path, where modules
# such as ``http.py`` would shadow the standard library for the action.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)

import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

INVALID_STATUS_EXIT_CODE = 220


class _Failure(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _write_result(fd: int, document: dict[str, Any]) -> None:
    try:
        data = json.dumps(document).encode("utf-8")
    except (TypeError, ValueError):
        # Not JSON as such: fall back to text for whatever is not serializable.
        try:
            data = json.dumps(document, default=str).encode("utf-8")
        except (TypeError, ValueError):  # e.g. a circular structure
            fallback: dict[str, Any] = {key: str(value) for key, value in document.items()}
            fallback["status"] = document.get("status")
            data = json.dumps(fallback).encode("utf-8")
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_payload() -> dict[str, Any]:
    raw = sys.stdin.buffer.read()
    # Actions that read stdin get EOF rather than whatever the parent left there.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    payload = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    if not isinstance(payload, dict):
        raise _Failure("the runner sent a malformed payload")
    return payload


def _base_action_class() -> type | None:
    try:
        from st2common.runners.base_action import Action
    except Exception:  # the shim is missing from PYTHONPATH: fall back to duck typing
        return None
    base: type = Action
    return base


def _load_module(path: str) -> Any:
    action_dir = os.path.dirname(os.path.realpath(path))
    if action_dir not in sys.path and action_dir + os.sep not in sys.path:
        sys.path.append(action_dir)
    stem = os.path.splitext(os.path.basename(path))[0] or "action"
    name = stem if stem not in sys.modules else "squall_action_" + stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _Failure(f'File "{path}" is not a python module')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _pick_action_class(module: Any, base: type | None, path: str) -> type:
    classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__
    ]
    candidates = []
    if base is not None:
        candidates = [c for c in classes if issubclass(c, base) and c is not base]
    if not candidates:
        candidates = [c for c in classes if callable(getattr(c, "run", None))]
    candidates = [c for c in candidates if not inspect.isabstract(c)]
    # Prefer the most derived classes when a file defines a base and a subclass.
    leaves = [c for c in candidates if not any(o is not c and issubclass(o, c) for o in candidates)]
    if not leaves:
        raise _Failure(f'File "{path}" has no action class (a class with a run() method).')
    return leaves[0]


def _instantiate(cls: type, config: dict[str, Any], service: Any) -> Any:
    try:
        return cls(config=config, action_service=service)
    except TypeError as exc:
        if "action_service" not in str(exc):
            raise
    instance = cls(config=config)
    instance.action_service = service
    return instance


def _run(payload: dict[str, Any]) -> dict[str, Any]:
    path = payload.get("entry_point")
    if not isinstance(path, str) or not path:
        raise _Failure("no entry_point given")
    pack = str(payload.get("pack") or "unknown")
    log_level = str(payload.get("log_level") or "DEBUG")
    config = payload.get("config") or {}
    parameters = payload.get("parameters") or {}
    if not isinstance(config, dict):
        raise _Failure("the pack config must be an object")
    if not isinstance(parameters, dict):
        raise _Failure("the action parameters must be an object")

    base = _base_action_class()
    service: Any = None
    if base is not None:
        from st2common.runners import base_action
        from st2common.services.datastore import ActionService

        base_action.DEFAULT_LOG_LEVEL = log_level
        base_action.DEFAULT_PACK = pack
    sys.argv = [path]
    try:
        module = _load_module(path)
    except _Failure:
        raise
    except Exception as exc:
        raise _Failure(
            f'Failed to load action class from file "{path}": {type(exc).__name__}: {exc}'
        ) from exc
    cls = _pick_action_class(module, base, path)
    if base is not None:
        service = ActionService(pack=pack, class_name=cls.__name__, log_level=log_level)
    action = _instantiate(cls, config, service)
    output = action.run(**parameters)

    status: Any = None
    result = output
    if isinstance(output, tuple) and len(output) == 2:
        status, result = output
    if status is not None and not isinstance(status, bool):
        raise _Failure(
            "run() returned a 2-tuple whose first item is not True/False "
            f"(got {status!r}). Return (True|False, result), or return a list "
            "instead of a tuple.",
            INVALID_STATUS_EXIT_CODE,
        )
    return {"status": status, "result": result}


def _format_exception(exc: BaseException) -> str:
    """The traceback without the wrapper's own frames (they say nothing to the user)."""
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def main(argv: list[str]) -> int:
    try:
        result_fd = int(argv[argv.index("--result-fd") + 1])
    except (ValueError, IndexError):
        sys.stderr.write("usage: python_wrapper.py --result-fd N (payload on stdin)\n")
        return 2
    os.set_inheritable(result_fd, False)  # the action's own children must not hold it

    exit_code = 0
    try:
        document = _run(_read_payload())
    except _Failure as exc:
        cause = exc.__cause__
        tb = _format_exception(cause) if cause is not None else ""
        sys.stderr.write(f"{exc}\n{tb}")
        document = {"error": str(exc), "traceback": tb}
        exit_code = exc.exit_code
    except Exception as exc:
        tb = _format_exception(exc)
        sys.stderr.write(tb)
        document = {"error": f"{type(exc).__name__}: {exc}", "traceback": tb}
        exit_code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    try:
        _write_result(result_fd, document)
    finally:
        os.close(result_fd)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
