"""A container cgroup on legacy (v1) hierarchies, one directory per controller."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from lxcflow.cgroups import base, names
from lxcflow.cgroups.base import CgroupEvents, ContainerCgroup, FreezerState, Located
from lxcflow.cgroups.layout import Layout
from lxcflow.errors import CgroupError, UsageError

CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")


def init_cpuset(directory: Path, parent: Path) -> None:
    """Give a new v1 cpuset cgroup its parent's cpus and mems.

    A new v1 cpuset starts with both empty (unless the parent has
    cgroup.clone_children set), and the kernel refuses to attach any process
    to it with ENOSPC.
    """
    for filename in CPUSET_FILES:
        target = directory / filename
        if target.is_file() and not base.read_text(target).strip():
            base.write_text(target, base.read_text(parent / filename).strip())


def unique_dirs(dirs: dict[str, Path]) -> list[Path]:
    """The distinct directories, co-mounted controllers counted once."""
    seen: set[str] = set()
    result: list[Path] = []
    for path in dirs.values():
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            result.append(path)
    return result


class V1Cgroup(ContainerCgroup):
    """A container cgroup given as controller -> its directory in that hierarchy."""

    layout = Layout.LEGACY

    def __init__(self, name: str, dirs: dict[str, Path],
                 unique: list[Path] | None = None, others: Sequence[Path] = ()) -> None:
        super().__init__(name)
        self.dirs = dict(dirs)
        # ``unique``: the distinct ones, when the caller resolved them already
        # (realpath costs a few lstat calls per directory).
        self._unique = unique if unique is not None else unique_dirs(self.dirs)
        # Its place in the hierarchies lxcflow does not use, where the
        # container's own init may have made cgroups (see other_v1_hierarchies).
        self.others = tuple(others)

    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in (*self._unique, *self.others)]

    def locate(self, key: str) -> Located | None:
        mapping = names.to_v1(key)
        controller = mapping.key.split(".", 1)[0]
        if controller == "cgroup":
            # cgroup.* files exist in every hierarchy; any one will do.
            candidates = self._unique[:1]
        else:
            candidates = [self.dirs[controller]] if controller in self.dirs else []
        for directory in candidates:
            path = directory / mapping.key
            if path.is_file():
                return Located(path, mapping.to_file, mapping.from_file)
        return None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self._unique:
            found |= base.tree_pids(directory)
        return sorted(found)

    def process_count(self) -> int:
        # Each hierarchy holds every process of the container: one will do.
        return len(base.tree_pids(self._unique[0])) if self._unique else 0

    def top_pids(self) -> set[int]:
        """The pids in the container's own directories, not below them: one
        read per hierarchy, no walk through the control files."""
        found: set[int] = set()
        for directory in self._unique:
            found.update(base.read_procs(directory / "cgroup.procs"))
        return found

    def cpu_usage_ns(self) -> int:
        if "cpuacct" not in self.dirs:
            raise UsageError("CPU accounting is not available: no cpuacct controller")
        return int(base.read_text(self.dirs["cpuacct"] / "cpuacct.usage"))

    def memory_bytes(self) -> int | None:
        if "memory" not in self.dirs:
            return None
        text = base.read_optional(self.dirs["memory"] / "memory.usage_in_bytes")
        return None if text is None else int(text)

    def inactive_file_bytes(self) -> int | None:
        if "memory" not in self.dirs:
            return None
        # total_: the hierarchy below too, as usage_in_bytes counts it
        return base.stat_value(self.dirs["memory"] / "memory.stat", "total_inactive_file")

    @property
    def events_file(self) -> Path | None:
        return None

    def read_events(self) -> CgroupEvents:
        frozen = "freezer" in self.dirs and self.freezer_state() is FreezerState.FROZEN
        return CgroupEvents(populated=bool(self.pids()), frozen=frozen)

    def _state_file(self) -> Path:
        if "freezer" not in self.dirs:
            raise UsageError("freezing is not available: no freezer controller")
        return self.dirs["freezer"] / "freezer.state"

    def request_freeze(self, frozen: bool) -> None:
        base.write_text(self._state_file(), FreezerState.FROZEN if frozen else FreezerState.THAWED)

    def freezer_state(self) -> FreezerState:
        path = self._state_file()
        text = base.read_text(path).strip()
        try:
            return FreezerState(text)
        except ValueError:
            raise CgroupError(f"{path}: unexpected freezer state {text!r}", path=str(path),
                              op="read") from None

    def kill(self, sig: int) -> int:
        sent = base.signal_pids(self.pids(), sig)
        if (sig == signal.SIGKILL and "freezer" in self.dirs
                and self.freezer_state() is not FreezerState.THAWED):
            # A v1-frozen task only dies once thawed; v2 has no such catch, so
            # thaw here to give SIGKILL the same meaning on every layout.
            self.request_freeze(False)
        return sent

    def remove(self) -> None:
        # Checked up front so a busy container is not left removed from
        # some hierarchies and present in others.
        if self.pids():
            raise CgroupError(f"cgroup {self.name} still has processes", name=self.name,
                              op="rmdir")
        self.remove_dirs()

    def remove_dirs(self) -> None:
        """Remove the directories and whatever the container's init made
        below them or in :attr:`others`, processes or not (the caller checked)."""
        for directory in (*self._unique, *self.others):
            base.remove_tree(directory, self.name)
