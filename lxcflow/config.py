"""LXC container config files -> validated, frozen values.

Reads both dialects: the LXC 1.x/2.x keys (``lxc.utsname``, ``lxc.network.*``,
``lxc.rootfs``, ``lxc.mount``) and the LXC 3.0+ ones (``lxc.uts.name``,
``lxc.net.N.*``, ``lxc.rootfs.path``, ``lxc.mount.fstab``). Every problem is a
:class:`~lxcflow.errors.ConfigError` naming the file and 1-based line at fault.
The only I/O is reading the config and the fstab it names; whether the rootfs
exists is checked when the container starts.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

from lxcflow.errors import ConfigError, UsageError

NET_TYPES = frozenset({"veth", "macvlan", "vlan", "phys", "empty", "none"})
HOOK_TYPES = frozenset(
    "pre-start pre-mount mount autodev start start-host stop post-stop clone destroy".split()
)
NAMESPACES = frozenset({"net", "ipc", "uts", "pid", "mnt", "user", "cgroup", "time"})
MOUNT_AUTO = frozenset(
    "proc proc:mixed proc:rw sys sys:ro sys:rw sys:mixed".split()
    + "cgroup cgroup:mixed cgroup:ro cgroup:rw".split()
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

    def __post_init__(self) -> None:
        # A plain dict handed in by a caller must not make the value mutable.
        if not isinstance(self.hooks, MappingProxyType):
            object.__setattr__(self, "hooks", MappingProxyType(dict(self.hooks)))

    @property
    def makes_interfaces(self) -> bool:
        """Whether a start creates network interfaces (``empty`` and ``none`` do not)."""
        return any(net.type not in ("empty", "none") for net in self.networks)

    @property
    def new_namespaces(self) -> frozenset[str]:
        """The namespaces a start creates; the others are shared with the host.

        pid, mnt, uts and ipc always; net only if a network other than "none"
        is configured (a config naming no network shares the host's, as in
        LXC 1.x); less whatever ``lxc.namespace.keep`` keeps.
        """
        wanted = {"pid", "mnt", "uts", "ipc"}
        if any(net.type != "none" for net in self.networks):
            wanted.add("net")
        return frozenset(wanted) - self.namespaces_keep


# ---------------------------------------------------------------- value parsers
# Each takes a stripped, non-empty value and returns its parsed form, or raises
# ValueError with a reason that reads well after "bad value for KEY: ".

_DIGITS_RE = re.compile(r"[0-9]+")


def _matching(pattern: str, what: str) -> Callable[[str], str]:
    regex = re.compile(pattern)

    def parse(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return parse


def _integer(low: int, high: int | None, what: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value) if _DIGITS_RE.fullmatch(value) else -1
        if number < low or (high is not None and number > high):
            raise ValueError(f"{value!r} is not {what}")
        return number

    return parse


def _words(allowed: frozenset[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        words = tuple(value.split())
        for word in words:
            if word not in allowed:
                raise ValueError(f"{word!r} is not {what} ({', '.join(sorted(allowed))})")
        return words

    return parse


# '_' is beyond RFC 1123, but the kernel takes it and the classic lxc-sshd
# config names its host my_ssh_container.
_hostname = _matching(r"[A-Za-z0-9._-]{1,64}", "a hostname (1-64 letters, digits, '.-_')")
# The kernel's dev_valid_name(): at most IFNAMSIZ - 1 bytes, no '/', ':' or blanks.
_ifname = _matching(
    r"(?!\.\.?$)[^/:\s]{1,15}", "an interface name (1-15 characters, no '/', ':', blanks)"
)
_hwaddr = _matching(
    r"[0-9A-Fa-fxX]{2}(:[0-9A-Fa-fxX]{2}){5}", "a MAC address like 00:16:3e:xx:xx:xx"
)
_absolute = _matching(r"/.*", "an absolute path")
_net_type = _matching("|".join(NET_TYPES), f"a network type ({', '.join(sorted(NET_TYPES))})")
_keep_words = _words(NAMESPACES, "a namespace")


def _keep(value: str) -> frozenset[str]:
    kept = frozenset(_keep_words(value))
    # The runtime mounts /proc and may pivot_root: in the host's mount
    # namespace that would rearrange the host. The pid namespace makes
    # "every process of the container" and its init well defined.
    for always_new in ("mnt", "pid"):
        if always_new in kept:
            raise ValueError(f"lxcflow always gives a container its own {always_new} namespace")
    return kept
_mount_auto = _words(MOUNT_AUTO, "an automatic mount")


def _address(value: str, version: int) -> str:
    words = value.split()
    bad = f"{value!r} is not an IPv{version} address with prefix"
    # The old ipv4 syntax may add a broadcast, derived from the prefix anyway:
    # it is checked and dropped.
    if len(words) > (2 if version == 4 else 1):
        raise ValueError(bad)
    text = words[0] if "/" in words[0] else f"{words[0]}/{24 if version == 4 else 64}"
    try:
        interface = ipaddress.ip_interface(text)
        if len(words) == 2:
            ipaddress.IPv4Address(words[1])
    except ValueError:
        raise ValueError(bad) from None
    if interface.version != version:
        raise ValueError(bad)
    return str(interface)


def _gateway(value: str, version: int) -> str:
    if value == "auto":
        return value
    try:
        address = ipaddress.ip_address(value)
        if address.version == version:
            return str(address)
    except ValueError:
        pass
    raise ValueError(f"{value!r} is not an IPv{version} address or 'auto'")


def signal_number(value: str) -> int:
    """A signal number from a name (SIGPWR, PWR, sigpwr, SIGRTMIN+3) or 1..64."""
    if _DIGITS_RE.fullmatch(value):
        return _integer(1, 64, "a signal number (1-64)")(value)
    name = value.upper().removeprefix("SIG")
    realtime = re.fullmatch(r"RTMIN\+([0-9]+)|RTMAX-([0-9]+)", name)
    if realtime:
        plus, minus = realtime.groups()
        number = signal.SIGRTMIN + int(plus) if plus else signal.SIGRTMAX - int(minus)
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return int(number)
    elif "SIG" + name in signal.Signals.__members__:
        return int(signal.Signals["SIG" + name])
    raise ValueError(f"{value!r} is not a signal name or a number 1-64")


def _environment(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{value!r} is not KEY=VALUE with KEY a variable name")
    return name, setting


def _resolve(path: str, base_dir: Path) -> str:
    # normpath, not resolve(): symlinks in the user's tree stay as they are.
    return os.path.normpath(base_dir / path)


# LXC's rootfs may name a storage backend as "backend:path".
_BACKENDS = frozenset("dir btrfs overlay overlayfs aufs zfs lvm loop rbd nbd".split())


def _split_backend(value: str) -> tuple[str | None, str]:
    backend, sep, path = value.partition(":")
    return (backend, path) if sep and backend in _BACKENDS else (None, value)


def _rootfs(value: str, base_dir: Path) -> Path:
    backend, path = _split_backend(value)
    if backend not in (None, "dir"):
        raise ValueError(f"storage backend {backend} is not supported (only directories)")
    if not path:
        raise ValueError(f"{value!r} names no directory")
    return Path(_resolve(path, base_dir))


def _resolve_command(command: str, base_dir: Path) -> str:
    """``command`` with a relative executable that has a '/' made absolute.

    Hooks run through a shell, so only the first word is replaced and the
    rest is kept byte for byte (quoting it again could change its meaning).
    """
    shlex.split(command)  # unbalanced quotes are an error wherever they are
    stream = io.StringIO(command)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    program = lexer.get_token()
    if not program or "/" not in program or program.startswith("/"):
        return command
    end = stream.tell()
    if command[end - 1 : end].isspace():  # the lexer also read the blank ending the word
        end -= 1
    return shlex.quote(_resolve(program, base_dir)) + command[end:]


# ---------------------------------------------------------------- key tables

# Old spellings -> today's, so that setting both is caught as a duplicate.
_ALIASES = {
    "lxc.utsname": "lxc.uts.name",
    "lxc.rootfs": "lxc.rootfs.path",
    "lxc.mount": "lxc.mount.fstab",
    "lxc.tty": "lxc.tty.max",
    "lxc.pts": "lxc.pty.max",
    "lxc.console": "lxc.console.path",
    "lxc.init_cmd": "lxc.init.cmd",
    "lxc.haltsignal": "lxc.signal.halt",
    "lxc.stopsignal": "lxc.signal.stop",
}

_count = _integer(0, None, "a non-negative integer")
_zero_one = _integer(0, 1, "0 or 1")
# Singleton keys: canonical key -> (ContainerConfig field, or None for a key
# accepted and ignored, parser).
_SINGLE: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "lxc.uts.name": ("hostname", _hostname),
    "lxc.init.cmd": ("init_cmd", lambda v: tuple(shlex.split(v))),
    "lxc.init.cwd": ("init_cwd", _absolute),
    "lxc.namespace.keep": ("namespaces_keep", _keep),
    "lxc.console.path": ("console_path", str),
    "lxc.signal.halt": ("signal_halt", signal_number),
    "lxc.signal.stop": ("signal_stop", signal_number),
    # Harmless to ignore here: this runtime gives a container no ttys of its own.
    "lxc.tty.max": (None, _count),
    "lxc.pty.max": (None, _count),
    "lxc.arch": (None, str),
    "lxc.console.logfile": (None, str),
    "lxc.autodev": (None, _zero_one),
    "lxc.hook.version": (None, _zero_one),
}

# Confinement the user asked for and this runtime cannot give: running without
# it would be silently less safe than they believe.
_REFUSED = frozenset(
    "lxc.cap.drop lxc.cap.keep lxc.idmap lxc.id_map lxc.seccomp lxc.aa_profile"
    " lxc.aa_allow_incomplete lxc.se_context".split()
)
_REFUSED_PREFIXES = ("lxc.apparmor.", "lxc.seccomp.", "lxc.selinux.")


class _Attr(NamedTuple):
    field: str  # the NetConfig field
    parse: Callable[[str], Any]
    repeatable: bool = False


_NET_COMMON = {
    "type": _Attr("type", _net_type),
    "flags": _Attr("flags", _words(frozenset({"up"}), "a flag")),
    "link": _Attr("link", _ifname),
    "name": _Attr("name", _ifname),
    "hwaddr": _Attr("hwaddr", _hwaddr),
    "mtu": _Attr("mtu", _integer(68, 65535, "an MTU (68-65535)")),
    "ipv4.gateway": _Attr("ipv4_gateway", lambda v: _gateway(v, 4)),
    "ipv6.gateway": _Attr("ipv6_gateway", lambda v: _gateway(v, 6)),
    "veth.pair": _Attr("veth_pair", _ifname),
}
_IPV4 = _Attr("ipv4", lambda v: _address(v, 4), repeatable=True)
_IPV6 = _Attr("ipv6", lambda v: _address(v, 6), repeatable=True)
# lxc.network.ATTR and lxc.net.N.ATTR differ only in how addresses are named.
_NET_ATTRS = {
    "old": {**_NET_COMMON, "ipv4": _IPV4, "ipv6": _IPV6},
    "new": {**_NET_COMMON, "ipv4.address": _IPV4, "ipv6.address": _IPV6},
}
_NET_DEFAULTS: dict[str, Any] = dict.fromkeys(spec.field for spec in _NET_COMMON.values())
_NET_DEFAULTS.update(flags=(), ipv4=(), ipv6=())
_NET_KEY_RE = re.compile(r"lxc\.net\.([^.]+)\.(.+)")
_NEEDS_LINK = frozenset({"macvlan", "vlan", "phys"})
_CGROUP_KEY_RE = re.compile(r"lxc\.cgroup2?\.([a-z0-9_]+\.[a-z0-9_.]+)")


# ---------------------------------------------------------------- the parser


@dataclass
class _Net:
    """A network while its keys are being read."""

    index: int
    dialect: str  # "old" (lxc.network.*) or "new" (lxc.net.N.*)
    line: int
    values: dict[str, Any] = field(default_factory=dict)  # NetConfig fields
    seen: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return "lxc.network" if self.dialect == "old" else f"lxc.net.{self.index}"


class _Builder:
    """The mutable state while one config is read; :meth:`build` freezes it."""

    def __init__(self, file: str, base_dir: Path) -> None:
        self.file = file
        self.base_dir = base_dir
        self.values: dict[str, Any] = {}  # ContainerConfig fields of singleton keys
        self.seen: dict[str, tuple[int, str]] = {}  # canonical key -> (line, key as written)
        self.fstab_entries: tuple[MountEntry, ...] = ()
        self.entries: list[MountEntry] = []
        self.mount_auto: list[str] = []
        self.cgroup: list[CgroupSetting] = []
        self.environment: list[tuple[str, str]] = []
        self.hooks: dict[str, list[str]] = {}
        self.nets: dict[int, _Net] = {}
        self.last_old: _Net | None = None  # the network lxc.network.* keys apply to

    def fail(self, reason: str, line: int) -> NoReturn:
        raise ConfigError(reason, file=self.file, line=line)

    def once(self, seen: dict[str, tuple[int, str]], ident: str, key: str, line: int) -> None:
        if ident in seen:
            first, spelled = seen[ident]
            also = "" if spelled == key else f" as {spelled!r}"
            self.fail(f"duplicate key {key!r} (first set on line {first}{also})", line)
        seen[ident] = (line, key)

    def parse(self, key: str, value: str, line: int, parser: Callable[[str], Any]) -> Any:
        try:
            return parser(value)
        except ValueError as exc:
            self.fail(f"bad value for {key}: {exc}", line)

    def add(self, key: str, value: str, line: int) -> None:
        """Apply one ``key = value`` line."""
        canon = _ALIASES.get(key, key)
        if canon in _REFUSED or canon.startswith(_REFUSED_PREFIXES):
            self.fail(f"{key} is not supported by lxcflow (refusing to run without it)", line)
        if canon == "lxc.include":
            self.fail("lxc.include is not supported", line)
        if canon in ("lxc.net", "lxc.network"):  # LXC's way to drop the networks so far
            if value:
                self.fail(f"{key} takes no value (an empty one clears the networks)", line)
            self.nets.clear()
            self.last_old = None
            return
        if not value:
            self.fail(f"empty value for {key}", line)
        if canon in _SINGLE or canon in ("lxc.rootfs.path", "lxc.mount.fstab"):
            self.once(self.seen, canon, key, line)
        if canon in _SINGLE:
            name, parser = _SINGLE[canon]
            parsed = self.parse(key, value, line, parser)
            if name is not None:
                self.values[name] = parsed
        elif canon == "lxc.rootfs.path":
            self.values["rootfs"] = self.parse(
                key, value, line, lambda v: _rootfs(v, self.base_dir)
            )
        elif canon == "lxc.mount.fstab":
            self.read_fstab(value, line)
        elif canon == "lxc.mount.entry":
            self.entries.append(parse_mount_entry(value, file=self.file, line=line))
        elif canon == "lxc.mount.auto":
            self.mount_auto.extend(self.parse(key, value, line, _mount_auto))
        elif canon == "lxc.environment":
            self.environment.append(self.parse(key, value, line, _environment))
        elif canon.startswith(("lxc.cgroup.", "lxc.cgroup2.")):
            self.add_cgroup(key, value, line)
        elif canon.startswith("lxc.hook."):
            self.add_hook(key, value, line)
        elif canon.startswith("lxc.network."):
            self.add_old_net(key, value, line)
        elif canon.startswith("lxc.net."):
            self.add_new_net(key, value, line)
        else:
            self.fail(f"unknown key {key!r}", line)

    def read_fstab(self, value: str, line: int) -> None:
        path = Path(_resolve(value, self.base_dir))
        try:
            text = _read(path)
        except ValueError as exc:
            self.fail(f"cannot read fstab {path}: {exc}", line)
        self.values["fstab"] = path
        self.fstab_entries = _fstab_entries(text, str(path))

    def add_cgroup(self, key: str, value: str, line: int) -> None:
        match = _CGROUP_KEY_RE.fullmatch(key)
        if match is None:
            self.fail(f"unknown key {key!r} (cgroup keys look like lxc.cgroup.cpu.shares)", line)
        version = 2 if key.startswith("lxc.cgroup2.") else 1
        self.cgroup.append(CgroupSetting(match[1], value, version, line))

    def add_hook(self, key: str, value: str, line: int) -> None:
        kind = key.removeprefix("lxc.hook.")
        if kind not in HOOK_TYPES:
            self.fail(f"unknown key {key!r} (hooks: {', '.join(sorted(HOOK_TYPES))})", line)
        command = self.parse(key, value, line, lambda v: _resolve_command(v, self.base_dir))
        self.hooks.setdefault(kind, []).append(command)

    def add_old_net(self, key: str, value: str, line: int) -> None:
        attr = key.removeprefix("lxc.network.")
        if attr == "type":  # in the old dialect each type line starts a network
            index = max(self.nets, default=-1) + 1
            self.last_old = self.nets[index] = _Net(index, "old", line)
        elif attr in _NET_ATTRS["old"] and self.last_old is None:
            self.fail(f"{key} comes before any lxc.network.type", line)
        self.set_net_attr(self.last_old, attr, key, value, line)

    def add_new_net(self, key: str, value: str, line: int) -> None:
        match = _NET_KEY_RE.fullmatch(key)
        if match is None or match[2] not in _NET_ATTRS["new"]:
            self.fail(f"unknown key {key!r}", line)
        if not _DIGITS_RE.fullmatch(match[1]):
            self.fail(f"bad network index {match[1]!r} in {key}", line)
        net = self.nets.setdefault(int(match[1]), _Net(int(match[1]), "new", line))
        if net.dialect != "new":
            self.fail(
                f"{key}: network {net.index} was started by lxc.network.type on line"
                f" {net.line}; use one dialect per network",
                line,
            )
        self.set_net_attr(net, match[2], key, value, line)

    def set_net_attr(self, net: _Net | None, attr: str, key: str, value: str, line: int) -> None:
        spec = _NET_ATTRS["old" if key.startswith("lxc.network.") else "new"].get(attr)
        if spec is None or net is None:
            self.fail(f"unknown key {key!r}", line)
        parsed = self.parse(key, value, line, spec.parse)
        if spec.repeatable:
            net.values[spec.field] = net.values.get(spec.field, ()) + (parsed,)
        else:
            self.once(net.seen, attr, key, line)
            net.values[spec.field] = parsed

    def networks(self) -> tuple[NetConfig, ...]:
        nets = [self.nets[index] for index in sorted(self.nets)]
        for net in nets:
            kind = net.values.get("type")
            if kind is None:
                self.fail(f"network {net.index} has no type (set {net.prefix}.type)", net.line)
            if kind in _NEEDS_LINK and "link" not in net.values:
                self.fail(f"network {net.index} of type {kind} needs {net.prefix}.link", net.line)
            # LXC refuses this too: "none" means the host's namespace, so
            # there is nowhere to put the other interfaces.
            if kind == "none" and len(nets) > 1:
                self.fail(
                    f"network {net.index}: type none cannot be combined with others", net.line
                )
        for attr, what in (("name", "interface name"), ("hwaddr", "hwaddr"),
                           ("veth_pair", "veth.pair name")):
            seen: dict[str, int] = {}
            for net in nets:
                value = net.values.get(attr)
                if value is None or (attr == "hwaddr" and "x" in value.lower()):
                    continue  # 'x' digits are random: never the same twice
                if value.lower() in seen:
                    self.fail(f"network {net.index}: duplicate {what} {value!r} (also network "
                              f"{seen[value.lower()]})", net.line)
                seen[value.lower()] = net.index
        return tuple(
            NetConfig(index=net.index, line=net.line, **(_NET_DEFAULTS | net.values))
            for net in nets
        )

    def build(self) -> ContainerConfig:
        return ContainerConfig(
            file=self.file,
            mount_entries=self.fstab_entries + tuple(self.entries),
            mount_auto=tuple(self.mount_auto),
            networks=self.networks(),
            cgroup=tuple(self.cgroup),
            hooks=MappingProxyType({kind: tuple(cmds) for kind, cmds in self.hooks.items()}),
            environment=tuple(self.environment),
            **self.values,
        )


def _read(path: Path) -> str:
    """The text of ``path``, or ValueError saying why it cannot be had."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None


