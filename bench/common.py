"""What the benchmarks share: figures, a daemon of their own, an event monitor.

Every benchmark runs its own ``lxcflow daemon`` in a temp dir with its own
cgroup parent (``lxcflow-bench-<hex>``) and removes all of it at the end.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxcflow import protocol
from lxcflow.cgroups import open_manager
from lxcflow.client import Client
from lxcflow.errors import DaemonUnavailable, NotFound, WrongState
from lxcflow.paths import Paths
from lxcflow.runtime.netns import tcp_socket_in

#: the traps measured on this machine: no console without a tty, and a
#: working /proc for a container on the host's root
LXC_CONFIG = (
    "lxc.uts.name = bench\nlxc.console.path = none\n"
    "lxc.mount.auto = proc:mixed\nlxc.net.0.type = empty\n"
)
IDLE = ["sleep", "100000"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run a command; RuntimeError with its stderr unless it exits 0."""
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()[-300:]}")


def tcp_socket_of(pid: int) -> socket.socket:
    """A blocking TCP socket made in the network namespace of process ``pid``."""
    pidfd = os.pidfd_open(pid)
    try:
        sock = tcp_socket_in(pidfd)
    finally:
        os.close(pidfd)
    sock.setblocking(True)
    return sock


def percentile(sorted_values: list[float], q: float) -> float:
    """The sample at quantile ``q`` (nearest rank), of values sorted ascending."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def summary(samples_s: list[float]) -> dict[str, float]:
    """n, and the median, p90 and p99 in ms, of samples in seconds (just n if none)."""
    v = sorted(samples_s)
    if not v:
        return {"n": 0}
    return {"n": len(v), "median_ms": statistics.median(v) * 1e3,
            "p90_ms": percentile(v, 0.9) * 1e3, "p99_ms": percentile(v, 0.99) * 1e3}


def summary_line(label: str, st: dict[str, float]) -> str:
    """One printed line of a :func:`summary` with samples."""
    return (f"{label:<46} n={st['n']:<5} median {st['median_ms']:9.3f} ms  "
            f"p90 {st['p90_ms']:9.3f} ms  p99 {st['p99_ms']:9.3f} ms")


def figures(label: str, samples_s: list[float]) -> dict[str, float]:
    """Print and return :func:`summary` of samples in seconds."""
    out = summary(samples_s)
    print(summary_line(label, out))
    return out


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def pss_kib(pid: int) -> int:
    """A process's proportional set size, from /proc/PID/smaps_rollup."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss line for {pid}")


class Monitor:
    """A separate connection that records when each event arrives."""

    def __init__(self, paths: Paths) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(paths.socket))
        self.sock.sendall(protocol.encode({"op": "monitor", "args": {}}))
        self.arrivals: list[tuple[int, dict[str, Any]]] = []  # (arrival ns, event)
        self.cond = threading.Condition()
        # A reader thread keeps receiving while the main thread drives the daemon.
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            now = time.time_ns()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            with self.cond:
                for line in lines:
                    result = protocol.decode(line)["result"]
                    if "container" in result:
                        self.arrivals.append((now, result))
                self.cond.notify_all()

    def mark(self) -> int:
        """An index to look for events from (those that arrive from now on)."""
        with self.cond:
            return len(self.arrivals)

    def wait_for(self, container: str, to: str, after: int) -> tuple[int, dict[str, Any]]:
        """(arrival ns, event) of the first matching event at index >= ``after``."""
        deadline = time.monotonic() + 30
        with self.cond:
            while True:
                for now, e in self.arrivals[after:]:
                    if e["container"] == container and e["to"] == to:
                        return now, e
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no {to} event for {container} in 30 s")
                self.cond.wait(1)

    def wait_until(self, done: Callable[[list[dict[str, Any]]], bool], what: str,
                   stall_s: float = 30.0) -> None:
        """Return once ``done(events)`` holds; give up after ``stall_s`` without an event."""
        with self.cond:
            seen, since = len(self.arrivals), time.monotonic()
            while not done([e for _, e in self.arrivals]):
                self.cond.wait(1.0)
                if len(self.arrivals) != seen:
                    seen, since = len(self.arrivals), time.monotonic()
                elif time.monotonic() - since > stall_s:
                    raise RuntimeError(f"no event for {stall_s:g} s while waiting for {what}")

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join()
        self.sock.close()


