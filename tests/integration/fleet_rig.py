"""Real NATS servers and lxcflow daemons as hosts of a fleet, for the fleet tests.

Each server is Debian's ``nats-server`` on free loopback ports (client and
cluster listeners), with its own temporary store and JetStream capped at
64 MB of memory and 256 MB of file store. Each host is an lxcflow daemon
with its own lxcpath, socket, cgroup parent and ``--host`` name. Everything
is stopped and removed by :meth:`close`, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import trio

from lxcflow.nats.connection import NatsError, connect
from lxcflow.nats.jetstream import JetStream
from lxcflow.nats.servers import parse_servers
from lxcflow.paths import Paths
from tests.integration.conftest import Env, cleanup_cgroups, free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"

#: an application container that shares the host's root and sleeps
SLEEPER = "lxc.uts.name = fleetbox\nlxc.init.cmd = sleep 1000\n"


class NatsServer:
    """One ``nats-server`` with JetStream; a cluster member if ``cluster_port``."""

    def __init__(self, base: Path, name: str, *, cluster_port: int | None = None,
                 routes: tuple[int, ...] = (), extra: str = "", jetstream: bool = True) -> None:
        self.base = base / name
        self.base.mkdir(parents=True)
        self.name = name
        self.port = free_port()
        self.cluster_port = cluster_port
        self.routes = routes
        self.extra = extra
        self.jetstream = jetstream
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = [f"server_name: {self.name}", f"listen: 127.0.0.1:{self.port}"]
        if self.jetstream:
            config += ["jetstream {", f'  store_dir: "{self.base / "store"}"',
                       "  max_memory_store: 64MB", "  max_file_store: 256MB", "}"]
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            config += ["cluster {", "  name: lxcflow-test",
                       f"  listen: 127.0.0.1:{self.cluster_port}", f"  routes: [{routes}]", "}"]
        (self.base / "nats.conf").write_text("\n".join(config) + "\n" + self.extra)
        log = open(self.base / "nats.log", "ab")  # noqa: SIM115 - kept open with the process
        self.proc = subprocess.Popen([NATS_SERVER, "-c", str(self.base / "nats.conf")],
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                        timeout=0.2):
                return
            assert self.proc.poll() is None, self.log()
            time.sleep(0.02)
        raise AssertionError(f"nats-server {self.name} did not listen: {self.log()}")

    def log(self) -> str:
        return (self.base / "nats.log").read_text(errors="replace")[-2000:]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)  # a paused server cannot die of TERM
            self.kill()

    def received_but_unread(self) -> int:
        """Bytes waiting in the server's sockets (Recv-Q of its client port)."""
        out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{self.port} )"],
                             capture_output=True, text=True, check=True).stdout
        return sum(int(line.split()[0]) for line in out.splitlines() if line.strip())


def jetstream_ready(urls: str, timeout: float = 30.0) -> None:
    """Wait until JetStream answers (a new cluster elects its leader first)."""

    async def ask() -> None:
        async with connect(parse_servers(urls)) as conn:
            await JetStream(conn, timeout=1.0).api("INFO")

    deadline = time.monotonic() + timeout
    while True:
        try:
            trio.run(ask)
            return
        except NatsError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Host:
    """One lxcflow daemon as a host of the fleet."""

    def __init__(self, base: Path, name: str, nats: str, *daemon_args: str) -> None:
        self.name = name
        self.nats = nats
        self.daemon_args = daemon_args
        root = base / name
        paths = Paths(lxcpath=root / "lib", socket=root / "run" / "lxcflow.sock",
                      cgroup_parent=f"lxcflow-test-{secrets.token_hex(4)}")
        env = dict(os.environ)
        env.update(LXCFLOW_PATH=str(paths.lxcpath), LXCFLOW_SOCKET=str(paths.socket),
                   LXCFLOW_CGROUP=paths.cgroup_parent)
        env.pop("LXCFLOW_NATS", None)
        self.env = Env(base=root, paths=paths, env=env)
        root.mkdir(parents=True)
        self.log_path = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon with ``--nats``; returns once it is ready.

        Raises:
            AssertionError: it did not start (its log is in the message).
        """
        ready_r, ready_w = os.pipe()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lxcflow", "daemon", "--ready-fd", str(ready_w),
                 "--nats", self.nats, "--host", self.name, "--hooks", str(self.env.base / "hooks"),
                 "--rules", str(self.rules_dir), *self.daemon_args],
                env=self.env.env, pass_fds=(ready_w,), stdout=log, stderr=log,
            )
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            answer = ready.read().decode().strip()
        assert answer == "ready", f"{self.name}: {answer}\n{self.log()[-3000:]}"

    @property
    def rules_dir(self) -> Path:
        path = self.env.base / "rules"
        path.mkdir(exist_ok=True)
        return path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""  # never started

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def ok(self, *args: str) -> str:
        return self.env.ok("--no-spawn", *args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.env.run("--no-spawn", *args)

    @contextlib.contextmanager
    def background(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """``lxcflow ARGS`` on this host, running while the block runs (text
        pipes for its output); killed after if it is still running."""
        proc = subprocess.Popen([sys.executable, "-m", "lxcflow", "--no-spawn", *args],
                                env=self.env.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

    def create(self, name: str, config: str = SLEEPER) -> None:
        path = self.env.config(config, f"{name}.conf")
        self.ok("create", "-n", name, "-f", str(path))

    def fleet_events(self) -> list[dict[str, object]]:
        """Every event in the stream (every host's), oldest first."""
        out = self.ok("monitor", "--fleet", "--since", "0", "--no-follow", "--json")
        return [json.loads(line) for line in out.splitlines()]

    def journal(self) -> list[dict[str, object]]:
        """This host's own journal, oldest first."""
        out = self.ok("monitor", "--since", "0", "--no-follow", "--json")
        return [json.loads(line) for line in out.splitlines()]

    def close(self) -> None:
        self.kill(signal.SIGTERM)
        self.env.kill_daemon(signal.SIGTERM)  # one a CLI call started on demand
        cleanup_cgroups(self.env.paths.cgroup_parent)


class Fleet:
    """NATS servers and hosts made by one test; :meth:`close` ends them all."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="lxcflow-f-"))
        self.servers: list[NatsServer] = []
        self.hosts: list[Host] = []

    def server(self, **kwargs: object) -> NatsServer:
        server = NatsServer(self.base, f"n{len(self.servers) + 1}", **kwargs)  # type: ignore[arg-type]
        self.servers.append(server)
        server.start()
        return server

    def cluster(self, size: int = 3) -> list[NatsServer]:
        """``size`` servers routed to each other, with JetStream ready."""
        ports = [free_port() for _ in range(size)]
        members = []
        for i, port in enumerate(ports):
            member = NatsServer(self.base, f"c{i + 1}", cluster_port=port,
                                routes=tuple(p for p in ports if p != port))
            self.servers.append(member)
            members.append(member)
        for member in members:
            member.start()
        jetstream_ready(",".join(m.url for m in members))
        return members

    def host(self, name: str, nats: str, *daemon_args: str, start: bool = True) -> Host:
        host = Host(self.base, name, nats, *daemon_args)
        self.hosts.append(host)
        if start:
            host.start()
        return host

    def close(self) -> None:
        for host in self.hosts:
            # pytest shows a test's output only when it fails: the logs then.
            print(f"--- {host.name} daemon log (tail)\n{host.log()[-4000:]}")
            host.close()
        for server in self.servers:
            server.close()
        shutil.rmtree(self.base, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``predicate`` every 50 ms until true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
