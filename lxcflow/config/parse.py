"""Reading a config: one pass over its lines, each key applied by a builder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from lxcflow.config.fstab import fstab_entries, parse_mount_entry, read_text
from lxcflow.config.idmap import IdMap, missing_root, overlap, parse_idmap
from lxcflow.config.keys import (
    ALIASES,
    CGROUP_KEY_RE,
    LIST_KEYS,
    NET_ATTRS,
    NET_DEFAULTS,
    NET_KEY_RE,
    REFUSED,
    REFUSED_PREFIXES,
    SINGLE,
)
from lxcflow.config.model import (
    HOOK_TYPES,
    NET_TYPES_NEEDING_LINK,
    CgroupSetting,
    ContainerConfig,
    MountEntry,
    NetConfig,
)
from lxcflow.config.paths import resolve, resolve_command, rootfs
from lxcflow.config.values import DIGITS_RE, PRLIMITS, prlimit
from lxcflow.errors import ConfigError, UsageError


@dataclass(frozen=True, slots=True)
class _Source:
    """The file whose lines are being read, and the includes that led to it."""

    file: str
    base_dir: Path  # what its relative paths resolve against: its own directory
    included_from: tuple[tuple[str, int], ...] = ()  # (file, line), innermost first

    def error(self, reason: str, line: int | None) -> ConfigError:
        if self.included_from:
            chain = ", ".join(f"included from {file}:{at}" for file, at in self.included_from)
            reason = f"{reason} ({chain})"
        return ConfigError(reason, file=self.file, line=line)


@dataclass
class _Net:
    """A network while its keys are being read."""

    index: int
    dialect: str  # "old" (lxc.network.*) or "new" (lxc.net.N.*)
    line: int
    source: _Source
    values: dict[str, Any] = field(default_factory=dict)  # NetConfig fields

    @property
    def prefix(self) -> str:
        return "lxc.network" if self.dialect == "old" else f"lxc.net.{self.index}"


class _Builder:
    """The mutable state while one config (with its includes) is read;
    :meth:`build` freezes it.

    Keys mean what they mean in LXC 5: a later value of a single-value key
    replaces an earlier one, also across includes; an empty value resets a
    key to its default, and empties a list key (mount entries, hooks,
    cgroup settings, environment, addresses) of what was gathered so far.
    """

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.reading: list[str] = []  # real paths of the files open, outermost first
        self.values: dict[str, Any] = {}  # ContainerConfig fields of singleton keys
        self.fstab_entries: tuple[MountEntry, ...] = ()
        # list keys (LIST_KEYS and lxc.mount.entry) -> what they gathered so far
        self.lists: dict[str, list[Any]] = {}
        self.cgroup: list[CgroupSetting] = []
        self.hooks: dict[str, list[str]] = {}
        self.prlimits: dict[str, tuple[int, int]] = {}
        self.nets: dict[int, _Net] = {}
        self.last_old: _Net | None = None  # the network lxc.network.* keys apply to
        self.idmaps: list[tuple[IdMap, _Source]] = []

    def fail(self, reason: str, line: int, source: _Source | None = None) -> NoReturn:
        raise (source or self.source).error(reason, line)

    def parse(self, key: str, value: str, line: int, parser: Callable[[str], Any]) -> Any:
        try:
            return parser(value)
        except (ValueError, UsageError) as exc:
            self.fail(f"bad value for {key}: {exc}", line)

    def read(self, text: str, source: _Source) -> None:
        """Apply the lines of ``text``, the contents of ``source``."""
        outer, self.source = self.source, source
        self.reading.append(os.path.realpath(source.file))
        # Lines end at '\n' only (as in LXC), here and in absolutize().
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                self.fail(f"expected 'key = value', got {line!r}", number)
            if not key.strip():
                self.fail(f"no key before '=' in {line!r}", number)
            self.add(key.strip(), _unquoted(value.strip()), number)
        self.reading.pop()
        self.source = outer

    def add(self, key: str, value: str, line: int) -> None:
        """Apply one ``key = value`` line."""
        canon = ALIASES.get(key, key)
        if canon in REFUSED or canon.startswith(REFUSED_PREFIXES):
            self.fail(f"{key} is not supported by lxcflow (refusing to run without it)", line)
        if canon in ("lxc.net", "lxc.network", "lxc.hook", "lxc.cgroup", "lxc.cgroup2"):
            self.clear_all(canon, key, value, line)
        elif canon == "lxc.include":
            if value:  # an empty one only forgets LXC's record of what was read
                self.include(value, line)
        elif canon in SINGLE:
            name, parser = SINGLE[canon]
            if name is not None:
                if value:
                    self.values[name] = self.parse(key, value, line, parser)
                else:
                    self.values.pop(name, None)
            elif value:
                self.parse(key, value, line, parser)
        elif canon == "lxc.rootfs.path":
            if value:
                self.values["rootfs"] = self.parse(
                    key, value, line, lambda v: rootfs(v, self.source.base_dir)
                )
            else:
                self.values.pop("rootfs", None)
        elif canon == "lxc.seccomp.profile":
            if value:
                self.values["seccomp_profile"] = Path(resolve(value, self.source.base_dir))
            else:
                self.values.pop("seccomp_profile", None)
        elif canon == "lxc.mount.fstab":
            if not value:  # LXC refuses it too
                self.fail(f"empty value for {key}", line)
            self.read_fstab(value, line)
        elif canon in LIST_KEYS or canon == "lxc.mount.entry":
            gathered = self.lists.setdefault(canon, [])
            if not value:
                gathered.clear()
            elif canon == "lxc.mount.entry":  # its errors name the entry's own file:line
                gathered.append(self.mount_entry(value, line))
            else:
                gathered.extend(self.parse(key, value, line, LIST_KEYS[canon]))
            other = {"lxc.cap.drop": "lxc.cap.keep", "lxc.cap.keep": "lxc.cap.drop"}.get(canon)
            if other and gathered and self.lists.get(other):
                self.fail(f"{key}: lxc.cap.drop and lxc.cap.keep cannot both be set "
                          f"(clear the other with '{other} =')", line)
            if "none" in gathered:
                if canon != "lxc.cap.keep":
                    self.fail(f"{key}: 'none' is a word of lxc.cap.keep only", line)
                # LXC: 'none' forgets what was kept so far; alone, it keeps nothing
                last = len(gathered) - 1 - gathered[::-1].index("none")
                gathered[:] = ["none", *(g for g in gathered[last + 1:] if g != "none")]
        elif canon == "lxc.idmap":
            self.add_idmap(key, value, line)
        elif canon.startswith(("lxc.cgroup.", "lxc.cgroup2.")):
            self.add_cgroup(key, value, line)
        elif canon.startswith("lxc.prlimit."):
            self.add_prlimit(key, value, line)
        elif canon.startswith("lxc.hook."):
            self.add_hook(key, value, line)
        elif canon.startswith("lxc.network."):
            self.add_old_net(key, value, line)
        elif canon.startswith("lxc.net."):
            self.add_new_net(key, value, line)
        else:
            self.fail(f"unknown key {key!r}", line)

    def clear_all(self, canon: str, key: str, value: str, line: int) -> None:
        """``lxc.net =``, ``lxc.hook =``, ``lxc.cgroup[2] =``: LXC's way to
        drop all networks, hooks or cgroup settings read so far."""
        if value:
            self.fail(f"{key} takes no value (an empty one clears what was set so far)", line)
        if canon in ("lxc.net", "lxc.network"):
            self.nets.clear()
            self.last_old = None
        elif canon == "lxc.hook":
            self.hooks.clear()
        else:
            version = 2 if canon == "lxc.cgroup2" else 1
            self.cgroup = [c for c in self.cgroup if c.version != version]

    def include(self, value: str, line: int) -> None:
        """``lxc.include``: a file, or every ``*.conf`` file of a directory
        (in name order). A directory that does not exist is skipped, as in
        LXC 5; a file that does not exist is an error."""
        path = Path(resolve(value, self.source.base_dir))
        if value.endswith("/") or path.is_dir():
            try:
                names = sorted(n for n in os.listdir(path) if n.endswith(".conf") and n != ".conf")
            except FileNotFoundError:
                return
            except OSError as exc:
                self.fail(f"cannot read include directory {path}: {exc.strerror}", line)
            files = [path / name for name in names]
        else:
            files = [path]
        for file in files:
            if os.path.realpath(file) in self.reading:
                loop = " -> ".join([*reversed([f for f, _ in self.source.included_from]),
                                    self.source.file, str(file)])
                self.fail(f"lxc.include loops: {loop}", line)
            try:
                text = read_text(file)
            except ValueError as exc:
                self.fail(f"cannot read included config {file}: {exc}", line)
            included_from = ((self.source.file, line), *self.source.included_from)
            self.read(text, _Source(str(file), file.parent, included_from))

    def mount_entry(self, value: str, line: int) -> MountEntry:
        try:
            return parse_mount_entry(value, file=self.source.file, line=line)
        except ConfigError as exc:  # again, with the includes that led here
            self.fail(exc.details["reason"], line)

    def read_fstab(self, value: str, line: int) -> None:
        path = Path(resolve(value, self.source.base_dir))
        try:
            text = read_text(path)
        except ValueError as exc:
            self.fail(f"cannot read fstab {path}: {exc}", line)
        self.values["fstab"] = path
        self.fstab_entries = fstab_entries(text, str(path))

    def add_idmap(self, key: str, value: str, line: int) -> None:
        if not value:
            self.idmaps.clear()
            return
        entry = self.parse(key, value, line, lambda v: parse_idmap(v, line))
        why = overlap(entry, [m for m, _ in self.idmaps])
        if why:
            self.fail(f"{key}: {why}", line)
        self.idmaps.append((entry, self.source))

    def add_cgroup(self, key: str, value: str, line: int) -> None:
        match = CGROUP_KEY_RE.fullmatch(key)
        if match is None:
            self.fail(f"unknown key {key!r} (cgroup keys look like lxc.cgroup.cpu.shares)", line)
        version = 2 if key.startswith("lxc.cgroup2.") else 1
        if value:
            self.cgroup.append(CgroupSetting(match[1], value, version, line))
        else:
            self.cgroup = [c for c in self.cgroup if (c.key, c.version) != (match[1], version)]

    def add_prlimit(self, key: str, value: str, line: int) -> None:
        resource = key.removeprefix("lxc.prlimit.")
        if resource not in PRLIMITS:
            self.fail(f"unknown key {key!r} (limits: {', '.join(sorted(PRLIMITS))})", line)
        if value:
            self.prlimits[resource] = self.parse(key, value, line, prlimit)
        else:
            self.prlimits.pop(resource, None)

    def add_hook(self, key: str, value: str, line: int) -> None:
        kind = key.removeprefix("lxc.hook.")
        if kind not in HOOK_TYPES:
            self.fail(f"unknown key {key!r} (hooks: {', '.join(sorted(HOOK_TYPES))})", line)
        if not value:
            self.hooks.pop(kind, None)
            return
        command = self.parse(
            key, value, line, lambda v: resolve_command(v, self.source.base_dir)
        )
        self.hooks.setdefault(kind, []).append(command)

    def add_old_net(self, key: str, value: str, line: int) -> None:
        attr = key.removeprefix("lxc.network.")
        if attr == "type":  # in the old dialect each type line starts a network
            if not value:
                self.fail(f"empty value for {key}", line)
            index = max(self.nets, default=-1) + 1
            self.last_old = self.nets[index] = _Net(index, "old", line, self.source)
        elif attr in NET_ATTRS["old"] and self.last_old is None:
            self.fail(f"{key} comes before any lxc.network.type", line)
        self.set_net_attr(self.last_old, attr, key, value, line)

    def add_new_net(self, key: str, value: str, line: int) -> None:
        match = NET_KEY_RE.fullmatch(key)
        if match is None or match[2] not in NET_ATTRS["new"]:
            self.fail(f"unknown key {key!r}", line)
        if not DIGITS_RE.fullmatch(match[1]):
            self.fail(f"bad network index {match[1]!r} in {key}", line)
        net = self.nets.setdefault(int(match[1]), _Net(int(match[1]), "new", line, self.source))
        if net.dialect != "new":
            self.fail(
                f"{key}: network {net.index} was started by lxc.network.type on line"
                f" {net.line}; use one dialect per network",
                line,
            )
        self.set_net_attr(net, match[2], key, value, line)

    def set_net_attr(self, net: _Net | None, attr: str, key: str, value: str, line: int) -> None:
        spec = NET_ATTRS["old" if key.startswith("lxc.network.") else "new"].get(attr)
        if spec is None or net is None:
            self.fail(f"unknown key {key!r}", line)
        if not value:
            net.values.pop(spec.field, None)
        elif spec.repeatable:
            parsed = self.parse(key, value, line, spec.parse)
            net.values[spec.field] = net.values.get(spec.field, ()) + (parsed,)
        else:
            net.values[spec.field] = self.parse(key, value, line, spec.parse)

    def networks(self) -> tuple[NetConfig, ...]:
        nets = [self.nets[index] for index in sorted(self.nets)]
        for net in nets:
            kind = net.values.get("type")
            if kind is None:
                self.fail(f"network {net.index} has no type (set {net.prefix}.type)", net.line,
                          net.source)
            if kind in NET_TYPES_NEEDING_LINK and "link" not in net.values:
                self.fail(f"network {net.index} of type {kind} needs {net.prefix}.link", net.line,
                          net.source)
            # LXC refuses this too: "none" means the host's namespace, so
            # there is nowhere to put the other interfaces.
            if kind == "none" and len(nets) > 1:
                self.fail(
                    f"network {net.index}: type none cannot be combined with others", net.line,
                    net.source,
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
                              f"{seen[value.lower()]})", net.line, net.source)
                seen[value.lower()] = net.index
        return tuple(
            NetConfig(index=net.index, line=net.line, **(NET_DEFAULTS | net.values))
            for net in nets
        )

    def build(self) -> ContainerConfig:
        if self.idmaps:
            why = missing_root([m for m, _ in self.idmaps])
            if why:
                first, source = self.idmaps[0]
                self.fail(why, first.line, source)
        return ContainerConfig(
            file=self.source.file,
            mount_entries=self.fstab_entries + tuple(self.lists.get("lxc.mount.entry", ())),
            mount_auto=tuple(self.lists.get("lxc.mount.auto", ())),
            networks=self.networks(),
            cgroup=tuple(self.cgroup),
            hooks=MappingProxyType({kind: tuple(cmds) for kind, cmds in self.hooks.items()}),
            environment=tuple(self.lists.get("lxc.environment", ())),
            groups=tuple(dict.fromkeys(self.lists.get("lxc.group", ()))),
            prlimits=tuple((name, *limits) for name, limits in self.prlimits.items()),
            cap_drop=tuple(self.lists["lxc.cap.drop"]) if "lxc.cap.drop" in self.lists else None,
            cap_keep=tuple(self.lists["lxc.cap.keep"]) if "lxc.cap.keep" in self.lists else None,
            idmap=tuple(m for m, _ in self.idmaps),
            **self.values,
        )


def _unquoted(value: str) -> str:
    """LXC drops one pair of quotes around a whole value (its busybox
    template writes ``lxc.uts.name = "NAME"``)."""
    if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
        return value[1:-1]
    return value


def load_config(path: str | os.PathLike[str]) -> ContainerConfig:
    """Read and validate the LXC config at ``path``.

    Relative paths inside it (rootfs, fstab, includes, hook executables
    with a '/') are resolved against the directory holding the file, those
    in an included file against that file's directory.

    Raises:
        ConfigError: the file cannot be read (no line number) or is invalid.
    """
    file = os.fspath(path)
    try:
        text = read_text(Path(file))
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
    source = _Source(file, Path(os.path.abspath(base_dir)))
    builder = _Builder(source)
    builder.read(text, source)
    return builder.build()
