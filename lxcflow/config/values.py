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

_SIZE_RE = re.compile(r"([0-9]+)\s*([kKmMgG]?)[bB]?")


def byte_size(value: str) -> int:
    """``lxc.console.size``: bytes, with kB/MB/GB (as LXC, powers of 1024)."""
    match = _SIZE_RE.fullmatch(value)
    if match is None or int(match[1]) < 4096 >> (10 * " kmg".index(match[2].lower() or " ")):
        raise ValueError(f"{value!r} is not a size of at least 4096 bytes (as 4096, 64kB, 4MB)")
    return int(match[1]) << (10 * " kmg".index(match[2].lower() or " "))


def tty_dir(value: str) -> str:
    """``lxc.tty.dir``: one directory name under /dev."""
    if "/" in value or value in (".", ".."):
        raise ValueError(f"{value!r} is not a directory name under /dev (no '/')")
    return value


# lxc.arch: the 32-bit names set a 32-bit personality (uname says i686), as
# LXC does; the 64-bit names are this host's own. Other architectures would
# need an emulator: refused rather than ignored.
ARCHES = {
    **dict.fromkeys("x86 i386 i486 i586 i686 linux32".split(), "linux32"),
    **dict.fromkeys("x86_64 amd64 linux64".split(), "linux64"),
}


def arch(value: str) -> str:
    if value not in ARCHES:
        raise ValueError(f"{value!r} is not an architecture this host runs "
                         f"({', '.join(sorted(ARCHES))})")
    return ARCHES[value]


#: lxc.prlimit.NAME -> RLIMIT_* number (<asm-generic/resource.h>)
PRLIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
    "nice": 13, "rtprio": 14, "rttime": 15,
}
RLIM_INFINITY = (1 << 64) - 1


def _limit(word: str) -> int:
    if word == "unlimited":
        return RLIM_INFINITY
    if not DIGITS_RE.fullmatch(word) or int(word) >= RLIM_INFINITY:
        raise ValueError(f"{word!r} is not a limit (a number or 'unlimited')")
    return int(word)


def prlimit(value: str) -> tuple[int, int]:
    """``SOFT[:HARD]`` (one number sets both), as LXC reads it."""
    soft, _, hard = value.partition(":")
    pair = (_limit(soft), _limit(hard or soft))
    if pair[0] > pair[1]:
        raise ValueError(f"soft limit {soft} is above the hard limit {hard}")
    return pair


#: capability names, by number (<linux/capability.h>), as lxc.cap.* spells them
CAPABILITIES = (
    "chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap"
    " linux_immutable net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner"
    " sys_module sys_rawio sys_chroot sys_ptrace sys_pacct sys_admin sys_boot sys_nice"
    " sys_resource sys_time sys_tty_config mknod lease audit_write audit_control setfcap"
    " mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf"
    " checkpoint_restore"
).split()


def capabilities(value: str) -> tuple[str, ...]:
    """``lxc.cap.drop`` / ``lxc.cap.keep`` words: names with or without
    ``CAP_``, any case (``none``, for keep, is kept as the word)."""
    names = []
    for word in value.split():
        name = word.lower().removeprefix("cap_")
        if name not in CAPABILITIES and name != "none":
            raise ValueError(f"{word!r} is not a capability (as sys_admin or CAP_SYS_ADMIN)")
        names.append(name)
    return tuple(names)
