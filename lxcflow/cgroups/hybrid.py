"""A container cgroup on a hybrid host: v1 controllers plus a cgroup2 mount.

The cgroup2 side usually has no controllers, but it is where the modern
freezer (cgroup.freeze), cgroup.events, cgroup.kill and cpu.stat live.
Controller attributes go to the v1 directory of their controller, unless
the host bound that controller to the cgroup2 side instead.
"""

from __future__ import annotations

import errno
import functools
import signal
from collections.abc import Sequence
from pathlib import Path

from lxcflow.cgroups import base
from lxcflow.cgroups.base import CgroupEvents, ContainerCgroup, FreezerState, Located
from lxcflow.cgroups.layout import Layout
from lxcflow.cgroups.v1 import V1Cgroup
from lxcflow.cgroups.v2 import V2Cgroup
from lxcflow.errors import CgroupError, UsageError


class HybridCgroup(ContainerCgroup):
    """A container cgroup made of a :class:`V2Cgroup` and a :class:`V1Cgroup`."""

    layout = Layout.HYBRID

    def __init__(self, name: str, unified: Path, dirs: dict[str, Path],
                 unique: list[Path] | None = None, others: Sequence[Path] = ()) -> None:
        super().__init__(name)
        self.unified = V2Cgroup(name, unified)
        self.legacy = V1Cgroup(name, dirs, unique, others)

    def procs_files(self) -> list[Path]:
        return self.unified.procs_files() + self.legacy.procs_files()

    def locate(self, key: str) -> Located | None:
        try:
            found = self.unified.locate(key)
        except UsageError:
            # e.g. memsw: no v2 equivalent, but v1 has the file itself.
            found = None
        return found or self.legacy.locate(key)

    def pids(self) -> list[int]:
        return sorted(set(self.unified.pids()) | set(self.legacy.pids()))

    def process_count(self) -> int:
        # Every process of the container is in its cgroup2 tree too: one
        # walk there, not one per v1 hierarchy (37 against 505 us here).
        return self.unified.process_count()

    # Which side counts CPU and memory is the host's choice, made before any
    # container starts: asked once a cgroup, not at every read (metrics
    # read these for every container at every scrape).

    @functools.cached_property
    def _cpu_side(self) -> ContainerCgroup:
        # cpu.stat's usage_usec is kept on cgroup2 even with no cpu controller.
        return self.unified if (self.unified.path / "cpu.stat").is_file() else self.legacy

    @functools.cached_property
    def _memory_side(self) -> ContainerCgroup:
        return self.unified if (self.unified.path / "memory.current").is_file() else self.legacy

    def cpu_usage_ns(self) -> int:
        return self._cpu_side.cpu_usage_ns()

    def memory_bytes(self) -> int | None:
        return self._memory_side.memory_bytes()

    def inactive_file_bytes(self) -> int | None:
        return self._memory_side.inactive_file_bytes()

    @property
    def events_file(self) -> Path | None:
        return self.unified.events_file

    def read_events(self) -> CgroupEvents:
        return self.unified.read_events()

    def request_freeze(self, frozen: bool) -> None:
        self.unified.request_freeze(frozen)

    def freezer_state(self) -> FreezerState:
        return self.unified.freezer_state()

    def kill(self, sig: int) -> int:
        if sig == signal.SIGKILL and self.unified.has_kill_file():
            members = set(self.unified.pids())
            base.write_text(self.unified.path / "cgroup.kill", "1")
            # cgroup.kill misses a process that joined only the v1 side. One
            # moved into a v1 sub-cgroup is still a member of the cgroup2 side,
            # so the v1 top directories are enough (and walking all nine
            # hierarchies' control files would cost a millisecond per stop).
            strays = self.legacy.top_pids() - members
            base.signal_pids(sorted(strays), sig)
            return len(members) + len(strays)
        return base.signal_pids(self.pids(), sig)

    def _populated(self) -> bool:
        try:
            return self.unified.read_events().populated
        except CgroupError as exc:
            if exc.details.get("errno") not in (errno.ENOENT, errno.ENODEV):
                raise
            return bool(self.legacy.pids())  # the cgroup2 side is gone already

    def remove(self) -> None:
        # One read of cgroup.events covers the whole subtree: the container's
        # processes are members of every hierarchy, the cgroup2 one included.
        # (One an outsider put in a v1 hierarchy alone still fails its rmdir.)
        if self._populated():
            raise CgroupError(f"cgroup {self.name} still has processes", name=self.name,
                              op="rmdir")
        self.unified.remove()
        self.legacy.remove_dirs()
