"""Which devices a container may open: its config's rules, or when it lists
none LXC's common.conf list, on the v1 devices controller (``devices.deny``
/ ``devices.allow``): deny all, then mknod of any node (opening one still
fails) and the harmless ones."""

from __future__ import annotations

from lxcflow.config import ContainerConfig

#: LXC's common.conf, in its order
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("devices.deny", "a"),
    ("devices.allow", "c *:* m"),  # mknod of any node; opening it is another matter
    ("devices.allow", "b *:* m"),
    ("devices.allow", "c 1:3 rwm"),  # null
    ("devices.allow", "c 1:5 rwm"),  # zero
    ("devices.allow", "c 1:7 rwm"),  # full
    ("devices.allow", "c 1:8 rwm"),  # random
    ("devices.allow", "c 1:9 rwm"),  # urandom
    ("devices.allow", "c 5:0 rwm"),  # tty
    ("devices.allow", "c 5:1 rwm"),  # console
    ("devices.allow", "c 5:2 rwm"),  # ptmx
    ("devices.allow", "c 136:* rwm"),  # pts/*
    ("devices.allow", "c 10:229 rwm"),  # fuse
    ("devices.allow", "c 10:200 rwm"),  # net/tun
    ("devices.allow", "c 10:228 rwm"),  # hpet
    ("devices.allow", "c 10:232 rwm"),  # kvm
    ("devices.allow", "c 254:0 rm"),  # rtc0
)


def device_rules(config: ContainerConfig) -> list[tuple[str, str, int | None]]:
    """(key, value, config line or None) for the v1 devices controller:
    the config's ``lxc.cgroup.devices.*``, else its ``lxc.cgroup2.devices.*``
    (the same rule syntax; on a v1 host LXC reads only the former, so they
    are taken only when the native set is absent), else LXC's list."""
    own = [s for s in config.cgroup if s.key.startswith("devices.")]
    native = [s for s in own if s.version == 1] or own
    if native:
        return [(s.key, s.value, s.line) for s in native]
    return [(key, value, None) for key, value in DEFAULT_RULES]
