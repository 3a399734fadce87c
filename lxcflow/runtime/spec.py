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

from lxcflow.cgroups.layout import Hierarchy
from lxcflow.config import ContainerConfig
from lxcflow.config.values import PRLIMITS
from lxcflow.errors import UsageError
from lxcflow.runtime.automount import automounts
from lxcflow.runtime.confinement import Confinement
from lxcflow.runtime.lxc_hooks import DEFAULT_PATH, INSIDE_HOOKS, lxc_argv, lxc_env
from lxcflow.runtime.mountops import MountOp, mount_op

# <linux/sched.h>; the pid namespace is always new and made by the shim itself.
CLONE_FLAGS = {
    "mnt": 0x00020000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
    "cgroup": 0x02000000,
}


class RunMode(enum.StrEnum):
    """How a container runs its command (spelled so in the spec and state.json)."""

    SYSTEM = "system"  # the command is PID 1 (lxc-start)
    APP = "app"  # a minimal init is PID 1 and runs the command (lxc-execute)


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


@dataclass(frozen=True, slots=True)
class ConsoleLog:
    """Where a started container's console goes: the keeper writes it to
    ``log`` (at most ``size`` bytes kept) and serves it, and the ttys, on
    ``socket``."""

    log: Path
    size: int
    socket: Path


def tty_names(config: ContainerConfig, console: bool) -> list[str]:
    """The ttys' names in the container's devpts, as ``container_ttys``
    gives them to its init (systemd starts a getty on each): a fresh devpts
    counts from pts/0, which is the console when there is one."""
    return [f"pts/{n + (1 if console else 0)}" for n in range(config.tty_max)]


def _mount_record(op: MountOp) -> str:
    return "\x1f".join((op.source, op.target, op.fstype, str(op.flags), op.data, str(op.opts)))


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
    hierarchies: Sequence[Hierarchy] = (),
    console: ConsoleLog | None = None,
    confinement: Confinement | None = None,
    idmapped_rootfs: bool = False,
) -> bytes:
    """The spec file's bytes for one start of a container (``netns``: it joins
    a network namespace the daemon prepared, passed to the shim as fd 4;
    otherwise a new one of its own; lo alone the shim brings up; with
    ``lxc.idmap`` it joins the user namespace on fd 5 too;
    ``hierarchies``: the cgroup file systems its ``lxc.mount.auto`` mounts;
    ``console``: the keeper logs the output, else it goes to the shim's stdio;
    ``confinement``: what the command may do; None only in tests of the
    records; ``idmapped_rootfs``: an unprivileged container's rootfs is
    mounted through its id maps, runtime/userns.py decides).

    Raises:
        UsageError: a command or environment entry the kernel cannot take.
    """
    new = config.new_namespaces
    records: list[tuple[str, str]] = [
        ("mode", mode),
        # pid is the shim's own to make, and user (lxc.idmap) the daemon's
        ("ns", str(namespace_flags(new - {"pid", "user"} - ({"net"} if netns else set())))),
        ("exit", str(exit_file)),
        # The caller's directory means something only on the host's root.
        ("cwd", config.init_cwd or (cwd if config.rootfs is None else None) or "/"),
        ("pdeath", str(config.signal_pdeath)),
    ]
    if confinement is not None:
        records += confinement.records()
    if "user" in new:
        records.append(("userns", "1"))
        if idmapped_rootfs:
            records.append(("idmaprootfs", "1"))
    if netns:
        records.append(("netns", "1"))
    if "net" in new and not config.makes_interfaces:
        records.append(("loopback", "1"))
    if "uts" in new:
        # As LXC: without lxc.uts.name the hostname is the container's name.
        records.append(("hostname", config.hostname or name))
    env = dict(env)
    if config.rootfs is not None:
        records += [("rootfs", str(config.rootfs)), ("autodev", str(int(config.autodev))),
                    ("ttys", str(config.tty_max)), ("ptymax", str(config.pty_max))]
        if config.tty_dir:
            records.append(("ttydir", config.tty_dir))
    has_console = (console is not None and config.rootfs is not None
                   and config.console_path != "none")
    if console is not None:
        records += [("log", str(console.log)), ("logsize", str(console.size)),
                    ("sock", str(console.socket)), ("console", str(int(has_console)))]
    if config.rootfs is not None and config.tty_max:
        env["container_ttys"] = " ".join(tty_names(config, has_console))
    if config.arch:
        records.append(("personality", config.arch))
    records += [("prlimit", f"{PRLIMITS[resource]}:{soft}:{hard}")
                for resource, soft, hard in config.prlimits]
    records += [("cgroup", str(p)) for p in cgroup_procs]
    before_dev, cgroup_mounts = automounts(
        config.mount_auto, boots_init=mode is RunMode.SYSTEM, own_network="net" in new,
        own_root=config.rootfs is not None, hierarchies=hierarchies, userns="user" in new)
    records += [("automount", _mount_record(op)) for op in before_dev]
    records += [("mount", _mount_record(mount_op(e, config.rootfs))) for e in config.mount_entries]
    records += [("mount", _mount_record(op)) for op in cgroup_mounts]
    hooks = [(kind, line) for kind in INSIDE_HOOKS for line in config.hooks.get(kind, ())]
    if hooks:
        hook_env = lxc_env(name, "", config.file, config.rootfs)
        if "user" in new and config.rootfs is not None:
            # Container root cannot walk to the rootfs by path (userns.c);
            # a hook starts with it as its working directory, as the init has.
            hook_env["LXC_ROOTFS_MOUNT"] = "/proc/self/cwd"
        records += [("hookenv", f"{key}={value}") for key, value in hook_env.items()
                    if key != "LXC_HOOK_TYPE"]
        records += [("hook", "\x1f".join([kind, *lxc_argv(line, name, kind)]))
                    for kind, line in hooks]
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
