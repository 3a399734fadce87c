"""mount(2) calls as the shim makes them: the flag and option bits, and an
fstab entry translated into one (the shim replays them; see shim/mounts.c)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxcflow.config import MountEntry
from lxcflow.errors import ConfigError

# <linux/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# Option bits understood by the shim (shim/shim.h: M_*).
OPT_OPTIONAL = 1
OPT_MKDIR = 2
OPT_MKFILE = 4
OPT_BIND_RO = 8
OPT_SRC_IN_ROOT = 16  # the source is a path in the container too (binds of /proc/sys)
OPT_REMOUNT = 32  # new flags for what is mounted on the target

#: fstab option -> (flags to set, flags to clear)
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "defaults": (0, 0),
    "ro": (MS_RDONLY, 0),
    "rw": (0, MS_RDONLY),
    "bind": (MS_BIND, 0),
    "rbind": (MS_BIND | MS_REC, 0),
    "nosuid": (MS_NOSUID, 0),
    "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0),
    "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0),
    "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "noatime": (MS_NOATIME, 0),
    "nodiratime": (MS_NODIRATIME, 0),
    "relatime": (MS_RELATIME, 0),
    "strictatime": (MS_STRICTATIME, 0),
    "private": (MS_PRIVATE, 0),
    "rprivate": (MS_PRIVATE | MS_REC, 0),
    "slave": (MS_SLAVE, 0),
    "rslave": (MS_SLAVE | MS_REC, 0),
    "shared": (MS_SHARED, 0),
    "rshared": (MS_SHARED | MS_REC, 0),
    # fstab(5) words that mean nothing to mount(2)
    "auto": (0, 0),
    "noauto": (0, 0),
    "user": (0, 0),
    "nouser": (0, 0),
}

@dataclass(frozen=True, slots=True)
class MountOp:
    """One mount(2) call, as the shim makes it."""

    source: str
    target: str
    fstype: str
    flags: int
    data: str
    opts: int  # OPT_* bits


def container_target(target: str, rootfs: Path | None) -> str:
    """Where in the container an fstab target is: a relative target is
    relative to the container's root, as is an absolute one (lxcflow's own
    reading); one that names a path under the root file system as the host
    sees it (``/var/lib/lxc/web/rootfs/bin``, as LXC's lxc-sshd writes
    them) is mapped to the same place inside (``/bin``), as LXC maps it."""
    if rootfs is not None and target.startswith("/"):
        for prefix in dict.fromkeys((str(rootfs), os.path.realpath(rootfs))):
            if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
                return "/" + target[len(prefix):].lstrip("/")
    return target


def mount_op(entry: MountEntry, rootfs: Path | None = None) -> MountOp:
    """Translate an fstab entry into a mount(2) call (its target mapped by
    :func:`container_target` for a container with root file system ``rootfs``).

    Raises:
        ConfigError: at the entry's file:line for what mount(2) cannot take.
    """
    flags = 0
    opts = 0
    data: list[str] = []
    for option in entry.options:
        if option in _FLAG_OPTIONS:
            on, off = _FLAG_OPTIONS[option]
            flags = (flags | on) & ~off
        elif option == "create=dir":
            opts |= OPT_MKDIR
        elif option == "create=file":
            opts |= OPT_MKFILE
        elif option in ("optional", "nofail"):
            opts |= OPT_OPTIONAL
        elif any(c in option for c in "\x00\x1f"):
            raise ConfigError(f"bad mount option {option!r}", file=entry.file, line=entry.line)
        else:
            data.append(option)  # filesystem-specific (size=, mode=, ...)
    fstype = entry.fstype
    if flags & MS_BIND:
        fstype = ""
        if flags & MS_RDONLY:
            opts |= OPT_BIND_RO
    elif fstype in ("none", ""):
        raise ConfigError(
            f"mount of {entry.source} on {entry.target} needs a filesystem type or 'bind'",
            file=entry.file,
            line=entry.line,
        )
    target = container_target(entry.target, rootfs)
    return MountOp(entry.source, target, fstype, flags, ",".join(data), opts)
