"""Reading a config: one pass over its lines, each key applied by a builder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from lxcflow.config.fstab import fstab_entries, parse_mount_entry, read_text
from lxcflow.config.keys import (
    ALIASES,
    CGROUP_KEY_RE,
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
from lxcflow.config.values import DIGITS_RE, environment, mount_auto
from lxcflow.errors import ConfigError, UsageError


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
        except (ValueError, UsageError) as exc:
            self.fail(f"bad value for {key}: {exc}", line)

    def add(self, key: str, value: str, line: int) -> None:
        """Apply one ``key = value`` line."""
        canon = ALIASES.get(key, key)
        if canon in REFUSED or canon.startswith(REFUSED_PREFIXES):
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
        if canon in SINGLE or canon in ("lxc.rootfs.path", "lxc.mount.fstab"):
            self.once(self.seen, canon, key, line)
        if canon in SINGLE:
            name, parser = SINGLE[canon]
            parsed = self.parse(key, value, line, parser)
            if name is not None:
                self.values[name] = parsed
        elif canon == "lxc.rootfs.path":
            self.values["rootfs"] = self.parse(
                key, value, line, lambda v: rootfs(v, self.base_dir)
            )
        elif canon == "lxc.mount.fstab":
            self.read_fstab(value, line)
        elif canon == "lxc.mount.entry":
            self.entries.append(parse_mount_entry(value, file=self.file, line=line))
        elif canon == "lxc.mount.auto":
            self.mount_auto.extend(self.parse(key, value, line, mount_auto))
        elif canon == "lxc.environment":
            self.environment.append(self.parse(key, value, line, environment))
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
        path = Path(resolve(value, self.base_dir))
        try:
            text = read_text(path)
        except ValueError as exc:
            self.fail(f"cannot read fstab {path}: {exc}", line)
        self.values["fstab"] = path
        self.fstab_entries = fstab_entries(text, str(path))

    def add_cgroup(self, key: str, value: str, line: int) -> None:
        match = CGROUP_KEY_RE.fullmatch(key)
        if match is None:
            self.fail(f"unknown key {key!r} (cgroup keys look like lxc.cgroup.cpu.shares)", line)
        version = 2 if key.startswith("lxc.cgroup2.") else 1
        self.cgroup.append(CgroupSetting(match[1], value, version, line))

    def add_hook(self, key: str, value: str, line: int) -> None:
        kind = key.removeprefix("lxc.hook.")
        if kind not in HOOK_TYPES:
            self.fail(f"unknown key {key!r} (hooks: {', '.join(sorted(HOOK_TYPES))})", line)
        command = self.parse(key, value, line, lambda v: resolve_command(v, self.base_dir))
        self.hooks.setdefault(kind, []).append(command)

    def add_old_net(self, key: str, value: str, line: int) -> None:
        attr = key.removeprefix("lxc.network.")
        if attr == "type":  # in the old dialect each type line starts a network
            index = max(self.nets, default=-1) + 1
            self.last_old = self.nets[index] = _Net(index, "old", line)
        elif attr in NET_ATTRS["old"] and self.last_old is None:
            self.fail(f"{key} comes before any lxc.network.type", line)
        self.set_net_attr(self.last_old, attr, key, value, line)

    def add_new_net(self, key: str, value: str, line: int) -> None:
        match = NET_KEY_RE.fullmatch(key)
        if match is None or match[2] not in NET_ATTRS["new"]:
            self.fail(f"unknown key {key!r}", line)
        if not DIGITS_RE.fullmatch(match[1]):
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
        spec = NET_ATTRS["old" if key.startswith("lxc.network.") else "new"].get(attr)
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
            if kind in NET_TYPES_NEEDING_LINK and "link" not in net.values:
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
            NetConfig(index=net.index, line=net.line, **(NET_DEFAULTS | net.values))
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


def load_config(path: str | os.PathLike[str]) -> ContainerConfig:
    """Read and validate the LXC config at ``path``.

    Relative paths inside it (rootfs, fstab, hook executables with a '/')
    are resolved against the directory holding the file.

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
