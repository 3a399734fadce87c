"""``lxc.mount.auto``: the /proc, /sys and cgroup file systems a container
gets, as mount calls for the shim, in LXC's variants.

Every container gets ``proc:mixed sys:mixed`` unless its config names another
variant of the same family, and one that boots an init ``cgroup:mixed`` too
(systemd looks for its cgroups there). The container has a cgroup namespace
rooted at its own cgroup in every hierarchy, so the cgroup file systems it
mounts show its own subtree, never the host's: ``cgroup-full`` is then the
same as ``cgroup``.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxcflow.cgroups.layout import Hierarchy
from lxcflow.runtime.mountops import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    OPT_BIND_RO,
    OPT_MKDIR,
    OPT_OPTIONAL,
    OPT_REMOUNT,
    OPT_SRC_IN_ROOT,
    MountOp,
)

_SAFE = MS_NOSUID | MS_NODEV | MS_NOEXEC


def _bind_self(path: str, *, read_only: bool, recursive: bool = False,
               optional: bool = False) -> MountOp:
    """``path`` bound on itself: a mount of its own, to make read-only (the
    kernel takes that flag per mount) or to keep writable under one that is;
    ``optional`` for what a kernel may be built without."""
    return MountOp(path, path, "", MS_BIND | _SAFE | (MS_REC if recursive else 0), "",
                   OPT_SRC_IN_ROOT | (OPT_BIND_RO if read_only else 0)
                   | (OPT_OPTIONAL if optional else 0))


def _variant(words: Sequence[str], family: str, default: str | None) -> str | None:
    """The family's variant named last (``proc`` alone: mixed), else ``default``."""
    chosen = default
    for word in words:
        head, _, variant = word.partition(":")
        if head.removesuffix("-full") == family:
            chosen = variant or ("rw" if family == "cgroup" else "mixed")
    return chosen


#: host kernel state a container has no business reading (what crun and
#: Docker mask): /dev/null bound on the files, an empty read-only tmpfs on
#: the directories; each only where this kernel has it
MASKED_FILES = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                "/proc/latency_stats")
MASKED_DIRS = ("/proc/acpi", "/proc/scsi")
#: and what it may read but not change, besides /proc/sys
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq")


def proc_ops(variant: str, own_network: bool) -> list[MountOp]:
    ops = [MountOp("proc", "/proc", "proc", _SAFE, "", OPT_MKDIR)]
    if variant == "mixed":
        # LXC's mixed: /proc/sys and /proc/sysrq-trigger read-only, but the
        # container's own network settings stay its to change.
        if own_network:
            ops.append(_bind_self("/proc/sys/net", read_only=False))
        ops += [_bind_self("/proc/sys", read_only=True, recursive=True),
                _bind_self("/proc/sysrq-trigger", read_only=True, optional=True)]
        ops += [_bind_self(path, read_only=True, optional=True) for path in READ_ONLY]
        # the host's /dev/null (the container's /dev is not made yet)
        ops += [MountOp("/dev/null", path, "", MS_BIND, "", OPT_OPTIONAL | OPT_BIND_RO)
                for path in MASKED_FILES]
        ops += [MountOp("tmpfs", path, "tmpfs", _SAFE | MS_RDONLY, "mode=555", OPT_OPTIONAL)
                for path in MASKED_DIRS]
    return ops


def sys_ops(variant: str, fresh: bool, from_host: bool = False) -> list[MountOp]:
    """``fresh``: a sysfs of the container's own; else (the host's network
    namespace on the host's root, whose sysfs the kernel will not mount twice
    on one place) the host's /sys bound; ``from_host``: bound from the host
    into a rootfs (the host's network namespace in a user namespace, where
    the kernel mounts no sysfs: it would show a network its root does not own)."""
    ro = MS_RDONLY if variant == "ro" else 0
    if fresh:
        ops = [MountOp("sysfs", "/sys", "sysfs", _SAFE | (0 if variant == "mixed" else ro), "",
                       OPT_MKDIR)]
    elif from_host:
        ops = [MountOp("/sys", "/sys", "", MS_BIND | MS_REC | _SAFE, "",
                       OPT_MKDIR | (OPT_BIND_RO if variant == "ro" else 0))]
    else:
        ops = [_bind_self("/sys", read_only=variant == "ro", recursive=True)]
    if variant == "mixed":
        # read-only, but for /sys/devices/virtual/net (as LXC's sys:mixed)
        ops += [_bind_self("/sys/devices/virtual/net", read_only=False),
                _bind_self("/sys", read_only=True, recursive=True)]
    return ops


def cgroup_ops(variant: str, hierarchies: Sequence[Hierarchy]) -> list[MountOp]:
    ro = MS_RDONLY if variant == "ro" else 0
    if any(h.directory == "" for h in hierarchies):  # pure cgroup2
        return [MountOp("cgroup2", "/sys/fs/cgroup", "cgroup2", _SAFE | ro, "", OPT_MKDIR)]
    ops = [MountOp("cgroup", "/sys/fs/cgroup", "tmpfs", _SAFE, "mode=755,size=64k", OPT_MKDIR)]
    for h in hierarchies:
        ops.append(MountOp(h.fstype, f"/sys/fs/cgroup/{h.directory}", h.fstype, _SAFE | ro,
                           h.options, OPT_MKDIR))
    if variant != "rw":
        # the directory of mount points itself: nothing new to be made there
        ops.append(MountOp("", "/sys/fs/cgroup", "", MS_RDONLY | _SAFE, "mode=755,size=64k",
                           OPT_REMOUNT))
    return ops


def automounts(words: Sequence[str], *, boots_init: bool, own_network: bool, own_root: bool,
               hierarchies: Sequence[Hierarchy],
               userns: bool = False) -> tuple[list[MountOp], list[MountOp]]:
    """The mounts before /dev (/proc, /sys) and those after the user's
    entries (the cgroup file systems), for the ``lxc.mount.auto`` words."""
    first = proc_ops(_variant(words, "proc", "mixed") or "mixed", own_network)
    shared_in_userns = userns and own_root and not own_network
    first += sys_ops(_variant(words, "sys", "mixed") or "mixed",
                     own_network or (own_root and not userns), from_host=shared_in_userns)
    cgroup = _variant(words, "cgroup", "mixed" if boots_init else None)
    return first, cgroup_ops(cgroup, hierarchies) if cgroup else []
