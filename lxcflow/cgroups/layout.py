"""Which cgroup layout a host has: unified (v2), hybrid or legacy (v1).

Detection looks at files only, never at /proc/mounts, so it works the same on
the real /sys/fs/cgroup and on a fake tree in a test's tmp dir.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from lxcflow.errors import CgroupError

#: the v1 controllers lxcflow puts containers into (name=systemd is not one:
#: systemd owns that hierarchy and nothing in lxcflow needs it).
V1_CONTROLLERS: tuple[str, ...] = (
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
)

DEFAULT_ROOT = Path("/sys/fs/cgroup")


class Layout(enum.Enum):
    """How the cgroup filesystems are mounted under the root."""

    UNIFIED = "unified"
    HYBRID = "hybrid"
    LEGACY = "legacy"


def v1_hierarchies(root: Path) -> dict[str, Path]:
    """Controller name -> mount directory, for the v1 controllers under ``root``.

    Co-mounted controllers (``cpu,cpuacct``) map to the same directory; the
    usual ``cpu`` and ``cpuacct`` symlinks to it are found too.
    """
    found: dict[str, Path] = {}
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not (entry / "cgroup.procs").is_file():
            continue
        for part in entry.name.split(","):
            if part in V1_CONTROLLERS:
                found.setdefault(part, entry)
    return found


def other_v1_hierarchies(root: Path) -> list[Path]:
    """The v1 hierarchies under ``root`` that lxcflow does not use (named ones
    such as name=systemd, controllers such as hugetlb or perf_event).

    lxcflow puts no container there, but an init of the container's own that
    sees the host's cgroup trees (systemd) makes its cgroups in each of them,
    under the path it has in the others; those go when the container goes.
    """
    used = {os.path.realpath(p) for p in v1_hierarchies(root).values()}
    found: list[Path] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if (entry.is_symlink() or not (entry / "cgroup.procs").is_file()
                or (entry / "cgroup.controllers").is_file()  # the cgroup2 mount
                or os.path.realpath(entry) in used):
            continue
        found.append(entry)
    return found


def detect_layout(root: Path = DEFAULT_ROOT) -> Layout:
    """Tell the layout under ``root`` from which control files exist.

    Raises:
        CgroupError: nothing under ``root`` looks like a cgroup filesystem.
    """
    if (root / "cgroup.controllers").is_file():
        return Layout.UNIFIED
    if (root / "unified" / "cgroup.controllers").is_file():
        return Layout.HYBRID
    if v1_hierarchies(root):
        return Layout.LEGACY
    raise CgroupError(f"no cgroup filesystem found at {root}", path=str(root), op="detect")


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """A cgroup file system mounted under the cgroup root, as a container
    mounts its own view of it (``lxc.mount.auto = cgroup``)."""

    directory: str  # relative to the root: "" (unified), "unified", "cpu", "systemd"
    fstype: str  # "cgroup" or "cgroup2"
    options: str  # the v1 mount's controllers or name=, as mount(2) takes them


def mounted_hierarchies(root: Path = DEFAULT_ROOT,
                        mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """The cgroup file systems mounted at ``root`` and directly below it."""
    found: list[Hierarchy] = []
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if " - " not in line:
            continue
        after = line.split(" - ", 1)[1].split()
        point = Path(fields[4].replace("\\040", " "))
        if after[0] not in ("cgroup", "cgroup2") or not (point == root or point.parent == root):
            continue
        options = [o for o in after[2].split(",") if o not in ("rw", "ro", "xattr")
                   and not o.startswith(("release_agent=", "clone_children"))]
        found.append(Hierarchy("" if point == root else point.name, after[0],
                               ",".join(options) if after[0] == "cgroup" else ""))
    return found
