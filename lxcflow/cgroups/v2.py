"""A container cgroup on the unified (v2) hierarchy."""

from __future__ import annotations

import signal
from pathlib import Path

from lxcflow.cgroups import base, names
from lxcflow.cgroups.base import CgroupEvents, ContainerCgroup, FreezerState, Located
from lxcflow.cgroups.layout import Layout
from lxcflow.errors import CgroupError, UsageError

#: controllers a container gets when the host offers them.
WANTED_CONTROLLERS: tuple[str, ...] = ("cpuset", "cpu", "io", "memory", "pids")


def enable_controllers(directory: Path) -> None:
    """Enable the wanted controllers for the children of ``directory``.

    Controllers the kernel does not offer there are skipped, and refusals are
    tolerated: a container without (say) io still runs, and asking for an
    attribute of a missing controller is reported when it is asked for.
    """
    available = set(base.read_text(directory / "cgroup.controllers").split())
    enabled = set(base.read_text(directory / "cgroup.subtree_control").split())
    missing = [c for c in WANTED_CONTROLLERS if c in available and c not in enabled]
    if not missing:
        return
    control = directory / "cgroup.subtree_control"
    try:
        # One write when possible: the kernel applies all or none of it.
        base.write_text(control, " ".join(f"+{c}" for c in missing))
    except CgroupError:
        for controller in missing:
            try:
                base.write_text(control, f"+{controller}")
            except CgroupError:
                continue


class V2Cgroup(ContainerCgroup):
    """A container cgroup at ``path`` on a cgroup2 mount."""

    layout = Layout.UNIFIED

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def locate(self, key: str) -> Located | None:
        mapping = names.to_v2(key)
        path = self.path / mapping.key
        if not path.is_file():
            return None
        return Located(path, mapping.to_file, mapping.from_file)

    def pids(self) -> list[int]:
        return sorted(base.tree_pids(self.path))

    def cpu_usage_ns(self) -> int:
        for line in base.read_text(self.path / "cpu.stat").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "usage_usec":
                return int(parts[1]) * 1000
        raise CgroupError(f"no usage_usec in {self.path / 'cpu.stat'}",
                          path=str(self.path / "cpu.stat"), op="read")

    def memory_bytes(self) -> int | None:
        text = base.read_optional(self.path / "memory.current")
        return None if text is None else int(text)

    def inactive_file_bytes(self) -> int | None:
        return base.stat_value(self.path / "memory.stat", "inactive_file")

    @property
    def events_file(self) -> Path | None:
        return self.path / "cgroup.events"

    def read_events(self) -> CgroupEvents:
        return base.parse_events(base.read_text(self.path / "cgroup.events"))

    def _freeze_file(self) -> Path:
        path = self.path / "cgroup.freeze"
        if not path.is_file():
            raise UsageError("freezing is not available: no cgroup.freeze (kernel before 5.2)")
        return path

    def request_freeze(self, frozen: bool) -> None:
        base.write_text(self._freeze_file(), "1" if frozen else "0")

    def freezer_state(self) -> FreezerState:
        requested = base.read_text(self._freeze_file()).strip() == "1"
        # "frozen" also turns 1 when an ancestor is frozen, and stays 1 until
        # a thaw has completed: like v1's freezer.state, that is FROZEN.
        if self.read_events().frozen:
            return FreezerState.FROZEN
        return FreezerState.FREEZING if requested else FreezerState.THAWED

    def has_kill_file(self) -> bool:
        """Whether this kernel has ``cgroup.kill`` (5.14 and later)."""
        return (self.path / "cgroup.kill").is_file()

    def kill(self, sig: int) -> int:
        pids = self.pids()
        if sig == signal.SIGKILL and self.has_kill_file():
            # Also reaches processes forked after the pids were read.
            base.write_text(self.path / "cgroup.kill", "1")
            return len(pids)
        return base.signal_pids(pids, sig)

    def remove(self) -> None:
        base.remove_tree(self.path, self.name)
