"""Which devices a container may open: its config's rules, or when it lists
none LXC's common.conf list (deny all, then mknod of any node, opening one
still failing, and the harmless ones), for the v1 devices controller or a
cgroup2 device program (device_program.py)."""

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


def device_rules(config: ContainerConfig, *, cgroup2: bool = False
                 ) -> list[tuple[str, str, int | None]]:
    """(key, value, config line or None): the config's rules of the set
    native to the host (``lxc.cgroup.devices.*`` for the v1 controller,
    ``lxc.cgroup2.devices.*`` with ``cgroup2``, for a device program), the
    other set only when the native one is absent (as LXC 5), else LXC's list."""
    own = [s for s in config.cgroup if s.key.startswith("devices.")]
    native = [s for s in own if s.version == (2 if cgroup2 else 1)] or own
    if native:
        return [(s.key, s.value, s.line) for s in native]
    return [(key, value, None) for key, value in DEFAULT_RULES]
