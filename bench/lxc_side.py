"""LXC's side of the comparison: its commands on containers of a temp lxcpath.

Each container is defined as LXC defines one (``<lxcpath>/<name>/config``),
on the host's root with the traps measured here taken care of (no console
without a tty, a working /proc, an empty network namespace), so the
commands need neither ``-f`` nor ``--rcfile``. :meth:`Lxc.clean_up` stops
what is left, ends the ``lxc-monitord`` this lxcpath caused and removes the
``lxc.pivot`` cgroups LXC left that were not there before.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from common import LXC_CONFIG

CGROUP_ROOT = Path("/sys/fs/cgroup")


def version() -> str | None:
    """LXC's version, or None when it is not installed."""
    if shutil.which("lxc-start") is None:
        return None
    return subprocess.run(["lxc-start", "--version"], capture_output=True,
                          text=True).stdout.strip()


def _pivots() -> set[Path]:
    return set(CGROUP_ROOT.glob("*/lxc.pivot")) | set(CGROUP_ROOT.glob("lxc.pivot"))


class Lxc:
    """LXC's commands on the containers of one temp lxcpath."""

    def __init__(self, base: Path) -> None:
        self.lxcpath = base / "lxc"
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        self.pivots_before = _pivots()

    def define(self, name: str, init: list[str] | None = None) -> None:
        """Write ``<lxcpath>/<name>/config`` (with an init command, if given)."""
        (self.lxcpath / name).mkdir(exist_ok=True)
        text = LXC_CONFIG.replace("bench", name)
        if init:
            text += f"lxc.init.cmd = {shlex.join(init)}\n"
        (self.lxcpath / name / "config").write_text(text)

    def argv(self, tool: str, name: str | None, *rest: str) -> list[str]:
        """The command line of ``lxc-<tool>`` for container ``name``."""
        named = ["-n", name] if name is not None else []
        return [f"lxc-{tool}", "-P", str(self.lxcpath), *named, *rest]

    def run(self, tool: str, name: str | None, *rest: str) -> str:
        """Run ``lxc-<tool>``; its stdout, or RuntimeError with its stderr."""
        done = subprocess.run(self.argv(tool, name, *rest), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"lxc-{tool} {name}: exit {done.returncode}: "
                               f"{done.stderr.strip()[-300:]}")
        return done.stdout

    def init_pid(self, name: str) -> int:
        """The PID of the container's init (0 when it is not running)."""
        out = self.run("info", name, "-p", "-H").strip()
        return int(out) if out else 0

    def _pids(self, match: Callable[[bytes], bool]) -> list[int]:
        """PIDs whose command line (NUL-separated) ``match`` accepts."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if match(cmdline):
                pids.append(int(entry.name))
        return pids

    def monitor_pids(self) -> list[int]:
        """The ``[lxc monitor]`` processes of this lxcpath's containers."""
        prefix = f"[lxc monitor] {self.lxcpath} ".encode()
        return self._pids(lambda cmdline: cmdline.startswith(prefix))

    def running(self) -> list[str]:
        return self.run("ls", None, "--running", "-1").split()

    def clean_up(self) -> None:
        """Stop every running container, end this lxcpath's lxc-monitord and
        remove the ``lxc.pivot`` cgroups that appeared during the run."""
        for name in self.running():
            subprocess.run(self.argv("stop", name, "-k"), capture_output=True)
        deadline = time.monotonic() + 10
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        needle = str(self.lxcpath).encode()
        for pid in self._pids(lambda cmdline: needle in cmdline
                              and cmdline.split(b"\0")[0].endswith(b"lxc-monitord")):
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
                # Gone before we return, not merely told to go.
                if not select.select([pidfd], [], [], 5)[0]:
                    print(f"warning: lxc-monitord {pid} still running 5 s after SIGTERM")
            finally:
                os.close(pidfd)
        for pivot in sorted(_pivots() - self.pivots_before):
            try:
                pivot.rmdir()
            except OSError as e:
                print(f"warning: {pivot} left behind: {e.strerror}")
