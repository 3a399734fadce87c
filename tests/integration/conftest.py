"""Fixtures for tests on the real kernel, as root.

Each test gets its own lxcpath, run directory (so its own daemon) and cgroup
parent (``lxcflow-test-<hex>``). Cleanup runs even when the test fails: it
ends the test's daemon, kills every process left in the test's cgroups by
cgroup, and removes the cgroups and directories.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from lxcflow.cgroups import open_manager
from lxcflow.daemon.engine import RuleEngine
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import CgroupError, WrongState
from lxcflow.paths import Paths
from lxcflow.runtime import shim
from lxcflow.states import State
from tests import debian_rootfs as debian_rootfs_cache
from tests.integration.rules_rig import Rig

if TYPE_CHECKING:
    from tests.integration.fleet_rig import Fleet

ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not ROOT, reason="needs root and the real kernel")


@dataclass
class Env:
    """One test's lxcflow installation, driven through the real CLI."""

    base: Path
    paths: Paths
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``lxcflow ARGS`` as a user would; never raises on a non-zero exit."""
        return subprocess.run(
            [sys.executable, "-m", "lxcflow", *args],
            env=self.env, input=input.decode() if input else None, capture_output=True,
            text=True, timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        """Run and insist on exit 0; returns stdout."""
        r = self.run(*args)
        assert r.returncode == 0, f"lxcflow {' '.join(args)}: rc={r.returncode} {r.stderr}"
        return r.stdout

    def config(self, text: str, name: str = "config") -> Path:
        path = self.base / name
        path.write_text(text)
        return path

    def daemon_pid(self) -> int | None:
        try:
            return int((self.paths.rundir / "daemon.lock").read_text())
        except (OSError, ValueError):
            return None

    def kill_daemon(self, sig: int = signal.SIGKILL) -> None:
        pid = self.daemon_pid()
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)


def free_port() -> int:
    """A loopback port nothing on the host listens on now (so a probe that
    passes was answered inside the container's own namespace)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cleanup_cgroups(parent: str) -> list[str]:
    """Kill and remove every container cgroup under ``parent``; return their names."""
    manager = open_manager(parent=parent)
    names = manager.names()
    for name in names:
        try:
            cg = manager.open(name)
        except CgroupError:  # half-made: remove what is there
            for d in manager.joined_parent_dirs():
                with contextlib.suppress(OSError):
                    (d / name).rmdir()  # cgroupfs: rmdir, never unlink
            continue
        for _ in range(100):
            if not cg.pids():
                break
            cg.kill(signal.SIGKILL)
            time.sleep(0.01)
        try:
            cg.remove()
        except CgroupError:
            pass
    try:
        manager.remove_parent_if_empty()
    except CgroupError:
        pass
    return names


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """NATS servers and lxcflow daemons as hosts (tests/integration/fleet_rig.py),
    all stopped and removed after the test."""
    from tests.integration.fleet_rig import Fleet  # it builds on this module's helpers

    f = Fleet()
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="session")
def shim_binary() -> Path:
    return shim.ensure_built()


@pytest.fixture
def lxc(shim_binary: Path) -> Iterator[Env]:
    if not ROOT:
        pytest.skip("needs root and the real kernel")
    # Short paths: a Unix socket path must fit in 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="lxcflow-t-"))
    paths = Paths(
        lxcpath=base / "lib", socket=base / "run" / "lxcflow.sock",
        cgroup_parent=f"lxcflow-test-{secrets.token_hex(4)}",
    )
    env = dict(os.environ)
    env.update(
        LXCFLOW_PATH=str(paths.lxcpath), LXCFLOW_SOCKET=str(paths.socket),
        LXCFLOW_CGROUP=paths.cgroup_parent, LXCFLOW_SHIM=str(shim_binary),
    )
    e = Env(base=base, paths=paths, env=env)
    try:
        yield e
    finally:
        e.kill_daemon(signal.SIGTERM)
        cleanup_cgroups(paths.cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)


class Terminal:
    """The master of a pty a CLI runs on: what it printed so far, and typing."""

    def __init__(self, pid: int, master: int) -> None:
        self.pid = pid
        self.master = master
        self.seen = b""

    def until(self, text: bytes, timeout: float = 15) -> bytes:
        """Read until ``text`` has been printed; everything printed so far.

        Raises:
            AssertionError: not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while text not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # EIO: the CLI has ended
                    break
        assert text in self.seen, f"{text!r} never came; got {self.seen[-400:]!r}"
        return self.seen

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 15) -> int:
        """The CLI's exit code, once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = -1
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        raise AssertionError(f"the CLI did not end within {timeout} s")


@contextlib.contextmanager
def cli_on_a_terminal(
    lxc: Env, *args: str, size: tuple[int, int] | None = None
) -> Iterator[Terminal]:
    """``lxcflow ARGS`` on a real terminal (a pty this test holds), of
    ``size`` (rows, columns) if given; the CLI is ended after."""
    pid, master = os.forkpty()
    if pid == 0:  # the CLI, on the terminal
        try:
            if size is not None:
                termios.tcsetwinsize(0, size)
            os.execve(sys.executable, [sys.executable, "-m", "lxcflow", *args], lxc.env)
        finally:
            os._exit(127)
    terminal = Terminal(pid, master)
    try:
        yield terminal
    finally:
        if terminal.pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(master)


HOST_ROOT_CONFIG = "lxc.uts.name = testbox\n"


@pytest.fixture
def host_root_config(lxc: Env) -> Path:
    """A container sharing the host's root, as the seed's application containers."""
    return lxc.config(HOST_ROOT_CONFIG)


@pytest.fixture
def bridge(lxc: Env) -> Iterator[str]:
    """A test bridge (lxft<hex>, 198.18.70.1/24, no uplink), removed afterwards."""
    from pyroute2 import IPRoute

    name = f"lxft{secrets.token_hex(4)}"
    lxc.ok("net", "bridge-add", name, "--ipv4", "198.18.70.1/24")
    try:
        yield name
    finally:
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=name):
                ipr.link("del", index=index)


@pytest.fixture(scope="module")
def debian_rootfs() -> Iterator[Path]:
    """A Debian root file system (systemd as its init) from the debian
    template's cache, for one test module: its boots write to it, the cache
    stays as built."""
    if not ROOT:
        pytest.skip("needs root and the real kernel")
    base = Path(tempfile.mkdtemp(prefix="lxcflow-deb-"))
    try:
        debian_rootfs_cache.make(base / "rootfs")
        yield base / "rootfs"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def rig(lxc: Env, shim_binary: Path) -> AsyncIterator[Rig]:
    """A supervisor with a rule engine in this process, and five containers
    (web, idle, busy, db, app) that share the host's root."""
    rules = lxc.base / "rules"
    rules.mkdir()
    sup = Supervisor(lxc.paths, open_manager(parent=lxc.paths.cgroup_parent),
                     shim_binary=shim_binary)
    engine = RuleEngine(sup, rules, hook_timeout=0.5, action_timeout=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        await nursery.start(sup.run)
        # The host's root, with an init that is not the host's own.
        config = lxc.config("lxc.uts.name = ruled\nlxc.init.cmd = sleep 1000\n")
        for name in ("web", "idle", "busy", "db", "app"):
            await sup.create(name, str(config))
        yield Rig(sup, engine, rules)
        with trio.move_on_after(10) as scope:
            scope.shield = True
            for c in list(sup.containers.values()):
                if c.state is not State.STOPPED:
                    try:
                        await sup.stop(c.name, kill=True)
                    except WrongState:
                        pass
        nursery.cancel_scope.cancel()
