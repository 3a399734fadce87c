"""One home for every rule on what a user may type: each decided once, one message each.

The CLI, the config reader, the daemon's request handlers, the rules parser
and the network code all ask here. Imported by every CLI call, so it stays
light: nothing slow to import (re, ipaddress, signal) at module level.
"""

from __future__ import annotations

from lxcflow.errors import UsageError

#: a container name becomes a directory (and a cgroup) name
NAME_MAX = 64
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def container_name(name: str) -> str:
    """Return ``name`` if it can name a container (it becomes a directory name).

    Raises:
        UsageError: saying what is wrong with it.
    """
    problem = None
    if not name:
        problem = "it is empty"
    elif name in (".", ".."):
        problem = "'.' and '..' are not names"
    elif "/" in name:
        problem = "it contains '/'"
    elif len(name) > NAME_MAX:
        problem = f"it is {len(name)} characters long (at most {NAME_MAX})"
    elif not name[0].isascii() or not name[0].isalnum():
        # A leading '-' reads as an option to every tool; '.' hides the directory.
        problem = "it must start with a letter or a digit"
    else:
        bad = next((ch for ch in name if ch not in _NAME_CHARS), None)
        if bad is not None:
            problem = f"{bad!r} is not allowed (only letters, digits, '-', '_', '.')"
    if problem is not None:
        raise UsageError(f"invalid container name {name!r}: {problem}", name=name)
    return name


def seconds(value: float, what: str = "timeout") -> float:
    """Return ``value`` if it is a number of seconds, not negative (NaN is refused).

    Raises:
        UsageError: it is negative or NaN.
    """
    if not value >= 0:
        raise UsageError(f"{what} must be a number of seconds, not negative")
    return value