# ---------------------------------------------------------------- public API


def load_config(path: str | os.PathLike[str]) -> ContainerConfig:
    """Read and validate the LXC config at ``path``.

    Relative paths inside it (rootfs, fstab, hook executables with a '/')
    are resolved against the directory holding the file.

    Raises:
        ConfigError: the file cannot be read (no line number) or is invalid.
    """
    file = os.fspath(path)
    try:
        text = _read(Path(file))
    except ValueError as exc:
        raise ConfigError(f"cannot read config: {exc}", file=file) from None
    return parse_config(text, file=file, base_dir=Path(os.path.abspath(file)).parent)


def parse_config(text: str, *, file: str, base_dir: Path) -> ContainerConfig:
    """Validate config ``text``.

    Args:
        text: the config's contents.
        file: the name errors and mount entries report.
        base_dir: what relative paths are resolved against.

    Raises:
        ConfigError: naming ``file`` and the 1-based line at fault.
    """
    builder = _Builder(file, Path(os.path.abspath(base_dir)))
    # Lines end at '\n' only (as in LXC), here and in absolutize().
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"expected 'key = value', got {line!r}", file=file, line=number)
        if not key.strip():
            raise ConfigError(f"no key before '=' in {line!r}", file=file, line=number)
        builder.add(key.strip(), value.strip(), number)
    return builder.build()


