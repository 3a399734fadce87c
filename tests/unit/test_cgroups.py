"""Unit tests of lxcflow.cgroups against fake cgroup trees of every layout."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lxcflow.cgroups import (
    CgroupEvents,
    CgroupManager,
    HybridCgroup,
    Layout,
    V1Cgroup,
    V2Cgroup,
    detect_layout,
    open_manager,
)
from lxcflow.cgroups import names as cgnames
from lxcflow.cgroups.layout import other_v1_hierarchies
from lxcflow.errors import CgroupError, UsageError
from tests.unit.fake_cgroups import FakeCgroupTree

LAYOUTS = [Layout.UNIFIED, Layout.HYBRID, Layout.LEGACY]
V1_LAYOUTS = [Layout.HYBRID, Layout.LEGACY]
DRIVER = {Layout.UNIFIED: V2Cgroup, Layout.HYBRID: HybridCgroup, Layout.LEGACY: V1Cgroup}
# v2 ships weight 100 by default, which the crun formula reads as these shares.
V2_DEFAULT_SHARES = cgnames.weight_to_shares(100)


def unique_parent() -> str:
    return f"lxcflow-test-{secrets.token_hex(4)}"


def make_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout,
              **kwargs: str) -> FakeCgroupTree:
    root = tmp_path / "cgroup"
    root.mkdir()
    fake = FakeCgroupTree(root, layout, **kwargs)
    fake.install(monkeypatch)
    return fake


@pytest.fixture(params=LAYOUTS, ids=lambda layout: layout.value)
def tree(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> FakeCgroupTree:
    return make_tree(tmp_path, monkeypatch, request.param)


@pytest.fixture
def manager(tree: FakeCgroupTree) -> CgroupManager:
    return open_manager(tree.root, unique_parent())


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "1000"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def is_v1(layout: Layout) -> bool:
    """Whether controller attributes live on v1 (legacy and hybrid fakes)."""
    return layout is not Layout.UNIFIED


# -- layout detection -----------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.value)
def test_detect_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    fake = make_tree(tmp_path, monkeypatch, layout)
    assert detect_layout(fake.root) is layout


def test_detect_layout_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="no cgroup filesystem found at"):
        detect_layout(tmp_path)


def test_detect_layout_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="no cgroup filesystem found at"):
        detect_layout(tmp_path / "nope")


# -- names ----------------------------------------------------------------------


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert cgnames.shares_to_weight(shares) == weight
    assert cgnames.shares_to_weight(cgnames.weight_to_shares(weight)) == weight


@pytest.mark.parametrize(("weight", "shares"), [(1, 2), (100, 2598), (10000, 262144)])
def test_weight_to_shares(weight: int, shares: int) -> None:
    assert cgnames.weight_to_shares(weight) == shares
    assert cgnames.shares_to_weight(shares) == weight


def test_every_weight_round_trips_through_shares() -> None:
    for weight in range(cgnames.WEIGHT_MIN, cgnames.WEIGHT_MAX + 1):
        shares = cgnames.weight_to_shares(weight)
        assert cgnames.SHARES_MIN <= shares <= cgnames.SHARES_MAX
        assert cgnames.shares_to_weight(shares) == weight


def test_every_blkio_weight_round_trips_through_io_weight() -> None:
    for weight in range(cgnames.BLKIO_MIN, cgnames.BLKIO_MAX + 1):
        io_weight = cgnames.blkio_to_io_weight(weight)
        assert 1 <= io_weight <= cgnames.WEIGHT_MAX
        assert cgnames.io_to_blkio_weight(io_weight) == weight


@pytest.mark.parametrize(
    ("v1_key", "v1_value", "v2_key", "v2_value"),
    [
        ("cpu.shares", "2", "cpu.weight", "1"),
        ("cpu.shares", "262144", "cpu.weight", "10000"),
        ("memory.limit_in_bytes", "-1", "memory.max", "max"),
        ("memory.limit_in_bytes", "1048576", "memory.max", "1048576"),
        ("memory.soft_limit_in_bytes", "-1", "memory.low", "max"),
        ("blkio.weight", "10", "io.weight", "default 1"),
        ("blkio.weight", "1000", "io.weight", "default 10000"),
        ("pids.max", "100", "pids.max", "100"),
        ("cpuset.cpus", "0-1", "cpuset.cpus", "0-1"),
        ("cpuset.mems", "0", "cpuset.mems", "0"),
    ],
)
def test_mapping_round_trips(v1_key: str, v1_value: str, v2_key: str, v2_value: str) -> None:
    to_v2 = cgnames.to_v2(v1_key)
    assert to_v2.key == v2_key
    assert to_v2.to_file(v1_value) == v2_value
    assert to_v2.from_file(v2_value) == v1_value
    to_v1 = cgnames.to_v1(v2_key)
    assert to_v1.key == v1_key
    assert to_v1.to_file(v2_value) == v1_value
    assert to_v1.from_file(v1_value) == v2_value


def test_v1_unlimited_reads_back_as_max() -> None:
    assert cgnames.to_v1("memory.max").from_file("9223372036854771712\n") == "max"


def test_io_weight_reads_default_among_device_lines() -> None:
    assert cgnames.to_v2("blkio.weight").from_file("default 4950\n8:0 200\n") == "500"


@pytest.mark.parametrize(
    ("convert", "key", "hint"),
    [
        (cgnames.to_v2, "memory.memsw.limit_in_bytes", "memory.swap.max"),
        (cgnames.to_v2, "cpu.cfs_quota_us", "cpu.max"),
        (cgnames.to_v2, "cpu.cfs_period_us", "cpu.max"),
        (cgnames.to_v1, "cpu.max", "cpu.cfs_quota_us"),
        (cgnames.to_v1, "memory.swap.max", "memory.memsw.limit_in_bytes"),
    ],
)
def test_mapping_refuses_lookalikes(convert: Callable[[str], cgnames.Mapping], key: str,
                                    hint: str) -> None:
    with pytest.raises(UsageError, match=hint):
        convert(key)


@pytest.mark.parametrize(
    "key", ["", "cpu", "../cpu.shares", "cpu.shares/../x", "cpu..shares", "CPU.shares",
            "cpu.shares\n", "cgroup procs", ".cpu"],
)
def test_malformed_keys_refused(key: str) -> None:
    with pytest.raises(UsageError, match="malformed"):
        cgnames.check_key(key)


@pytest.mark.parametrize(
    ("convert", "key", "value"),
    [(cgnames.to_v2, "cpu.shares", "1"), (cgnames.to_v2, "cpu.shares", "x"),
     (cgnames.to_v2, "blkio.weight", "1001"), (cgnames.to_v1, "cpu.weight", "0"),
     (cgnames.to_v1, "io.weight", "default 10001")],
)
def test_converted_values_checked(convert: Callable[[str], cgnames.Mapping], key: str,
                                  value: str) -> None:
    with pytest.raises(UsageError, match=key):
        convert(key).to_file(value)


# -- manager --------------------------------------------------------------------


def test_create_open_exists_names(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    assert manager.layout is tree.layout
    assert not manager.exists("c1")
    cg = manager.create("c1")
    assert isinstance(cg, DRIVER[tree.layout])
    assert cg.name == "c1"
    assert manager.exists("c1")
    assert manager.names() == ["c1"]
    assert isinstance(manager.open("c1"), DRIVER[tree.layout])
    procs = cg.procs_files()
    # every hierarchy, name=systemd too: the init's cgroup namespace is then
    # rooted at the container's own cgroup in each
    expected = {Layout.UNIFIED: 1, Layout.HYBRID: 10, Layout.LEGACY: 9}[tree.layout]
    assert len(procs) == expected
    assert all(p.is_file() and p.name == "cgroup.procs" for p in procs)
    assert any("systemd" in p.parts for p in procs) == (tree.layout is not Layout.UNIFIED)


def test_open_missing(manager: CgroupManager) -> None:
    with pytest.raises(CgroupError, match="cgroup c9 does not exist"):
        manager.open("c9")


@pytest.mark.parametrize("layout", V1_LAYOUTS, ids=lambda layout: layout.value)
def test_open_incomplete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    tree = make_tree(tmp_path, monkeypatch, layout)
    manager = open_manager(tree.root, unique_parent())
    cg = manager.create("c1")
    # a controller's hierarchy (name=systemd's may lack it: a container
    # started before its init joined one there is still whole)
    tree._remove_dir(next(p.parent for p in cg.procs_files() if "memory" in p.parts))
    assert not manager.exists("c1")
    assert manager.names() == ["c1"]
    with pytest.raises(CgroupError, match="incomplete"):
        manager.open("c1")
    manager.create("c1").remove()
    assert manager.names() == []


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", ".hidden", "x y", "-x"])
def test_invalid_names(manager: CgroupManager, name: str) -> None:
    with pytest.raises(UsageError):
        manager.create(name)
    with pytest.raises(UsageError):
        manager.open(name)


def test_invalid_parent(tree: FakeCgroupTree) -> None:
    with pytest.raises(UsageError):
        open_manager(tree.root, "../escape")


def test_create_reuses_empty_leftover(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    first = manager.create("c1")
    first.set("pids.max", "5")
    first.request_freeze(True)
    tree.sync()
    again = manager.create("c1")
    assert again.get("pids.max") == "max"
    assert again.freezer_state() == "THAWED"
    assert manager.names() == ["c1"]


def test_create_refused_when_populated(tree: FakeCgroupTree, manager: CgroupManager,
                                       sleeper: subprocess.Popen[bytes]) -> None:
    cg = manager.create("c1")
    tree.add_pids(cg, [sleeper.pid])
    with pytest.raises(CgroupError, match="cgroup c1 already has processes"):
        manager.create("c1")
    assert cg.pids() == [sleeper.pid]


def test_create_nothing_half_created(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    parents = manager.parent_dirs()
    for parent in parents:
        parent.mkdir()
    tree.sync()
    (parents[-1] / "c1").write_text("in the way\n")
    with pytest.raises(CgroupError, match="cannot create cgroup"):
        manager.create("c1")
    assert not any((parent / "c1").is_dir() for parent in parents)
    assert not manager.exists("c1")
    assert manager.names() == []


def test_create_failure_removes_parents_it_made(tree: FakeCgroupTree,
                                                manager: CgroupManager) -> None:
    parents = manager.parent_dirs()
    parents[-1].write_text("in the way\n")
    with pytest.raises(CgroupError):
        manager.create("c1")
    assert not any(parent.is_dir() for parent in parents)


def test_v2_enables_controllers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_tree(tmp_path, monkeypatch, Layout.UNIFIED, v2_controllers="cpu pids")
    manager = open_manager(fake.root, unique_parent())
    cg = manager.create("c1")
    assert (fake.root / "cgroup.subtree_control").read_text().split() == ["cpu", "pids"]
    assert manager.parent_dirs()[0].joinpath("cgroup.subtree_control").read_text().split() == [
        "cpu", "pids"]
    assert cg.get("pids.max") == "max"
    assert cg.memory_bytes() is None
    with pytest.raises(UsageError, match="memory.max is not available on this unified system"):
        cg.set("memory.max", "max")


def test_v2_without_controllers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_tree(tmp_path, monkeypatch, Layout.UNIFIED, v2_controllers="")
    cg = open_manager(fake.root, unique_parent()).create("c1")
    with pytest.raises(UsageError, match="CPU priority is not available"):
        cg.priority()
    with pytest.raises(UsageError, match="CPU priority is not available"):
        cg.set_priority(1024)
    assert cg.memory_bytes() is None
    assert cg.cpu_usage_ns() == 0


@pytest.mark.parametrize("layout", V1_LAYOUTS, ids=lambda layout: layout.value)
def test_v1_cpuset_copied_from_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      layout: Layout) -> None:
    # A new v1 cpuset starts empty and refuses processes until given cpus and mems.
    tree = make_tree(tmp_path, monkeypatch, layout)
    cg = open_manager(tree.root, unique_parent()).create("c1")
    assert cg.get("cpuset.cpus") == "0-1"
    assert cg.get("cpuset.mems") == "0"


def test_remove_idempotent_and_parent(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    manager.create("c2").remove()
    manager.remove_parent_if_empty()
    assert all(parent.is_dir() for parent in manager.parent_dirs())
    cg.remove()
    cg.remove()
    assert not manager.exists("c1")
    assert manager.names() == []
    manager.remove_parent_if_empty()
    assert not any(parent.exists() for parent in manager.parent_dirs())
    manager.remove_parent_if_empty()


def test_create_after_parent_or_leftover_changed(tree: FakeCgroupTree,
                                                 manager: CgroupManager) -> None:
    # Later creates take a short path (one mkdir per hierarchy); a parent
    # removed since, or a leftover of the same name, must still work.
    manager.create("c1").remove()
    manager.remove_parent_if_empty()
    cg = manager.create("c2")
    assert manager.exists("c2")
    assert all(p.is_dir() for p in manager.parent_dirs())
    for procs in cg.procs_files():  # a crash left c3 behind, empty
        (procs.parent.parent / "c3").mkdir()
    tree.sync()
    manager.create("c3")
    manager.create("c4")  # the short path again
    assert manager.names() == ["c2", "c3", "c4"]
    if tree.v1_roots:
        for name in ("c3", "c4"):
            cpus = tree.v1_roots["cpuset"] / manager.parent / name / "cpuset.cpus"
            assert cpus.read_text().strip(), "a new v1 cpuset needs its parent's cpus"


def test_remove_refused_with_processes(tree: FakeCgroupTree, manager: CgroupManager,
                                       sleeper: subprocess.Popen[bytes]) -> None:
    cg = manager.create("c1")
    tree.add_pids(cg, [sleeper.pid])
    with pytest.raises(CgroupError, match="cgroup c1 still has processes"):
        cg.remove()
    assert manager.exists("c1")
    tree.clear_pids(cg)
    cg.remove()
    assert not manager.exists("c1")


def test_remove_takes_child_cgroups(tree: FakeCgroupTree, manager: CgroupManager,
                                    sleeper: subprocess.Popen[bytes]) -> None:
    cg = manager.create("c1")
    for procs in cg.procs_files():
        (procs.parent / "inner").mkdir()
    tree.sync()
    tree.add_pids(cg, [sleeper.pid], child="inner")
    assert cg.pids() == [sleeper.pid]
    assert cg.read_events().populated
    tree.clear_pids(cg)
    cg.remove()
    assert not any(p.parent.exists() for p in cg.procs_files())


def test_process_count_is_the_count_of_pids_child_cgroups_included(
    tree: FakeCgroupTree, manager: CgroupManager, sleeper: subprocess.Popen[bytes]
) -> None:
    cg = manager.create("c1")
    assert cg.process_count() == 0
    for procs in cg.procs_files():
        (procs.parent / "inner").mkdir()
    tree.sync()
    tree.add_pids(cg, [os.getpid()])
    tree.add_pids(cg, [sleeper.pid], child="inner")
    assert cg.process_count() == len(cg.pids()) == 2
    tree.clear_pids(cg)
    assert cg.process_count() == 0


def test_other_v1_hierarchies_are_the_unused_ones(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path, monkeypatch, Layout.HYBRID)
    (tree.root / "net_cls,net_prio").mkdir()
    (tree.root / "net_cls,net_prio" / "cgroup.procs").write_text("")
    (tree.root / "net_prio").symlink_to("net_cls,net_prio")  # an alias: not another one
    assert other_v1_hierarchies(tree.root) == [
        tree.root / "net_cls,net_prio", tree.root / "systemd",
    ]
    (tmp_path / "u").mkdir()
    unified = make_tree(tmp_path / "u", monkeypatch, Layout.UNIFIED)
    assert other_v1_hierarchies(unified.root) == []


@pytest.mark.parametrize("layout", [Layout.HYBRID, Layout.LEGACY], ids=lambda x: x.value)
def test_what_a_containers_systemd_made_goes_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout
) -> None:
    """systemd in a container that sees the host's cgroup trees makes its
    cgroups in every hierarchy, name=systemd included, under its own path."""
    tree = make_tree(tmp_path, monkeypatch, layout)
    manager = open_manager(tree.root, unique_parent())
    cg = manager.create("deb")
    made = [tree.root / "systemd" / manager.parent / "deb" / "system.slice" / "dbus.service"]
    made += [procs.parent / "init.scope" for procs in cg.procs_files()]
    for directory in made:
        directory.mkdir(parents=True)
        (directory / "cgroup.procs").write_text("")
    tree.sync()
    cg.remove()
    manager.remove_parent_if_empty()
    assert not (tree.root / "systemd" / manager.parent).exists()
    assert not any(parent.exists() for parent in manager.parent_dirs())


def test_an_unused_hierarchys_parent_kept_by_others_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path, monkeypatch, Layout.HYBRID)
    manager = open_manager(tree.root, unique_parent())
    manager.create("deb").remove()
    stranger = tree.root / "systemd" / manager.parent / "not-a-container-of-ours"
    stranger.mkdir(parents=True)
    manager.remove_parent_if_empty()
    assert stranger.is_dir()
    assert not any(parent.exists() for parent in manager.parent_dirs())


# -- attributes -----------------------------------------------------------------


def test_set_get_native(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    cg.set("pids.max", "100")
    assert cg.get("pids.max") == "100"
    assert tree.control_file(cg, "pids.max").read_text() == "100"
    if is_v1(tree.layout):
        cg.set("cpu.cfs_quota_us", "50000")
        assert cg.get("cpu.cfs_quota_us") == "50000"
        cg.set("memory.memsw.limit_in_bytes", "1048576")
        assert cg.get("memory.memsw.limit_in_bytes") == "1048576"
    else:
        cg.set("cpu.max", "50000 100000")
        assert cg.get("cpu.max") == "50000 100000"


def test_set_get_mapped_cpu(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    cg.set("cpu.shares", "512")
    if is_v1(tree.layout):
        assert tree.control_file(cg, "cpu.shares").read_text() == "512"
        assert cg.get("cpu.shares") == "512"
        cg.set("cpu.weight", "100")
        assert tree.control_file(cg, "cpu.shares").read_text() == "2598"
        assert cg.get("cpu.weight") == "100"
    else:
        assert tree.control_file(cg, "cpu.weight").read_text() == "20"
        assert cg.get("cpu.shares") == str(cgnames.weight_to_shares(20))
        assert cg.get("cpu.weight") == "20"


def test_set_get_mapped_memory(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    if is_v1(tree.layout):
        assert cg.get("memory.max") == "max"
        cg.set("memory.max", "1048576")
        assert tree.control_file(cg, "memory.limit_in_bytes").read_text() == "1048576"
        assert cg.get("memory.max") == "1048576"
        cg.set("memory.max", "max")
        assert tree.control_file(cg, "memory.limit_in_bytes").read_text() == "-1"
        cg.set("memory.low", "4096")
        assert cg.get("memory.soft_limit_in_bytes") == "4096"
    else:
        assert cg.get("memory.limit_in_bytes") == "-1"
        cg.set("memory.limit_in_bytes", "1048576")
        assert tree.control_file(cg, "memory.max").read_text() == "1048576"
        cg.set("memory.limit_in_bytes", "-1")
        assert tree.control_file(cg, "memory.max").read_text() == "max"
        assert cg.get("memory.limit_in_bytes") == "-1"
        cg.set("memory.soft_limit_in_bytes", "4096")
        assert cg.get("memory.low") == "4096"


def test_set_get_mapped_io(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    if is_v1(tree.layout):
        cg.set("io.weight", "default 100")
        assert tree.control_file(cg, "blkio.weight").read_text() == "20"
        assert cg.get("blkio.weight") == "20"
        assert cg.get("io.weight") == f"default {cgnames.blkio_to_io_weight(20)}"
    else:
        cg.set("blkio.weight", "500")
        assert tree.control_file(cg, "io.weight").read_text() == "default 4950"
        assert cg.get("blkio.weight") == "500"


def test_hybrid_routes_v2_only_files_to_unified(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_tree(tmp_path, monkeypatch, Layout.HYBRID)
    cg = open_manager(fake.root, unique_parent()).create("c1")
    assert isinstance(cg, HybridCgroup)
    assert cg.locate("cpu.stat").path.parent == cg.unified.path  # type: ignore[union-attr]
    assert cg.locate("cpu.shares").path.parent == cg.legacy.dirs["cpu"]  # type: ignore[union-attr]
    assert cg.get("cgroup.type") == "domain"


REFUSALS = [
    ("memory.memsw.limit_in_bytes", [Layout.UNIFIED], "memory.swap.max"),
    ("cpu.cfs_quota_us", [Layout.UNIFIED], "cpu.max"),
    ("cpu.max", [Layout.HYBRID, Layout.LEGACY], "cpu.cfs_quota_us"),
    ("memory.swap.max", [Layout.HYBRID, Layout.LEGACY], "memory.memsw.limit_in_bytes"),
    ("devices.allow", [Layout.UNIFIED], "devices.allow is not available on this unified"),
    ("memory.nosuchfile", LAYOUTS, "memory.nosuchfile is not available on this"),
    ("nosuch.controller", LAYOUTS, "is not available on this"),
    ("cgroup.procs", LAYOUTS, "managed by lxcflow"),
    ("cgroup.kill", LAYOUTS, "managed by lxcflow"),
    ("freezer.state", LAYOUTS, "managed by lxcflow"),
    ("../../etc.passwd", LAYOUTS, "malformed"),
    ("cpu.shares/x", LAYOUTS, "malformed"),
]


@pytest.mark.parametrize(
    ("layout", "key", "message"),
    [pytest.param(layout, key, message, id=f"{layout.value}-{key}")
     for key, layouts, message in REFUSALS for layout in layouts],
)
def test_set_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout,
                      key: str, message: str) -> None:
    fake = make_tree(tmp_path, monkeypatch, layout)
    cg = open_manager(fake.root, unique_parent()).create("c1")
    with pytest.raises(UsageError, match=message):
        cg.set(key, "1")


def test_get_unknown_names_layout(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    with pytest.raises(UsageError, match=f"on this {tree.layout.value} system"):
        cg.get("memory.nosuchfile")


# -- priority -------------------------------------------------------------------


def test_priority(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    assert cg.priority() == (1024 if is_v1(tree.layout) else V2_DEFAULT_SHARES)
    cg.set_priority(512)
    expected = 512 if is_v1(tree.layout) else cgnames.weight_to_shares(20)
    assert cg.priority() == expected


@pytest.mark.parametrize("shares", [2, 262144])
def test_priority_edges_exact(tree: FakeCgroupTree, manager: CgroupManager, shares: int) -> None:
    cg = manager.create("c1")
    cg.set_priority(shares)
    assert cg.priority() == shares


@pytest.mark.parametrize("shares", [1, 0, -5, 262145])
def test_priority_out_of_range(tree: FakeCgroupTree, manager: CgroupManager, shares: int) -> None:
    cg = manager.create("c1")
    with pytest.raises(UsageError, match=r"2\.\.262144"):
        cg.set_priority(shares)


# -- processes, events, freezing, killing -------------------------------------------


def test_events_and_freeze(tree: FakeCgroupTree, manager: CgroupManager,
                           sleeper: subprocess.Popen[bytes]) -> None:
    cg = manager.create("c1")
    if tree.layout is Layout.LEGACY:
        assert cg.events_file is None
    else:
        assert cg.events_file is not None
        assert cg.events_file.name == "cgroup.events"
        assert cg.events_file.is_file()
    assert cg.read_events() == CgroupEvents(populated=False, frozen=False)
    assert cg.freezer_state() == "THAWED"
    tree.add_pids(cg, [sleeper.pid])
    assert cg.pids() == [sleeper.pid]
    assert cg.read_events() == CgroupEvents(populated=True, frozen=False)
    cg.request_freeze(True)
    if tree.layout is not Layout.LEGACY:
        assert cg.freezer_state() == "FREEZING"
        assert not cg.read_events().frozen
    tree.sync()
    assert cg.freezer_state() == "FROZEN"
    assert cg.read_events() == CgroupEvents(populated=True, frozen=True)
    cg.request_freeze(False)
    tree.sync()
    assert cg.freezer_state() == "THAWED"
    assert cg.read_events() == CgroupEvents(populated=True, frozen=False)


def test_cpu_and_memory_usage(tree: FakeCgroupTree, manager: CgroupManager) -> None:
    cg = manager.create("c1")
    assert cg.cpu_usage_ns() == 0
    if tree.layout is Layout.LEGACY:
        tree.control_file(cg, "cpuacct.usage").write_text("5000\n")
        assert cg.cpu_usage_ns() == 5000
    else:
        tree.control_file(cg, "cpu.stat").write_text("usage_usec 1234\nuser_usec 1000\n")
        assert cg.cpu_usage_ns() == 1_234_000
    name = "memory.current" if tree.layout is Layout.UNIFIED else "memory.usage_in_bytes"
    tree.control_file(cg, name).write_text("4096\n")
    assert cg.memory_bytes() == 4096


def test_kill_with_signal(tree: FakeCgroupTree, manager: CgroupManager,
                          sleeper: subprocess.Popen[bytes]) -> None:
    cg = manager.create("c1")
    tree.add_pids(cg, [sleeper.pid])
    assert cg.kill(signal.SIGTERM) == 1
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert tree.killed == []
    # The fake still lists the pid; a gone process is skipped, not an error.
    assert cg.kill(signal.SIGTERM) == 0


def test_kill_sigkill(tree: FakeCgroupTree, manager: CgroupManager,
                      sleeper: subprocess.Popen[bytes]) -> None:
    cg = manager.create("c1")
    tree.add_pids(cg, [sleeper.pid])
    assert cg.kill(signal.SIGKILL) == 1
    if tree.layout is Layout.LEGACY:
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
    else:
        # cgroup.kill was used: the fake records what the kernel would kill.
        tree.sync()
        assert tree.killed == [sleeper.pid]
        assert cg.pids() == []
        assert not cg.read_events().populated


def test_hybrid_sigkill_reaches_a_process_on_the_v1_side_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        sleeper: subprocess.Popen[bytes]) -> None:
    tree = make_tree(tmp_path, monkeypatch, Layout.HYBRID)
    cg = open_manager(tree.root, unique_parent()).create("c1")
    memory = next(p for p in cg.procs_files() if "/memory/" in str(p))
    memory.write_text(f"{sleeper.pid}\n")  # not on the cgroup2 side: cgroup.kill misses it
    tree.sync()
    assert cg.kill(signal.SIGKILL) == 1
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert tree.killed == []


def test_kill_empty(manager: CgroupManager) -> None:
    cg = manager.create("c1")
    assert cg.kill(signal.SIGTERM) == 0
    assert cg.kill(signal.SIGKILL) == 0


def test_sigkill_thaws_v1_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 sleeper: subprocess.Popen[bytes]) -> None:
    # A v1-frozen task would hold SIGKILL pending until thawed.
    fake = make_tree(tmp_path, monkeypatch, Layout.LEGACY)
    cg = open_manager(fake.root, unique_parent()).create("c1")
    fake.add_pids(cg, [sleeper.pid])
    cg.request_freeze(True)
    fake.sync()
    assert cg.freezer_state() == "FROZEN"
    assert cg.kill(signal.SIGKILL) == 1
    assert cg.freezer_state() == "THAWED"
