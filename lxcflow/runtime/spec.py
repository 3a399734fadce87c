"""Turn a container's config into the shim's spec.

All parsing and validation happens here, in Python; the C shim only replays
the records (see the header of ``shim/main.c`` for the format).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxcflow.config import ContainerConfig, MountEntry
from lxcflow.errors import ConfigError, UsageError

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

# <linux/sched.h>; the pid namespace is always new and made by the shim itself.
CLONE_FLAGS = {
    "mnt": 0x00020000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
    "cgroup": 0x02000000,
}

# Option bits understood by the shim (shim/shim.h: M_*).
OPT_OPTIONAL = 1
OPT_MKDIR = 2
OPT_MKFILE = 4
OPT_BIND_RO = 8

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

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

class RunMode(enum.StrEnum):
    """How a container runs its command (spelled so in the spec and state.json)."""

    SYSTEM = "system"  # the command is PID 1 (lxc-start)
    APP = "app"  # a minimal init is PID 1 and runs the command (lxc-execute)


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


def namespace_flags(names: Iterable[str]) -> int:
    """The unshare(2) flags for namespaces other than pid."""
    flags = 0
    for name in names:
        flags |= CLONE_FLAGS.get(name, 0)
    return flags


def container_env(
    config: ContainerConfig, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a container's command starts with (LXC starts from a clean one)."""
    # container=lxc: what systemd (systemd-detect-virt) and distro scripts look
    # for to know they run under LXC, and behave as they do there.
    env = {"PATH": DEFAULT_PATH, "container": "lxc", "HOME": "/root"}
    env.update(extra or {})
    env.update(dict(config.environment))
    return env


def build_spec(
    *,
    name: str,
    mode: RunMode,
    config: ContainerConfig,
    command: Sequence[str],
    cgroup_procs: Sequence[Path],
    exit_file: Path,
    env: Mapping[str, str],
    cwd: str | None = None,
    netns: bool = False,
) -> bytes:
    """The spec file's bytes for one start of a container (``netns``: it joins
    a network namespace the daemon prepared, passed to the shim as fd 4;
    otherwise a new one of its own has only lo, which the shim brings up).

    Raises:
        UsageError: a command or environment entry the kernel cannot take.
    """
    new = config.new_namespaces
    records: list[tuple[str, str]] = [
        ("mode", mode),
        ("ns", str(namespace_flags(new - {"pid"} - ({"net"} if netns else set())))),
        ("exit", str(exit_file)),
        # The caller's directory means something only on the host's root.
        ("cwd", config.init_cwd or (cwd if config.rootfs is None else None) or "/"),
    ]
    if netns:
        records.append(("netns", "1"))
    elif "net" in new:
        records.append(("loopback", "1"))
    if "uts" in new:
        # As LXC: without lxc.uts.name the hostname is the container's name.
        records.append(("hostname", config.hostname or name))
    if config.rootfs is not None:
        records += [("rootfs", str(config.rootfs)), ("autodev", "1")]
    records += [("cgroup", str(p)) for p in cgroup_procs]
    for entry in config.mount_entries:
        op = mount_op(entry, config.rootfs)
        fields = (op.source, op.target, op.fstype, str(op.flags), op.data, str(op.opts))
        records.append(("mount", "\x1f".join(fields)))
    return encode_records(records, command, env)


def encode_records(records: list[tuple[str, str]], command: Sequence[str],
                   env: Mapping[str, str]) -> bytes:
    """``records``, then the command's ``arg`` and ``env`` records, as the
    NUL-terminated ``key=value`` the shim reads (its keeper and attach modes).

    Raises:
        UsageError: a NUL byte, or an environment name the kernel cannot take.
    """
    records = [*records, *(("arg", arg) for arg in command)]
    for key, value in env.items():
        if not key or "=" in key:
            raise UsageError(f"invalid environment variable name {key!r}")
        records.append(("env", f"{key}={value}"))
    out = bytearray()
    for key, value in records:
        if "\x00" in value:
            raise UsageError(f"NUL byte in {key} {value!r}")
        out += f"{key}={value}".encode() + b"\x00"
    return bytes(out)


def write_spec(path: Path, data: bytes) -> None:
    """Write the spec where only root can read it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
