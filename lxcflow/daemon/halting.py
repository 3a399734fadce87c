"""How a container's init is asked to halt or reboot, and how its end is read:
the one place for both decisions.

As LXC does it: a config's ``lxc.signal.halt`` wins; otherwise the choice is
made when the stop is sent, from what the init shows of itself. systemd
shuts down on SIGRTMIN+3 and ignores SIGPWR, and it keeps SIGRTMIN+3 blocked
to take it through a signalfd, so an init that blocks it gets it; any other
init (sysvinit, busybox, openrc) gets SIGPWR. A container running an
application under lxcflow's own minimal init gets SIGTERM, which that init
passes on. A reboot is asked with ``lxc.signal.reboot``, else SIGINT
(systemd and sysvinit take it as ctrl-alt-del).

A reboot(2) inside a pid namespace ends the namespace's init as if by a
signal: SIGHUP for a restart, SIGINT for a halt or power-off. No other
death of a system container's init looks like that: as a namespace's init
it cannot be killed by a signal it has no handler for (only SIGKILL), and
with a handler it does not die of it.

How it ended is known as soon as the keeper reaps the init: the keeper
reports the status on its pipe to the daemon that started it; a daemon that
adopted the run reads it from the init's own pidfd (the kernel keeps the
status of a reaped process, 6.15+) where that can tell (:func:`seen_exit`).
The keeper's exit record, written at the same reap, is the durable copy and
decides everywhere else.
"""

from __future__ import annotations

import signal

from lxcflow.config import ContainerConfig
from lxcflow.runstate import ExitStatus
from lxcflow.runtime import proc
from lxcflow.runtime.spec import RunMode
from lxcflow.states import Cause

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


def reboot_signal(config: ContainerConfig | None) -> int:
    """The signal that asks a system container's init to reboot."""
    if config is not None and config.signal_reboot is not None:
        return config.signal_reboot
    return int(signal.SIGINT)


def seen_exit(mode: RunMode, status: int | None) -> ExitStatus | None:
    """The container's exit status as its init's pidfd tells it (``status``:
    the raw status the kernel kept), or None where only the keeper's record
    can.

    A system container's init is its command, but the kernel keeps for
    the pidfd the init's own exit code, not the status wait(2) gives its
    parent: an init ended by reboot(2) shows an exit 0 (it called
    reboot and exited) or SIGKILL (another process called it), while the
    keeper sees SIGINT or SIGHUP (measured on 6.18). Those two go to the
    record. An application's PID 1 is the small init, which exits with the
    command's code, or 128 + the signal that killed it: below 128 (and
    above 0, the reboot fingerprint) that is exactly the command's code;
    from 128 on, or when the small init itself was killed (the command may
    have ended first), the record says which.
    """
    if status is None:
        return None
    exit = ExitStatus.of_wait_status(status)
    if exit.code == 0 or exit.signal == signal.SIGKILL:
        return None  # maybe reboot(2): only the keeper saw how
    if mode is RunMode.SYSTEM or (exit.code is not None and exit.code < 128):
        return exit
    return None


def init_end(mode: RunMode, exit: ExitStatus | None) -> Cause | None:
    """REBOOT or HALT when a system container's init ended through
    reboot(2); None for any other end."""
    if mode is not RunMode.SYSTEM or exit is None:
        return None
    if exit.signal == signal.SIGHUP:
        return Cause.REBOOT
    if exit.signal == signal.SIGINT:
        return Cause.HALT
    return None
