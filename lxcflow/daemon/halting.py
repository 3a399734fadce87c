"""How a container's init is asked to halt: the one place that picks the signal.

As LXC does it: a config's ``lxc.signal.halt`` wins; otherwise the choice is
made when the stop is sent, from what the init shows of itself. systemd
shuts down on SIGRTMIN+3 and ignores SIGPWR, and it keeps SIGRTMIN+3 blocked
to take it through a signalfd, so an init that blocks it gets it; any other
init (sysvinit, busybox, openrc) gets SIGPWR. A container running an
application under lxcflow's own minimal init gets SIGTERM, which that init
passes on.
"""

from __future__ import annotations

import signal

from lxcflow.config import ContainerConfig
from lxcflow.runtime import proc
from lxcflow.runtime.spec import RunMode

#: systemd's "halt" request (see systemd(1), "SIGRTMIN+3")
SYSTEMD_HALT = int(signal.SIGRTMIN) + 3


def halt_signal(config: ContainerConfig | None, mode: RunMode, init_pid: int) -> int:
    """The signal that asks the init ``init_pid`` of this container to shut down."""
    if config is not None and config.signal_halt is not None:
        return config.signal_halt
    if mode is RunMode.APP:
        return int(signal.SIGTERM)
    if proc.blocks_signal(init_pid, SYSTEMD_HALT):
        return SYSTEMD_HALT
    return int(signal.SIGPWR)
