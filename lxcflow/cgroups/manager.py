"""Creating, finding and listing container cgroups under one parent directory."""

from __future__ import annotations

import errno
from pathlib import Path

from lxcflow import validate
from lxcflow.cgroups import base
from lxcflow.cgroups.base import ContainerCgroup
from lxcflow.cgroups.hybrid import HybridCgroup
from lxcflow.cgroups.layout import (
    DEFAULT_ROOT,
    Hierarchy,
    Layout,
    detect_layout,
    mounted_hierarchies,
    other_v1_hierarchies,
    v1_hierarchies,
)
from lxcflow.cgroups.v1 import V1Cgroup, init_cpuset, unique_dirs
from lxcflow.cgroups.v2 import V2Cgroup, enable_controllers
from lxcflow.errors import CgroupError


class CgroupManager:
    """Container cgroups of one (root, parent): ``<hierarchy>/<parent>/<name>``.

    ``layout`` picks the driver; it is normally detected (see
    :func:`open_manager`) but may be forced, e.g. to drive a hybrid host's
    cgroup2 mount as if it were a unified root.
    """

    def __init__(self, root: Path, parent: str, layout: Layout) -> None:
        validate.cgroup_parent(parent)
        self.root = root
        self.parent = parent
        self.layout = layout
        self._v2_root: Path | None = None
        self._v1: dict[str, Path] = {}
        self._others: list[Path] = []  # v1 hierarchies lxcflow does not use
        if layout is Layout.UNIFIED:
            self._v2_root = root
        elif layout is Layout.HYBRID:
            self._v2_root = root / "unified"
            self._v1 = v1_hierarchies(root)
            self._others = other_v1_hierarchies(root)
        else:
            self._v1 = v1_hierarchies(root)
            self._others = other_v1_hierarchies(root)
            if not self._v1:
                raise CgroupError(f"no cgroup v1 controllers found at {root}", path=str(root),
                                  op="detect")
        # Each hierarchy's mount directory, and whether it is cgroup2;
        # resolved once (realpath costs a few lstat calls per directory).
        mounts = [(self._v2_root, True)] if self._v2_root is not None else []
        self._mount_list = mounts + [(path, False) for path in unique_dirs(self._v1)]
        # The init joins a cgroup of its own in the others too, so that in
        # its cgroup namespace every hierarchy is rooted at the container's
        # (a systemd inside mounts name=systemd and writes there).
        self._join_list = self._mount_list + [(path, False) for path in self._others]
        # Set once a create made (or found) the parent in every hierarchy:
        # later creates then need one mkdir per hierarchy.
        self._parents_ready = False
        self._cpuset_parent = (self._v1["cpuset"] / parent) if "cpuset" in self._v1 else None

    def __repr__(self) -> str:
        return f"<CgroupManager {self.layout.value} {self.root} parent={self.parent!r}>"

    def hierarchies(self) -> list[Hierarchy]:
        """The cgroup file systems mounted at the root: what a container
        mounts, in its cgroup namespace, for ``lxc.mount.auto = cgroup``."""
        return mounted_hierarchies(self.root)

    def parent_dirs(self) -> list[Path]:
        """The parent directory in every hierarchy used."""
        return [mount / self.parent for mount, _ in self._mount_list]

    def joined_parent_dirs(self) -> list[Path]:
        """The parent directory in every hierarchy a container's init joins:
        those used, and the others (name=systemd) where it has a cgroup too."""
        return [mount / self.parent for mount, _ in self._join_list]

    def _cgroup(self, name: str) -> ContainerCgroup:
        v1_dirs = {ctl: mount / self.parent / name for ctl, mount in self._v1.items()}
        unique = [mount / self.parent / name for mount, is_v2 in self._mount_list if not is_v2]
        others = [mount / self.parent / name for mount in self._others]
        if self.layout is Layout.UNIFIED:
            assert self._v2_root is not None
            return V2Cgroup(name, self._v2_root / self.parent / name)
        if self.layout is Layout.HYBRID:
            assert self._v2_root is not None
            return HybridCgroup(name, self._v2_root / self.parent / name, v1_dirs, unique,
                                others)
        return V1Cgroup(name, v1_dirs, unique, others)

    def create(self, name: str) -> ContainerCgroup:
        """Create the container's cgroup in every hierarchy.

        An empty leftover of the same name (a crash) is removed and made
        afresh so no old limit or freeze carries over. Either every hierarchy
        ends up with the directory or none does.

        Raises:
            CgroupError: a leftover still has processes, or the kernel refused.
        """
        validate.container_name(name)
        if self._parents_ready and self._create_in_parents(name):
            return self._cgroup(name)
        for mount, _ in self._join_list:
            target = mount / self.parent / name
            if target.is_dir() and base.tree_pids(target):
                raise CgroupError(f"cgroup {name} already has processes", name=name,
                                  path=str(target), op="mkdir")
        made: list[Path] = []
        try:
            for mount, is_v2 in self._join_list:
                current = mount
                segments = self.parent.split("/")
                for depth, segment in enumerate([*segments, name]):
                    is_target = depth == len(segments)
                    if is_v2:
                        enable_controllers(current)
                    child = current / segment
                    if is_target and child.is_dir():
                        base.remove_tree(child, name)
                    if is_target or not child.is_dir():
                        self._mkdir(child)
                        made.append(child)
                    if not is_v2:
                        init_cpuset(child, current)
                    current = child
        except BaseException:
            _remove_made(made)
            raise
        self._parents_ready = True
        return self._cgroup(name)

    def _create_in_parents(self, name: str) -> bool:
        """The fast path of :meth:`create`: one mkdir per hierarchy. False,
        with nothing left made, where that is not enough (a leftover of the
        same name, a parent removed since)."""
        made: list[Path] = []
        try:
            for mount, _ in self._join_list:
                self._mkdir(mount / self.parent / name)
                made.append(mount / self.parent / name)
            if self._cpuset_parent is not None:
                init_cpuset(self._cpuset_parent / name, self._cpuset_parent)
        except CgroupError as exc:
            _remove_made(made)
            if exc.details.get("errno") in (errno.EEXIST, errno.ENOENT):
                self._parents_ready = False
                return False
            raise
        except BaseException:
            _remove_made(made)
            raise
        return True

    @staticmethod
    def _mkdir(path: Path) -> None:
        try:
            base.make_dir(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CgroupError(f"cannot create cgroup {path}: {reason}", path=str(path),
                              op="mkdir", errno=exc.errno, reason=reason) from exc

    def open(self, name: str) -> ContainerCgroup:
        """The existing cgroup of ``name``, e.g. to re-adopt a running container.

        Raises:
            CgroupError: it is missing from some or all hierarchies.
        """
        validate.container_name(name)
        missing = [str(d) for d in self.parent_dirs() if not (d / name).is_dir()]
        if len(missing) == len(self.parent_dirs()):
            raise CgroupError(f"cgroup {name} does not exist", name=name)
        if missing:
            raise CgroupError(f"cgroup {name} is incomplete: missing under {', '.join(missing)}",
                              name=name, missing=missing)
        return self._cgroup(name)

    def exists(self, name: str) -> bool:
        """Whether ``name`` has its directory in every hierarchy."""
        validate.container_name(name)
        return all((d / name).is_dir() for d in self.parent_dirs())

    def names(self) -> list[str]:
        """Container cgroups under the parent, in any hierarchy (leftovers too)."""
        found: set[str] = set()
        for parent_dir in self.parent_dirs():
            try:
                found.update(p.name for p in parent_dir.iterdir() if p.is_dir())
            except FileNotFoundError:
                continue
        return sorted(found)

    def remove_parent_if_empty(self) -> None:
        """rmdir the parent directories once no container directory is left
        (in the hierarchies lxcflow does not use too, where a container's own
        init may have made it)."""
        if self.names():
            return
        for mount in self._others:
            try:
                base.remove_dir(mount / self.parent)
            except OSError:
                pass  # not there, or kept by what is not a container's
        for parent_dir in self.parent_dirs():
            try:
                base.remove_dir(parent_dir)
            except FileNotFoundError:
                continue
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise CgroupError(f"cannot remove {parent_dir}: {reason}", path=str(parent_dir),
                                  op="rmdir", errno=exc.errno, reason=reason) from exc


def open_manager(root: Path = DEFAULT_ROOT, parent: str = "lxcflow") -> CgroupManager:
    """The manager for the layout detected under ``root``."""
    return CgroupManager(root, parent, detect_layout(root))


def _remove_made(made: list[Path]) -> None:
    """Undo a create that failed halfway: the directories it made, newest first."""
    for path in reversed(made):
        try:
            base.remove_dir(path)
        except OSError:
            pass
