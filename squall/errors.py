"""Every error Squall raises on purpose, in one tree.

    SquallError                 exit_code 1, HTTP 500 unless a subclass says otherwise
    ├── ConfigError             bad settings or environment (exit 2)
    ├── InvalidInput            the caller sent something wrong (HTTP 400)
    │   ├── ParameterError      an action parameter broke a rule of its schema
    │   └── ContentError        a pack file is malformed (path, line, reason)
    ├── NotFound                (HTTP 404)
    ├── Conflict                (HTTP 409)
    ├── Unauthorized            no or bad credentials (HTTP 401)
    ├── Forbidden               credentials fine, action not allowed (HTTP 403)
    ├── StoreUnavailable        the database cannot be reached (HTTP 503)
    ├── RunnerError             a runner could not run an action at all
    └── ApiError                the CLI got an error answer from the API

Messages are written for the person reading them: they say what was wrong
and, where it helps, what to do. Foreign exceptions (SQLAlchemy, httpx, OS
errors) are translated at the edge that meets them, with ``raise ... from``.
"""

from __future__ import annotations


class SquallError(Exception):
    """Root of Squall's errors."""

    exit_code = 1
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message}


class ConfigError(SquallError):
    exit_code = 2


class InvalidInput(SquallError):
    http_status = 400


class ParameterError(InvalidInput):
    """An action parameter is missing, of the wrong type, or breaks its schema."""

    def __init__(self, parameter: str, rule: str) -> None:
        super().__init__(f"parameter '{parameter}': {rule}")
        self.parameter = parameter
        self.rule = rule

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "parameter": self.parameter, "rule": self.rule}


class ContentError(InvalidInput):
    """A file of a pack cannot be used; the rest of the pack still loads."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "path": self.path, "line": self.line}


class NotFound(SquallError):
    http_status = 404


class Conflict(SquallError):
    http_status = 409


class Unauthorized(SquallError):
    http_status = 401


class Forbidden(SquallError):
    http_status = 403


class StoreUnavailable(SquallError):
    http_status = 503


class RunnerError(SquallError):
    pass


class ApiError(SquallError):
    """An error answer from the Squall API, as seen by a client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
