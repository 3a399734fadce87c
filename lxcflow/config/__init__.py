"""LXC container config files -> validated, frozen values.

Reads both dialects: the LXC 1.x/2.x keys (``lxc.utsname``, ``lxc.network.*``,
``lxc.rootfs``, ``lxc.mount``) and the LXC 3.0+ ones (``lxc.uts.name``,
``lxc.net.N.*``, ``lxc.rootfs.path``, ``lxc.mount.fstab``). Every problem is a
:class:`~lxcflow.errors.ConfigError` naming the file and 1-based line at fault.
The only I/O is reading the config and the fstab it names; whether the rootfs
exists is checked when the container starts.

The package: :mod:`.model` (what a config says), :mod:`.keys` (which keys
exist and how each is read), :mod:`.values` (single values), :mod:`.paths`
(relative paths and :func:`absolutize`), :mod:`.fstab` (mount entries),
:mod:`.parse` (the pass over a file's lines).
"""

from lxcflow.config.fstab import parse_fstab, parse_mount_entry
from lxcflow.config.model import (
    NET_TYPES,
    NET_TYPES_STARTED,
    NET_TYPES_WITHOUT_INTERFACE,
    CgroupSetting,
    ContainerConfig,
    MountEntry,
    NetConfig,
)
from lxcflow.config.parse import load_config, parse_config
from lxcflow.config.paths import absolutize

__all__ = [
    "NET_TYPES",
    "NET_TYPES_STARTED",
    "NET_TYPES_WITHOUT_INTERFACE",
    "CgroupSetting",
    "ContainerConfig",
    "MountEntry",
    "NetConfig",
    "absolutize",
    "load_config",
    "parse_config",
    "parse_fstab",
    "parse_mount_entry",
]
