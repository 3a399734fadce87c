"""A fake cgroup tree in a tmp dir, for the cgroups package's unit tests.

A tmp dir cannot do what cgroupfs does by itself: give a new directory its
control files, let rmdir remove a directory full of them, or update
cgroup.events. :meth:`FakeCgroupTree.install` swaps the package's mkdir and
rmdir for ones that do, and :meth:`FakeCgroupTree.sync` plays the kernel for
the rest. The fake never signals a process: a cgroup.kill request only
records the pids in :attr:`FakeCgroupTree.killed`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lxcflow.cgroups import base
from lxcflow.cgroups.base import ContainerCgroup
from lxcflow.cgroups.layout import V1_CONTROLLERS, Layout

V1_UNLIMITED = "9223372036854771712"
ALL_V2_CONTROLLERS = "cpuset cpu io memory pids"

# The files every new v2 directory gets, and those each enabled controller adds.
V2_CORE = {
    "cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0", "cgroup.kill": "", "cgroup.type": "domain",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n", "cpu.pressure": "",
}
V2_CONTROLLER_FILES = {
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000"},
    "memory": {"memory.current": "0", "memory.max": "max", "memory.low": "0",
               "memory.swap.max": "max"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.weight": "default 100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
}
# v1: files of each controller's root, and how a new child's differ.
V1_COMMON = {"cgroup.procs": "", "cgroup.clone_children": "0", "tasks": "",
             "notify_on_release": "0"}
V1_ROOT_FILES = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "0-1", "cpuset.mems": "0"},
    "memory": {"memory.usage_in_bytes": "0", "memory.limit_in_bytes": V1_UNLIMITED,
               "memory.soft_limit_in_bytes": V1_UNLIMITED,
               "memory.memsw.limit_in_bytes": V1_UNLIMITED},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {},
    "blkio": {"blkio.weight": "500"},
    "pids": {},
}
V1_CHILD_FILES = {
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "freezer": {"freezer.state": "THAWED"},
    "pids": {"pids.max": "max", "pids.current": "0"},
}


def _fill(directory: Path, files: dict[str, str]) -> None:
    """Create the missing files; existing ones keep their state."""
    for name, content in files.items():
        path = directory / name
        if not path.exists():
            path.write_text(content)


class FakeCgroupTree:
    """A cgroup root of one layout under ``root`` (a tmp dir).

    ``v2_controllers`` is what the cgroup2 root offers (default: all five on
    unified, none on hybrid).
    """

    def __init__(self, root: Path, layout: Layout,
                 v2_controllers: str | None = None) -> None:
        self.root = root
        self.layout = layout
        self.killed: list[int] = []
        self.v2_root: Path | None = None
        self.v1_roots: dict[str, Path] = {}
        self._enabled: dict[Path, set[str]] = {}
        self.named_roots: list[Path] = []
        if layout is not Layout.LEGACY:
            self.v2_root = root if layout is Layout.UNIFIED else root / "unified"
            self.v2_root.mkdir(parents=True, exist_ok=True)
            if v2_controllers is None:
                # A hybrid host's cgroup2 mount usually gets no controllers.
                v2_controllers = ALL_V2_CONTROLLERS if layout is Layout.UNIFIED else ""
            # The kernel's root cgroup has no freeze/events/kill files.
            _fill(self.v2_root, {"cgroup.controllers": v2_controllers + "\n",
                                 "cgroup.subtree_control": "", "cgroup.procs": "",
                                 "cpu.stat": "usage_usec 0\n", "cpu.pressure": ""})
        if layout is not Layout.UNIFIED:
            for controller in V1_CONTROLLERS:
                directory = root / controller
                directory.mkdir()
                _fill(directory, {**V1_COMMON, **V1_ROOT_FILES[controller]})
                self.v1_roots[controller] = directory
            # name=systemd: a v1 hierarchy without controllers, which lxcflow
            # only gives the container's init a cgroup in (for its cgroup namespace).
            (root / "systemd").mkdir()
            _fill(root / "systemd", V1_COMMON)
            self.named_roots = [root / "systemd"]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the package's mkdir/rmdir behave as on cgroupfs, for this tree."""
        monkeypatch.setattr(base, "make_dir", self._make_dir)
        monkeypatch.setattr(base, "remove_dir", self._remove_dir)

    def _make_dir(self, path: Path) -> None:
        assert path.is_relative_to(self.root), path
        os.mkdir(path)
        self.sync()

    def _remove_dir(self, path: Path) -> None:
        assert path.is_relative_to(self.root), path
        if not path.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if any(p.is_dir() for p in path.iterdir()) or base.read_procs(path / "cgroup.procs"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for file in path.iterdir():
            file.unlink()
        os.rmdir(path)

    # -- playing the kernel -------------------------------------------------

    def sync(self) -> None:
        """Bring every directory's control files to what the kernel would show."""
        if self.v2_root is not None:
            killed_before = len(self.killed)
            self._sync_v2(self.v2_root, is_root=True)
            # A killed process leaves every hierarchy, v1 ones included.
            gone = {str(pid) for pid in self.killed[killed_before:]}
            for procs in self.root.rglob("cgroup.procs") if gone else ():
                kept = [w for w in procs.read_text().split() if w not in gone]
                procs.write_text("".join(f"{word}\n" for word in kept))
        for controller, directory in self.v1_roots.items():
            for sub in sorted(p for p in directory.rglob("*") if p.is_dir()):
                _fill(sub, {**V1_COMMON, **V1_ROOT_FILES[controller],
                            **V1_CHILD_FILES.get(controller, {})})
                state = sub / "freezer.state"
                if state.exists() and state.read_text().strip() == "FREEZING":
                    state.write_text("FROZEN")
        for directory in self.named_roots:
            for sub in sorted(p for p in directory.rglob("*") if p.is_dir()):
                _fill(sub, V1_COMMON)

    def _sync_v2(self, directory: Path, is_root: bool = False) -> bool:
        """Sync ``directory`` and below; returns whether it is populated."""
        control = directory / "cgroup.subtree_control"
        enabled = self._enabled.setdefault(directory, set())
        available = set((directory / "cgroup.controllers").read_text().split())
        for word in control.read_text().split():
            if word.startswith("+") and word[1:] in available:
                enabled.add(word[1:])
            elif word.startswith("-"):
                enabled.discard(word[1:])
            elif word in available:
                enabled.add(word)
        control.write_text(" ".join(sorted(enabled)))
        populated = False
        for child in sorted(p for p in directory.iterdir() if p.is_dir()):
            _fill(child, {**V2_CORE, "cgroup.controllers": ""})
            (child / "cgroup.controllers").write_text(" ".join(sorted(enabled)))
            for controller in enabled:
                _fill(child, V2_CONTROLLER_FILES[controller])
            populated |= self._sync_v2(child)
        if is_root:
            return populated
        kill = directory / "cgroup.kill"
        procs = directory / "cgroup.procs"
        if kill.read_text().strip() == "1":
            self.killed.extend(base.read_procs(procs))
            procs.write_text("")
            kill.write_text("")
        populated |= bool(base.read_procs(procs))
        frozen = (directory / "cgroup.freeze").read_text().strip() == "1"
        (directory / "cgroup.events").write_text(
            f"populated {int(populated)}\nfrozen {int(frozen)}\n")
        return populated

    # -- helpers for tests --------------------------------------------------

    def add_pids(self, cgroup: ContainerCgroup, pids: list[int], child: str = "") -> None:
        """Put ``pids`` into every procs file of ``cgroup`` (or of its ``child`` dir)."""
        for procs in cgroup.procs_files():
            target = procs.parent / child / "cgroup.procs" if child else procs
            words = target.read_text().split() + [str(pid) for pid in pids]
            target.write_text("".join(f"{word}\n" for word in words))
        self.sync()

    def clear_pids(self, cgroup: ContainerCgroup) -> None:
        """Empty every procs file of ``cgroup`` and below (the processes exited)."""
        for procs in cgroup.procs_files():
            for path in procs.parent.rglob("cgroup.procs"):
                path.write_text("")
        self.sync()

    def control_file(self, cgroup: ContainerCgroup, filename: str) -> Path:
        """The one file called ``filename`` among the cgroup's directories."""
        found = [p.parent / filename for p in cgroup.procs_files()
                 if (p.parent / filename).is_file()]
        assert len(found) == 1, (filename, found)
        return found[0]
