"""One error hierarchy for the daemon, the API and the client.

Every error carries a one-line message for people and structured `details`
for programs. The API sends ``{type, message, details}``; the client rebuilds
the same class with :func:`from_dict`, so ``main()`` maps errors to exit codes
in one place whichever side raised them. Errors are named by who caused them:
the user (bad input, wrong state) or something outside (kernel, daemon).
"""

from __future__ import annotations

# The CLI imports this module on every call: typing costs milliseconds there.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

class LxcflowError(Exception):
    """Base of every error lxcflow reports to a user.

    Args:
        message: one line, says what was wrong.
        **details: structured fields (JSON-serialisable) for programs.
    """

    #: process exit code for the CLI: 1 = the operation failed.
    exit_code = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The wire form sent by the API."""
        return {"type": type(self).__name__, "message": self.message, "details": self.details}


class UsageError(LxcflowError):
    """The caller asked for something malformed (bad option, name, signal)."""

    exit_code = 2


class ConfigError(LxcflowError):
    """A configuration file is wrong; the message starts with ``file:line:``."""

    def __init__(self, reason: str, *, file: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}", file=file, line=line, reason=reason)


class NotFound(LxcflowError):
    """No container of that name exists."""


class AlreadyExists(LxcflowError):
    """A container of that name already exists."""


class WrongState(LxcflowError):
    """The container is not in a state the operation allows."""


class InvalidTransition(LxcflowError):
    """A state change the transition table forbids: a bug in lxcflow."""


class StartFailed(LxcflowError):
    """A container could not be started; it went through ABORTING to STOPPED."""


class CgroupError(LxcflowError):
    """The cgroup filesystem refused an operation (the kernel said no)."""


class NetworkError(LxcflowError):
    """The kernel refused a network change (netlink said no)."""


class OperationTimeout(LxcflowError):
    """An operation did not reach its state before its deadline."""


class DaemonUnavailable(LxcflowError):
    """No daemon answers on the socket and none could be started."""


class ProtocolError(LxcflowError):
    """A request or reply on the control socket was malformed."""


_BY_NAME: dict[str, type[LxcflowError]] = {
    cls.__name__: cls
    for cls in (
        LxcflowError,
        UsageError,
        NotFound,
        AlreadyExists,
        WrongState,
        InvalidTransition,
        StartFailed,
        CgroupError,
        NetworkError,
        OperationTimeout,
        DaemonUnavailable,
        ProtocolError,
    )
}


def from_dict(data: dict[str, Any]) -> LxcflowError:
    """Rebuild an error sent by the API (unknown types become LxcflowError)."""
    message = str(data.get("message", "unknown error"))
    details = data.get("details") or {}
    if data.get("type") == "ConfigError" and "file" in details:
        return ConfigError(
            str(details.get("reason", message)), file=details["file"], line=details.get("line")
        )
    cls = _BY_NAME.get(str(data.get("type")), LxcflowError)
    return cls(message, **details)