class Daemon:
    """One ``lxcflow daemon`` started through the CLI, in its own session (a
    ^C of the bench must not reach it before its containers are stopped).
    ``python`` runs it: another checkout's interpreter runs that checkout."""

    def __init__(self, base: Path, label: str, rules: Path, budget: float | None = None,
                 python: str = sys.executable, metrics: str | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.root = base / label
        self.extra = extra  # more daemon options (--nats ...)
        self.metrics = metrics  # HOST:PORT for --metrics
        self.python = python
        self.rules = rules
        self.budget = budget
        self.paths = Paths(lxcpath=self.root / "lib", socket=self.root / "run" / "s.sock",
                           cgroup_parent=f"lxcflow-bench-{secrets.token_hex(4)}")
        self.log = self.root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    @property
    def env(self) -> dict[str, str]:
        """The environment that points the ``lxcflow`` CLI at this daemon."""
        return dict(os.environ, LXCFLOW_PATH=str(self.paths.lxcpath),
                    LXCFLOW_SOCKET=str(self.paths.socket),
                    LXCFLOW_CGROUP=self.paths.cgroup_parent)

    def start(self, rules: Path | None = None) -> None:
        """Start it and return once it answers a ping."""
        self.root.mkdir(parents=True, exist_ok=True)
        hooks = self.root / "hooks"  # empty: no host-wide hook runs on our events
        hooks.mkdir(exist_ok=True)
        cmd = [self.python, "-m", "lxcflow", "daemon", "--rules", str(rules or self.rules),
               "--hooks", str(hooks), "--log-level", "warning"]
        if self.budget is not None:
            cmd += ["--restart-budget", f"{self.budget:g}"]
        if self.metrics is not None:
            cmd += ["--metrics", self.metrics]
        cmd += self.extra
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.proc.returncode}):\n"
                                   f"{self.log_tail()}")
            try:
                with Client(self.paths, spawn=False) as c:
                    self.pid = int(c.call("ping")["pid"])
                return
            except DaemonUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to our own child, wait, remove the cgroup parent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # by PID; Popen never signals a reaped one
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"warning: daemon {self.proc.pid} ignored SIGTERM for 30 s: SIGKILL")
                self.proc.kill()
                self.proc.wait()
        open_manager(parent=self.paths.cgroup_parent).remove_parent_if_empty()

    def leftover_runs(self) -> list[str]:
        try:
            return sorted(p.name for p in (self.paths.rundir / "containers").iterdir())
        except FileNotFoundError:
            return []

    def clean_up(self, empty_rules: Path) -> None:
        """Stop and destroy whatever containers the daemon has, then stop it. A
        daemon that died is revived first (without rules) to adopt its containers."""
        if self.proc is None:
            return
        try:
            if not self.alive() and self.leftover_runs():
                print(f"daemon died ({self.proc.returncode}); reviving it to clean up:\n"
                      f"{self.log_tail()}")
                self.start(rules=empty_rules)
            if self.alive():
                with Client(self.paths, spawn=False) as c:
                    names = [ct["name"] for ct in c.call("list")]
                    if names:
                        stop_all(c, names)
                        destroy_all(c, names)
        finally:
            self.stop()
        left = [p for p in open_manager(parent=self.paths.cgroup_parent).parent_dirs()
                if p.exists()]
        if left:
            print(f"warning: cgroup parent left behind: {', '.join(map(str, left))}")


def stop_all(c: Client, names: list[str]) -> None:
    """Stop each (a user's stop is final: it cancels a pending restart) until a
    pass finds every one STOPPED with nothing pending, twice; then check list."""
    quiet = 0
    for _ in range(200):
        acted = False
        for name in names:
            try:
                c.call("stop", {"name": name, "kill": True})
                acted = True  # it ran, was dying (may still be restarted), or had a restart pending
            except (WrongState, NotFound):
                pass  # STOPPED with nothing pending (or gone)
        time.sleep(0.2)  # the rule engine has dispatched every STOPPED event by now
        quiet = 0 if acted else quiet + 1
        if quiet >= 2:
            break
    listed = {ct["name"]: ct["state"] for ct in c.call("list")}
    running = {n: s for n, s in listed.items() if n in names and s != "STOPPED"}
    if running or quiet < 2:
        raise RuntimeError(f"containers would not stay stopped: {running}")


def destroy_all(c: Client, names: list[str]) -> None:
    for name in names:
        try:
            c.call("destroy", {"name": name, "force": True})
        except NotFound:
            pass
