"""The cgroups contract on the real kernel, for the v2, v1 and hybrid drivers.

Every test works under its own ``lxcflow-test-<hex>`` parent and the fixture
removes it afterwards whatever happened: thaw, kill the processes this test
spawned (by pid), then rmdir deepest first. Nothing outside that parent is
touched.
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lxcflow.cgroups import (
    CgroupManager,
    HybridCgroup,
    Layout,
    V1Cgroup,
    V2Cgroup,
    detect_layout,
    names,
    open_manager,
)
from lxcflow.cgroups.layout import v1_hierarchies
from lxcflow.errors import CgroupError, UsageError

ROOT = Path("/sys/fs/cgroup")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups"),
]

BUSY_CHILD = "import time\nend = time.monotonic() + 0.3\nwhile time.monotonic() < end: pass\n"


def host_layout() -> Layout | None:
    try:
        return detect_layout(ROOT)
    except CgroupError:
        return None


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _write_quietly(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError:
        pass


class Real:
    """One driver on the real kernel, plus the processes a test spawned."""

    def __init__(self, kind: str, manager: CgroupManager, controllers: set[str]) -> None:
        self.kind = kind
        self.manager = manager
        self.controllers = controllers
        self.children: list[subprocess.Popen[bytes]] = []

    def has(self, controller: str) -> bool:
        return controller in self.controllers

    def spawn(self, procs_files: list[Path],
              argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process that joins ``procs_files`` before it execs."""
        targets = [str(p) for p in procs_files]

        def join() -> None:
            for target in targets:
                fd = os.open(target, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)

        child = subprocess.Popen(argv or ["sleep", "1000"], preexec_fn=join)
        self.children.append(child)
        return child

    def cleanup(self) -> None:
        parents = [p for p in self.manager.joined_parent_dirs() if p.is_dir()]
        for parent in parents:
            for dirpath, _dirs, files in os.walk(parent):
                if "cgroup.freeze" in files:
                    _write_quietly(Path(dirpath) / "cgroup.freeze", "0")
                if "freezer.state" in files:
                    _write_quietly(Path(dirpath) / "freezer.state", "THAWED")
        for child in self.children:
            if child.poll() is None:
                child.kill()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for parent in parents:
            for dirpath, _dirs, _files in os.walk(parent, topdown=False):
                wait_for(functools.partial(_rmdir, dirpath), timeout=5.0)


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
        raise
    return True


def _make(kind: str, parent: str) -> Real:
    layout = host_layout()
    if kind == "v2":
        if layout is Layout.UNIFIED:
            v2_root = ROOT
        elif layout is Layout.HYBRID:
            v2_root = ROOT / "unified"
        else:
            pytest.skip("no cgroup2 mount")
        controllers = set((v2_root / "cgroup.controllers").read_text().split())
        return Real(kind, CgroupManager(v2_root, parent, Layout.UNIFIED), controllers)
    if kind == "v1":
        if layout not in (Layout.HYBRID, Layout.LEGACY):
            pytest.skip("no cgroup v1 controllers")
        # Driven as legacy even on a hybrid host: the v1 side alone.
        manager = CgroupManager(ROOT, parent, Layout.LEGACY)
        return Real(kind, manager, set(v1_hierarchies(ROOT)))
    if layout is not Layout.HYBRID:
        pytest.skip("host is not hybrid")
    manager = open_manager(ROOT, parent)
    unified = set((ROOT / "unified" / "cgroup.controllers").read_text().split())
    controllers = set(v1_hierarchies(ROOT)) | unified
    return Real(kind, manager, controllers)


DRIVERS = {"v2": V2Cgroup, "v1": V1Cgroup, "hybrid": HybridCgroup}


@pytest.fixture(params=list(DRIVERS))
def real(request: pytest.FixtureRequest) -> Iterator[Real]:
    harness = _make(request.param, f"lxcflow-test-{secrets.token_hex(4)}")
    try:
        yield harness
    finally:
        harness.cleanup()
        leftovers = [str(p) for p in harness.manager.joined_parent_dirs() if p.exists()]
        assert not leftovers, f"could not remove {leftovers}"