_PATH_KEYS = frozenset({"lxc.rootfs", "lxc.rootfs.path", "lxc.mount", "lxc.mount.fstab"})
_ASSIGNMENT_RE = re.compile(r"(\s*([^=]*?)\s*=\s*)(.*?)(\s*)")


def absolutize(text: str, base_dir: Path) -> str:
    """``text`` with its relative path values made absolute against ``base_dir``.

    Rewrites the values of lxc.rootfs[.path] (keeping a ``dir:`` prefix),
    lxc.mount[.fstab] and the executable of lxc.hook.* commands, without
    following symlinks; every other byte, and so the line count, is kept.
    Used when a config is copied away from the directory it was written in.
    """
    base = Path(os.path.abspath(base_dir))
    return "\n".join(_absolutize_line(line, base) for line in text.split("\n"))


def _absolutize_line(line: str, base_dir: Path) -> str:
    match = _ASSIGNMENT_RE.fullmatch(line)
    if match is None:
        return line
    head, key, value, tail = match.groups()
    if key in _PATH_KEYS:
        backend, path = _split_backend(value)
        if backend in (None, "dir") and path and not path.startswith("/"):
            prefix = "" if backend is None else f"{backend}:"
            return head + prefix + _resolve(path, base_dir) + tail
    elif key.startswith("lxc.hook.") and value:
        try:
            return head + _resolve_command(value, base_dir) + tail
        except ValueError:  # left as it is, for parse_config to report
            pass
    return line


