"""What a container config says, as frozen values: the result of reading one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from lxcflow.config.idmap import IdMap

NET_TYPES = frozenset({"veth", "macvlan", "vlan", "phys", "empty", "none"})
#: the network types a start can make today (the others are read, and refused
#: when the container starts)
NET_TYPES_STARTED = frozenset({"veth", "empty", "none"})
#: types that attach to a host interface named by ``link``
NET_TYPES_NEEDING_LINK = frozenset({"macvlan", "vlan", "phys"})
#: types that create no interface: ``empty`` gives a namespace with only
#: loopback, ``none`` keeps the host's namespace (as in LXC)
NET_TYPES_WITHOUT_INTERFACE = frozenset({"empty", "none"})
HOOK_TYPES = frozenset(
    "pre-start pre-mount mount autodev start start-host stop post-stop clone destroy".split()
)
NAMESPACES = frozenset({"net", "ipc", "uts", "pid", "mnt", "user", "cgroup", "time"})
MOUNT_AUTO = frozenset(
    "proc proc:mixed proc:rw sys sys:ro sys:rw sys:mixed".split()
    + "cgroup cgroup:mixed cgroup:ro cgroup:rw".split()
    + "cgroup-full cgroup-full:mixed cgroup-full:ro cgroup-full:rw".split()
)


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One fstab-format mount, from an fstab file or an ``lxc.mount.entry`` line."""

    source: str
    target: str
    fstype: str
    options: tuple[str, ...]
    file: str  # the file the entry was read from: an fstab or the config
    line: int  # 1-based line in ``file``


@dataclass(frozen=True, slots=True)
class NetConfig:
    """One network interface of a container, whichever dialect declared it."""

    index: int  # N of lxc.net.N; old-dialect networks are numbered after the others
    type: str  # one of NET_TYPES
    link: str | None
    flags: tuple[str, ...]  # only "up" exists
    name: str | None
    hwaddr: str | None  # may hold 'x' digits, which LXC randomises
    mtu: int | None
    ipv4: tuple[str, ...]  # "A.B.C.D/prefix", any broadcast dropped
    ipv4_gateway: str | None  # an address or "auto"
    ipv6: tuple[str, ...]
    ipv6_gateway: str | None
    veth_pair: str | None
    line: int  # the line of the network's first key


@dataclass(frozen=True, slots=True)
class CgroupSetting:
    """One ``lxc.cgroup.KEY`` / ``lxc.cgroup2.KEY`` line; repeats are all kept."""

    key: str  # "controller.attribute", without the lxc.cgroup[2]. prefix
    value: str
    version: int  # 1 for lxc.cgroup.*, 2 for lxc.cgroup2.*
    line: int


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """A validated container config; its paths are absolute."""

    file: str
    hostname: str | None = None
    rootfs: Path | None = None
    fstab: Path | None = None
    mount_entries: tuple[MountEntry, ...] = ()  # the fstab's entries, then lxc.mount.entry
    mount_auto: tuple[str, ...] = ()
    networks: tuple[NetConfig, ...] = ()  # ordered by index
    cgroup: tuple[CgroupSetting, ...] = ()
    # hook type -> command lines in file order; read-only
    hooks: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    init_cmd: tuple[str, ...] | None = None
    init_cwd: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    namespaces_keep: frozenset[str] = frozenset()
    console_path: str | None = None
    signal_halt: int | None = None
    signal_stop: int | None = None
    signal_reboot: int | None = None
    signal_pdeath: int = 9  # lxc.monitor.signal.pdeath: to the init if its keeper dies
    start_auto: bool = False  # lxc.start.auto
    start_delay: int = 0  # seconds to wait after starting it, in an autostart
    start_order: int = 0  # lower first
    groups: tuple[str, ...] = ()  # lxc.group
    tty_max: int = 0  # lxc.tty.max: ttys of the container's own devpts on /dev/ttyN
    pty_max: int = 0  # lxc.pty.max: the devpts's limit (0: the kernel's)
    tty_dir: str | None = None  # lxc.tty.dir: ttys and console under /dev/DIR
    console_logfile: str | None = None  # lxc.console.logfile (None: beside the config)
    console_size: int = 4 << 20  # lxc.console.size: bytes of console log kept
    autodev: bool = True  # lxc.autodev
    arch: str | None = None  # lxc.arch: a 32-bit personality for i386 userlands
    prlimits: tuple[tuple[str, int, int], ...] = ()
    # lxc.cap.*: None when the config never names the key (keep: all but
    # drop; drop: LXC's common set); () when it cleared it
    cap_drop: tuple[str, ...] | None = None
    cap_keep: tuple[str, ...] | None = None
    seccomp_profile: Path | None = None  # lxc.seccomp.profile; None: LXC's common.seccomp
    no_new_privs: bool = False
    apparmor_profile: str | None = None  # None: LXC's "generated"
    apparmor_allow_incomplete: bool = False
    idmap: tuple[IdMap, ...] = ()  # lxc.idmap: () is a privileged container
    rootfs_idmap: bool = False  # lxc.rootfs.options = idmap=container

    def __post_init__(self) -> None:
        # A plain dict handed in by a caller must not make the value mutable.
        if not isinstance(self.hooks, MappingProxyType):
            object.__setattr__(self, "hooks", MappingProxyType(dict(self.hooks)))

    @property
    def makes_interfaces(self) -> bool:
        """Whether a start creates network interfaces (``empty`` and ``none`` do not)."""
        return any(net.type not in NET_TYPES_WITHOUT_INTERFACE for net in self.networks)

    @property
    def new_namespaces(self) -> frozenset[str]:
        """The namespaces a start creates; the others are shared with the host.

        pid, mnt, uts, ipc and cgroup always (LXC 5 makes a cgroup namespace
        wherever the kernel has them); net only if a network other than
        "none" is configured (a config naming no network shares the host's,
        as in LXC 1.x); user with ``lxc.idmap``; less whatever
        ``lxc.namespace.keep`` keeps.
        """
        wanted = {"pid", "mnt", "uts", "ipc", "cgroup"}
        if self.idmap:
            wanted.add("user")
        if any(net.type != "none" for net in self.networks):
            wanted.add("net")
        return frozenset(wanted) - self.namespaces_keep

