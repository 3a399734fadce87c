"""Which capabilities a container keeps (``lxc.cap.drop`` / ``lxc.cap.keep``),
as the bit mask the keeper and attach bound every process of it to."""

from __future__ import annotations

from collections.abc import Iterable

from lxcflow.config import ContainerConfig
from lxcflow.config.values import CAPABILITIES

#: what LXC's common.conf drops, and lxcflow when a config names no cap key
DEFAULT_DROP = ("mac_admin", "mac_override", "sys_time", "sys_module", "sys_rawio")


def _mask(names: Iterable[str]) -> int:
    return sum(1 << CAPABILITIES.index(n) for n in set(names) if n != "none")


def kept_mask(config: ContainerConfig) -> int:
    """The capabilities left in the bounding set: those ``lxc.cap.keep``
    lists (``none``: not one), else all but ``lxc.cap.drop``'s (an emptied
    drop list drops nothing), else all but LXC's common set."""
    every = (1 << len(CAPABILITIES)) - 1
    if config.cap_keep:
        return _mask(config.cap_keep)
    if config.cap_drop is not None:
        return every & ~_mask(config.cap_drop)
    return every & ~_mask(DEFAULT_DROP)
