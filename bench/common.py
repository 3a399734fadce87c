"""What the benchmarks share: LXC's side-by-side config and daemon clean-up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lxcflow.cgroups import open_manager
from lxcflow.paths import Paths

#: the traps measured on this machine: no console without a tty, and a
#: working /proc for a container on the host's root
LXC_CONFIG = (
    "lxc.uts.name = bench\nlxc.console.path = none\n"
    "lxc.mount.auto = proc:mixed\nlxc.net.0.type = empty\n"
)


def stop_daemon(paths: Paths) -> None:
    """End the daemon a benchmark started (if any) and remove its cgroup parent."""
    pid_file = paths.rundir / "daemon.lock"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.01)
    open_manager(parent=paths.cgroup_parent).remove_parent_if_empty()
