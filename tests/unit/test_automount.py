"""lxc.mount.auto -> the shim's mount calls, in LXC's variants."""

from __future__ import annotations

from lxcflow.cgroups.layout import Hierarchy
from lxcflow.runtime.automount import MASKED_DIRS, MASKED_FILES, READ_ONLY, automounts
from lxcflow.runtime.mountops import (
    MS_BIND,
    MS_RDONLY,
    MS_REC,
    OPT_BIND_RO,
    OPT_OPTIONAL,
    OPT_REMOUNT,
    OPT_SRC_IN_ROOT,
    MountOp,
)

HYBRID = [Hierarchy("cpu", "cgroup", "cpu"), Hierarchy("systemd", "cgroup", "name=systemd"),
          Hierarchy("unified", "cgroup2", "")]


def mounts(words: list[str], *, init: bool = True, net: bool = True, root: bool = True,
           hierarchies: list[Hierarchy] = HYBRID) -> tuple[list[MountOp], list[MountOp]]:
    return automounts(words, boots_init=init, own_network=net, own_root=root,
                      hierarchies=hierarchies)


def read_only(ops: list[MountOp]) -> set[str]:
    """The targets left read-only."""
    return {op.target for op in ops
            if op.opts & OPT_BIND_RO or (op.flags & MS_RDONLY and not op.opts & OPT_REMOUNT)
            or (op.opts & OPT_REMOUNT and op.flags & MS_RDONLY)}


def binds(ops: list[MountOp]) -> list[str]:
    return [op.target for op in ops if op.flags & MS_BIND and op.opts & OPT_SRC_IN_ROOT]


def test_the_default_is_mixed_proc_and_sys_and_cgroup_for_an_init() -> None:
    first, cgroup = mounts([])
    assert [op.fstype for op in first if op.fstype in ("proc", "sysfs")] == ["proc", "sysfs"]
    # /proc/sys/net stays the container's own: bound before /proc/sys goes read-only
    assert binds(first) == ["/proc/sys/net", "/proc/sys", "/proc/sysrq-trigger", *READ_ONLY,
                            "/sys/devices/virtual/net", "/sys"]
    assert read_only(first) == {"/proc/sys", "/proc/sysrq-trigger", *READ_ONLY,
                                *MASKED_FILES, *MASKED_DIRS, "/sys"}
    recursive = {op.target for op in first if op.flags & MS_REC}
    assert recursive == {"/proc/sys", "/sys"}  # the writable binds inside come along
    assert [op.target for op in cgroup] == [
        "/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
    assert [op.data for op in cgroup[1:4]] == ["cpu", "name=systemd", ""]
    assert cgroup[-1].opts & OPT_REMOUNT
    assert cgroup[-1].flags & MS_RDONLY


def test_without_a_network_of_its_own_proc_sys_net_is_read_only() -> None:
    first, _ = mounts([], net=False)
    assert "/proc/sys/net" not in binds(first)


def test_an_application_gets_no_cgroup_file_systems_unless_asked() -> None:
    assert mounts([], init=False)[1] == []
    assert mounts(["cgroup:ro"], init=False)[1] != []


def test_variants_named_in_the_config_win_per_family() -> None:
    first, cgroup = mounts(["proc:rw", "sys:ro", "cgroup:rw"])
    assert [op.fstype for op in first] == ["proc", "sysfs"]
    assert read_only(first) == {"/sys"}
    assert not read_only(cgroup)  # rw: the tmpfs stays writable too
    first, _ = mounts(["sys:rw"])
    assert "/sys" not in read_only(first)
    assert "/proc/sys" in read_only(first)


def test_mixed_proc_masks_the_hosts_kernel_state() -> None:
    first, _ = mounts([])
    masks = {op.target: op for op in first if op.target in (*MASKED_FILES, *MASKED_DIRS)}
    assert masks["/proc/kcore"].source == "/dev/null"  # the host's, before /dev is made
    assert masks["/proc/kcore"].opts & OPT_OPTIONAL  # a kernel may not have it
    assert masks["/proc/acpi"].fstype == "tmpfs"
    rw, _ = mounts(["proc:rw"])
    assert [op.target for op in rw] [:1] == ["/proc"]
    assert not {op.target for op in rw} & set(MASKED_FILES)


def test_cgroup_full_is_cgroup_inside_a_cgroup_namespace() -> None:
    assert mounts(["cgroup-full:ro"])[1] == mounts(["cgroup:ro"])[1]


def test_pure_cgroup2_mounts_one_file_system() -> None:
    _, cgroup = mounts(["cgroup:ro"], hierarchies=[Hierarchy("", "cgroup2", "")])
    assert [(op.target, op.fstype, bool(op.flags & MS_RDONLY)) for op in cgroup] == [
        ("/sys/fs/cgroup", "cgroup2", True)]


def test_the_hosts_root_in_the_hosts_network_binds_the_hosts_sysfs() -> None:
    """The kernel will not mount one sysfs twice on one place (EBUSY)."""
    first, _ = mounts([], net=False, root=False)
    assert "sysfs" not in [op.fstype for op in first]
    assert binds(first)[-2:] == ["/sys/devices/virtual/net", "/sys"]


def test_a_user_namespace_in_the_hosts_network_binds_the_hosts_sysfs_into_its_root() -> None:
    """The kernel mounts no sysfs for a network namespace the mounter's user
    namespace does not own; its own network, owned by it, gets a fresh one."""
    first, _ = automounts([], boots_init=True, own_network=False, own_root=True,
                          hierarchies=HYBRID, userns=True)
    assert "sysfs" not in [op.fstype for op in first]
    [from_host] = [op for op in first if op.target == "/sys" and not op.opts & OPT_SRC_IN_ROOT]
    assert (from_host.source, from_host.flags & (MS_BIND | MS_REC)) == ("/sys", MS_BIND | MS_REC)
    assert binds(first)[-2:] == ["/sys/devices/virtual/net", "/sys"]
    own, _ = automounts([], boots_init=True, own_network=True, own_root=True,
                        hierarchies=HYBRID, userns=True)
    assert [op.fstype for op in own if op.target == "/sys"][0] == "sysfs"
