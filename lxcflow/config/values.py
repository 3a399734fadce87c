"""Parsers of single config values.

Each takes a stripped, non-empty value and returns its parsed form, or raises
ValueError (or :class:`~lxcflow.errors.UsageError`, from the rules shared with
the rest of lxcflow in :mod:`lxcflow.validate`) with a reason that reads well
after ``bad value for KEY: ``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lxcflow.config.model import MOUNT_AUTO, NAMESPACES, NET_TYPES

DIGITS_RE = re.compile(r"[0-9]+")


def matching(pattern: str, what: str) -> Callable[[str], str]:
    regex = re.compile(pattern)

    def parse(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return parse


def integer(low: int, high: int | None, what: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value) if DIGITS_RE.fullmatch(value) else -1
        if number < low or (high is not None and number > high):
            raise ValueError(f"{value!r} is not {what}")
        return number

    return parse


def signed_integer(what: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not DIGITS_RE.fullmatch(value.removeprefix("-")):
            raise ValueError(f"{value!r} is not {what}")
        return int(value)

    return parse


def words(allowed: frozenset[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        given = tuple(value.split())
        for word in given:
            if word not in allowed:
                raise ValueError(f"{word!r} is not {what} ({', '.join(sorted(allowed))})")
        return given

    return parse


# '_' is beyond RFC 1123, but the kernel takes it and the classic lxc-sshd
# config names its host my_ssh_container.
hostname = matching(r"[A-Za-z0-9._-]{1,64}", "a hostname (1-64 letters, digits, '.-_')")
hwaddr = matching(
    r"[0-9A-Fa-fxX]{2}(:[0-9A-Fa-fxX]{2}){5}", "a MAC address like 00:16:3e:xx:xx:xx"
)
absolute = matching(r"/.*", "an absolute path")
net_type = matching("|".join(NET_TYPES), f"a network type ({', '.join(sorted(NET_TYPES))})")
_keep_words = words(NAMESPACES, "a namespace")


def keep(value: str) -> frozenset[str]:
    kept = frozenset(_keep_words(value))
    # The runtime mounts /proc and may pivot_root: in the host's mount
    # namespace that would rearrange the host. The pid namespace makes
    # "every process of the container" and its init well defined.
    for always_new in ("mnt", "pid"):
        if always_new in kept:
            raise ValueError(f"lxcflow always gives a container its own {always_new} namespace")
    return kept
mount_auto = words(MOUNT_AUTO, "an automatic mount")
