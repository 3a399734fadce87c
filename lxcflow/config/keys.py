"""Which keys a config may hold, and how each one's value is read."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any, NamedTuple

from lxcflow import validate
from lxcflow.config.values import (
    absolute,
    arch,
    byte_size,
    capabilities,
    hostname,
    hwaddr,
    integer,
    keep,
    matching,
    mount_auto,
    net_type,
    signed_integer,
    tty_dir,
    words,
)

# Old spellings -> today's, so that setting both is caught as a duplicate.
ALIASES = {
    "lxc.utsname": "lxc.uts.name",
    "lxc.seccomp": "lxc.seccomp.profile",
    "lxc.aa_profile": "lxc.apparmor.profile",
    "lxc.aa_allow_incomplete": "lxc.apparmor.allow_incomplete",
    "lxc.rootfs": "lxc.rootfs.path",
    "lxc.mount": "lxc.mount.fstab",
    "lxc.tty": "lxc.tty.max",
    "lxc.pts": "lxc.pty.max",
    "lxc.console": "lxc.console.path",
    "lxc.init_cmd": "lxc.init.cmd",
    "lxc.haltsignal": "lxc.signal.halt",
    "lxc.stopsignal": "lxc.signal.stop",
    "lxc.rebootsignal": "lxc.signal.reboot",
    "lxc.id_map": "lxc.idmap",
}

_count = integer(0, None, "a non-negative integer")
MAX_TTYS = 64  # the keeper's table; LXC's templates ask for 4
_zero_one = integer(0, 1, "0 or 1")


_idmap_container = matching("idmap=container",
                            "'idmap=container' (the only rootfs option lxcflow takes)")


def _flag(value: str) -> bool:
    return bool(_zero_one(value))


# Singleton keys: canonical key -> (ContainerConfig field, or None for a key
# accepted and ignored, parser).
SINGLE: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "lxc.uts.name": ("hostname", hostname),
    "lxc.init.cmd": ("init_cmd", lambda v: tuple(shlex.split(v))),
    "lxc.init.cwd": ("init_cwd", absolute),
    "lxc.namespace.keep": ("namespaces_keep", keep),
    # Every container has a console of its own; "none" takes it away (the
    # output still reaches the log). LXC's other values name a host device.
    "lxc.console.path": ("console_path", matching("none", "'none' (lxcflow gives every "
                                                  "container a console of its own)")),
    "lxc.signal.halt": ("signal_halt", validate.signal_number),
    "lxc.signal.stop": ("signal_stop", validate.signal_number),
    "lxc.signal.reboot": ("signal_reboot", validate.signal_number),
    # lxcflow autostart and the daemon's start at boot (lxc-autostart's keys)
    "lxc.start.auto": ("start_auto", _flag),
    "lxc.start.delay": ("start_delay", _count),
    "lxc.start.order": ("start_order", signed_integer("an integer")),
    # the container's devpts, ttys and console (shim/terminals.c, keeper.c)
    "lxc.tty.max": ("tty_max", integer(0, MAX_TTYS, f"a number of ttys (0-{MAX_TTYS})")),
    "lxc.pty.max": ("pty_max", _count),
    "lxc.tty.dir": ("tty_dir", tty_dir),
    "lxc.console.logfile": ("console_logfile", absolute),
    "lxc.console.size": ("console_size", byte_size),
    "lxc.autodev": ("autodev", _flag),
    "lxc.arch": ("arch", arch),
    # The keeper is the monitor: it never mounts on the host (so it has
    # nothing to unshare) and its death takes the init with this signal.
    "lxc.monitor.unshare": (None, _zero_one),
    "lxc.monitor.signal.pdeath": ("signal_pdeath", validate.signal_number),
    # seccomp (runtime/seccomp.py); the profile is a path, read apart
    "lxc.no_new_privs": ("no_new_privs", _flag),
    # AppArmor (runtime/apparmor.py decides what they mean on this kernel)
    "lxc.apparmor.profile": ("apparmor_profile", str),
    "lxc.apparmor.allow_incomplete": ("apparmor_allow_incomplete", _flag),
    # they shape the profile LXC generates, which lxcflow never does: with
    # AppArmor enabled, "generated" takes LXC's loaded default instead
    "lxc.apparmor.allow_nesting": (None, _zero_one),
    # Filters stack in the kernel: a container that loads its own needs nothing.
    "lxc.seccomp.allow_nesting": (None, _zero_one),
    # Hooks get both version 0's arguments and version 1's environment.
    "lxc.hook.version": (None, _zero_one),
    # LXC's way to ask for an idmapped rootfs (without lxc.idmap, the
    # identity map a privileged container has anyway)
    "lxc.rootfs.options": ("rootfs_idmap", lambda v: bool(_idmap_container(v))),
}

# Keys whose every line adds to a list: canonical key -> the ContainerConfig
# field's items one value gives. (lxc.mount.entry is one too, read apart.)
LIST_KEYS: dict[str, Callable[[str], tuple[Any, ...]]] = {
    "lxc.mount.auto": mount_auto,
    "lxc.environment": lambda v: (validate.environment_variable(v),),
    "lxc.group": lambda v: tuple(v.split()),  # several, blank-separated
    "lxc.cap.drop": capabilities,
    "lxc.cap.keep": capabilities,
}

# Confinement the user asked for and this runtime cannot give: running without
# it would be silently less safe than they believe.
REFUSED = frozenset({"lxc.se_context"})
REFUSED_PREFIXES = ("lxc.selinux.", "lxc.seccomp.notify.")


class _Attr(NamedTuple):
    field: str  # the NetConfig field
    parse: Callable[[str], Any]
    repeatable: bool = False


_NET_COMMON = {
    "type": _Attr("type", net_type),
    "flags": _Attr("flags", words(frozenset({"up"}), "a flag")),
    "link": _Attr("link", validate.interface_name),
    "name": _Attr("name", validate.interface_name),
    "hwaddr": _Attr("hwaddr", hwaddr),
    "mtu": _Attr("mtu", integer(68, 65535, "an MTU (68-65535)")),
    "ipv4.gateway": _Attr("ipv4_gateway", lambda v: validate.ip_gateway(v, 4)),
    "ipv6.gateway": _Attr("ipv6_gateway", lambda v: validate.ip_gateway(v, 6)),
    "veth.pair": _Attr("veth_pair", validate.interface_name),
}
_IPV4 = _Attr("ipv4", lambda v: validate.ip_interface(v, 4, lxc=True), repeatable=True)
_IPV6 = _Attr("ipv6", lambda v: validate.ip_interface(v, 6, lxc=True), repeatable=True)
# lxc.network.ATTR and lxc.net.N.ATTR differ only in how addresses are named.
NET_ATTRS = {
    "old": {**_NET_COMMON, "ipv4": _IPV4, "ipv6": _IPV6},
    "new": {**_NET_COMMON, "ipv4.address": _IPV4, "ipv6.address": _IPV6},
}
NET_DEFAULTS: dict[str, Any] = dict.fromkeys(spec.field for spec in _NET_COMMON.values())
NET_DEFAULTS.update(flags=(), ipv4=(), ipv6=())
NET_KEY_RE = re.compile(r"lxc\.net\.([^.]+)\.(.+)")
CGROUP_KEY_RE = re.compile(r"lxc\.cgroup2?\.([a-z0-9_]+\.[a-z0-9_.]+)")