def test_create_open_names_remove(real: Real) -> None:
    manager = real.manager
    assert not manager.exists("c1")
    cg = manager.create("c1")
    assert isinstance(cg, DRIVERS[real.kind])
    assert manager.exists("c1")
    assert manager.names() == ["c1"]
    assert isinstance(manager.open("c1"), DRIVERS[real.kind])
    procs = cg.procs_files()
    assert procs
    assert all(p.is_file() for p in procs)
    # the init joins name=systemd too, beside the controllers' hierarchies
    assert any("systemd" in p.parts for p in procs) == (real.kind != "v2")
    assert cg.pids() == []
    cg.remove()
    cg.remove()
    assert not manager.exists("c1")
    assert manager.names() == []
    with pytest.raises(CgroupError, match="does not exist"):
        manager.open("c1")
    manager.remove_parent_if_empty()
    assert not any(p.exists() for p in manager.joined_parent_dirs())


def test_create_reuses_empty_leftover_refuses_populated(real: Real) -> None:
    manager = real.manager
    cg = manager.create("c1")
    if real.has("pids"):
        cg.set("pids.max", "7")
    cg.request_freeze(True)
    cg = manager.create("c1")
    assert cg.freezer_state() == "THAWED"
    if real.has("pids"):
        assert cg.get("pids.max") == "max"
    child = real.spawn(cg.procs_files())
    assert wait_for(lambda: cg.pids() == [child.pid])
    with pytest.raises(CgroupError, match="cgroup c1 already has processes"):
        manager.create("c1")
    assert cg.pids() == [child.pid]


def test_attributes(real: Real) -> None:
    cg = real.manager.create("c1")
    if real.has("pids"):
        cg.set("pids.max", "100")
        assert cg.get("pids.max") == "100"
        with pytest.raises(CgroupError, match="Invalid argument") as refused:
            cg.set("pids.max", "abc")
        assert refused.value.details["errno"] == errno.EINVAL
    else:
        with pytest.raises(UsageError, match="pids.max is not available"):
            cg.set("pids.max", "100")
    if real.has("memory"):
        cg.set("memory.max", "67108864")
        assert cg.get("memory.max") == "67108864"
        assert cg.get("memory.limit_in_bytes") == "67108864"
        cg.set("memory.limit_in_bytes", "-1")
        assert cg.get("memory.max") == "max"
    else:
        with pytest.raises(UsageError, match="memory.max is not available"):
            cg.set("memory.max", "max")
    if real.has("cpuset"):
        cpus = cg.get("cpuset.cpus")
        assert cpus or real.kind == "v2"
    with pytest.raises(UsageError, match="managed by lxcflow"):
        cg.set("cgroup.procs", "1")
    with pytest.raises(UsageError, match="malformed"):
        cg.get("../../cgroup.procs")


def test_priority(real: Real) -> None:
    cg = real.manager.create("c1")
    if not real.has("cpu"):
        with pytest.raises(UsageError, match="CPU priority is not available"):
            cg.priority()
        with pytest.raises(UsageError, match="CPU priority is not available"):
            cg.set_priority(512)
        return
    on_v1 = real.kind != "v2"
    assert cg.priority() == (1024 if on_v1 else names.weight_to_shares(100))
    cg.set_priority(512)
    assert cg.priority() == (512 if on_v1 else names.weight_to_shares(names.shares_to_weight(512)))
    for edge in (2, 262144):
        cg.set_priority(edge)
        assert cg.priority() == edge
    with pytest.raises(UsageError):
        cg.set_priority(1)
    with pytest.raises(UsageError):
        cg.set_priority(262145)


