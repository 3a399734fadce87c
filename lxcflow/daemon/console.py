"""``console`` and ``logs``: where a client finds a container's terminals and
what its console printed.

The keeper holds the terminals and writes the log (shim/keeper.c); the
daemon only checks the request against the container's config and state and
names the keeper's socket, so a console session never passes through the
daemon and outlives its restarts.
"""

from __future__ import annotations

from typing import Any

from lxcflow.config import ContainerConfig, load_config
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import UsageError, WrongState
from lxcflow.runstate import CONSOLE_SOCKET


def _no_console(config: ContainerConfig) -> str | None:
    if config.rootfs is None:
        return "shares the host's root, so it has no devpts and no console"
    if config.console_path == "none":
        return "has no console (lxc.console.path = none)"
    return None


def terminal(supervisor: Supervisor, name: str, tty: int) -> dict[str, Any]:
    """The keeper's socket for tty ``tty`` (0: the console) of ``name``.

    Raises:
        NotFound, WrongState: no such container, or it is not running.
        UsageError: it has no such tty.
    """
    if tty < 0:
        raise UsageError(f"tty {tty}: ttys are numbered from 1 (0 is the console)")
    c, run, _cgroup = supervisor.running(name)
    config = c.config
    assert config is not None  # a running container has its run's config
    if tty == 0 and (why := _no_console(config)):
        raise UsageError(f"container {name!r} {why}")
    if tty > config.tty_max:
        raise UsageError(f"container {name!r} has no tty {tty}: lxc.tty.max is "
                         f"{config.tty_max}" + ("" if config.rootfs else
                                                 " (it shares the host's root)"))
    socket = run.directory / CONSOLE_SOCKET
    if not socket.exists():
        raise WrongState(f"container {name!r} was started in the foreground: its terminal is "
                         "the one that started it", container=name)
    return {"socket": str(socket)}


def log(supervisor: Supervisor, name: str) -> dict[str, Any]:
    """Where ``name``'s console log is, and the keeper's socket while it runs
    (to follow the log as it grows).

    Raises:
        NotFound: no such container. ConfigError: its config cannot be read.
    """
    c = supervisor.get(name)
    config = c.config or load_config(supervisor.paths.config_file(name))
    path = supervisor.paths.console_log(name, config.console_logfile, ephemeral=c.ephemeral)
    socket = c.run.directory / CONSOLE_SOCKET if c.run is not None else None
    return {"log": str(path), "socket": str(socket) if socket and socket.exists() else None}