def parse_fstab(path: Path) -> tuple[MountEntry, ...]:
    """The entries of the fstab(5)-format file at ``path``, in order.

    Raises:
        ConfigError: naming the fstab itself (and the line of a bad entry).
    """
    try:
        text = _read(Path(path))
    except ValueError as exc:
        raise ConfigError(f"cannot read fstab: {exc}", file=str(path)) from None
    return _fstab_entries(text, str(path))


def _fstab_entries(text: str, file: str) -> tuple[MountEntry, ...]:
    return tuple(
        parse_mount_entry(line, file=file, line=number)
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip() and not line.strip().startswith("#")
    )


def _unescape(text: str) -> str:
    # fstab(5) writes blanks in paths as octal escapes: \040 space, \011 tab.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def parse_mount_entry(text: str, *, file: str, line: int) -> MountEntry:
    """One ``source target fstype options [dump [pass]]`` entry.

    Raises:
        ConfigError: at ``file:line``, saying what is malformed.
    """
    fields = text.split()
    problem = None
    if not 4 <= len(fields) <= 6:
        problem = f"expected 'source target fstype options [dump [pass]]', got {text.strip()!r}"
    elif not all(_DIGITS_RE.fullmatch(number) for number in fields[4:]):
        problem = f"dump and pass must be integers, got {' '.join(fields[4:])!r}"
    elif "" in fields[3].split(","):
        problem = f"empty option in {fields[3]!r}"
    elif ".." in _unescape(fields[1]).split("/"):
        # Targets land inside the rootfs; '..' would climb out to the host.
        problem = f"target {fields[1]!r} contains '..'"
    if problem is not None:
        raise ConfigError(f"bad mount entry: {problem}", file=file, line=line)
    source, target, fstype, options = fields[:4]
    return MountEntry(
        _unescape(source), _unescape(target), fstype, tuple(options.split(",")), file, line
    )


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a container (it becomes a directory name).

    Raises:
        UsageError: saying what is wrong with it.
    """
    bad = re.sub(r"[A-Za-z0-9_.-]", "", name)
    problem = None
    if not name:
        problem = "it is empty"
    elif name in (".", ".."):
        problem = "'.' and '..' are not names"
    elif "/" in name:
        problem = "it contains '/'"
    elif len(name) > 64:
        problem = f"it is {len(name)} characters long (at most 64)"
    elif not name[0].isascii() or not name[0].isalnum():
        # A leading '-' reads as an option to every tool; '.' hides the directory.
        problem = "it must start with a letter or a digit"
    elif bad:
        problem = f"{bad[0]!r} is not allowed (only letters, digits, '-', '_', '.')"
    if problem is not None:
        raise UsageError(f"invalid container name {name!r}: {problem}", name=name)
    return name