def test_processes_usage_and_sigterm(real: Real) -> None:
    cg = real.manager.create("c1")
    before = cg.cpu_usage_ns()
    busy = real.spawn(cg.procs_files(), [sys.executable, "-c", BUSY_CHILD])
    assert busy.wait(timeout=30) == 0
    assert cg.cpu_usage_ns() - before > 50_000_000
    child = real.spawn(cg.procs_files())
    assert wait_for(lambda: cg.pids() == [child.pid])
    assert cg.read_events().populated
    memory = cg.memory_bytes()
    if real.has("memory"):
        assert memory is not None
        assert memory > 0
    else:
        assert memory is None
    assert cg.kill(signal.SIGTERM) == 1
    assert child.wait(timeout=10) == -signal.SIGTERM
    assert wait_for(lambda: cg.pids() == [] and not cg.read_events().populated)
    cg.remove()


def test_freeze_and_thaw(real: Real) -> None:
    cg = real.manager.create("c1")
    if real.kind == "v1":
        assert cg.events_file is None
    else:
        assert cg.events_file is not None
        assert cg.events_file.is_file()
    child = real.spawn(cg.procs_files())
    assert wait_for(lambda: cg.pids() == [child.pid])
    assert cg.freezer_state() == "THAWED"
    cg.request_freeze(True)
    assert cg.freezer_state() in ("FREEZING", "FROZEN")
    assert wait_for(lambda: cg.freezer_state() == "FROZEN")
    assert cg.read_events().frozen
    cg.request_freeze(False)
    assert wait_for(lambda: cg.freezer_state() == "THAWED")
    assert not cg.read_events().frozen
    assert cg.kill(signal.SIGTERM) == 1
    assert child.wait(timeout=10) == -signal.SIGTERM


def test_sigkill_empties_cgroup(real: Real) -> None:
    cg = real.manager.create("c1")
    children = [real.spawn(cg.procs_files()) for _ in range(2)]
    assert wait_for(lambda: cg.pids() == sorted(c.pid for c in children))
    assert cg.kill(signal.SIGKILL) == 2
    for child in children:
        assert child.wait(timeout=10) == -signal.SIGKILL
    assert wait_for(lambda: cg.pids() == [] and not cg.read_events().populated)
    cg.remove()
    assert not real.manager.exists("c1")


def test_sigkill_reaches_frozen_cgroup(real: Real) -> None:
    cg = real.manager.create("c1")
    child = real.spawn(cg.procs_files())
    assert wait_for(lambda: cg.pids() == [child.pid])
    cg.request_freeze(True)
    assert wait_for(lambda: cg.freezer_state() == "FROZEN")
    assert cg.kill(signal.SIGKILL) == 1
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert wait_for(lambda: not cg.read_events().populated)
    cg.remove()


def test_remove_refused_while_busy(real: Real) -> None:
    cg = real.manager.create("c1")
    child = real.spawn(cg.procs_files())
    assert wait_for(lambda: cg.pids() == [child.pid])
    with pytest.raises(CgroupError, match="cgroup c1 still has processes"):
        cg.remove()
    assert real.manager.exists("c1")
    cg.kill(signal.SIGKILL)
    child.wait(timeout=10)
    assert wait_for(lambda: not cg.read_events().populated)
    cg.remove()
    assert not real.manager.exists("c1")


def test_child_cgroups_counted_and_removed(real: Real) -> None:
    cg = real.manager.create("c1")
    inner: list[Path] = []
    for procs in cg.procs_files():
        directory = procs.parent / "inner"
        directory.mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):
            # v1 cpusets start empty; the container's own values let tasks in.
            if (directory / name).is_file():
                (directory / name).write_text((procs.parent / name).read_text())
        inner.append(directory / "cgroup.procs")
    child = real.spawn(inner)
    assert wait_for(lambda: cg.pids() == [child.pid])
    assert cg.read_events().populated
    assert cg.kill(signal.SIGKILL) == 1
    child.wait(timeout=10)
    assert wait_for(lambda: not cg.read_events().populated)
    cg.remove()
    assert not any(p.parent.exists() for p in inner)
    assert not real.manager.exists("c1")
