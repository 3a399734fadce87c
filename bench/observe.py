"""17. Health probes and 18. metrics scrapes over many running containers.

Each container runs busybox's httpd on 127.0.0.1:8080 in a network
namespace of its own (a real server answering, a few KiB each), under a
daemon of this operation's own, started with ``--metrics`` on a free
loopback port and rules it alone reads.

17: a ``tcp = 8080`` health rule over all of them, probing every
``probe_every`` seconds; after two periods, the daemon's CPU (utime +
stime of all its threads) over ``window`` seconds, as % of a core and per
probe, beside the kernel's floor: a blocking connect and reset from one
socket in a container's namespace, timed in this process. Then an
``exec = ["true"]`` rule over ``exec_probes`` of them, every second: the
daemon's CPU per probe, and the attach processes' (its reaped children's).

18: ``GET /metrics`` of all of them: the wall time at the scraper, the CPU
time of the daemon's trio thread (/proc/PID/task/PID/schedstat, in ns) per
scrape while nothing else happens, and the same cgroup reads done alone in
this process (what is left is rendering and serving). Then, interleaved,
SIGKILL of a container's init -> its STOPPING event at a subscriber, once
while a scrape is under way (the kill lands at a random point of it) and
once with none; the difference of the medians is what a scrape delays a
transition.

LXC has neither health checks nor metrics: figures and targets only.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

from common import CLK_TCK, Daemon, Monitor, cpu_ticks, destroy_all, stop_all, tcp_socket_of
from report import FLOOR, LXCFLOW, Check, Operation, Scalar
from rig import Bench

from lxcflow.cgroups import open_manager
from lxcflow.client import Client
from lxcflow.runtime.netns import disconnect

PORT = 8080


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _thread_cpu_ns(pid: int) -> int:
    """CPU time of a process's main thread (the daemon's trio loop), in ns."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0])


def _scrape(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    body = b"".join(chunks)
    if not body.startswith(b"HTTP/1.0 200") and not body.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/metrics answered {body[:80]!r}")
    return body


class _Rules:
    """The daemon's rules directory: one file, written and waited for."""

    def __init__(self, c: Client, directory: Path) -> None:
        self.c = c
        self.file = directory / "observe.toml"

    def set(self, text: str | None, expect: str | None) -> None:
        """Write (or, with None, remove) the file; return once the daemon
        has loaded the rule ``expect`` (or, with None, has no rule)."""
        if text is None:
            self.file.unlink(missing_ok=True)
        else:
            self.file.write_text(text)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            report = self.c.call("rules")
            if report["errors"]:
                raise RuntimeError(f"the bench's rules did not load: {report['errors']}")
            names = [r["name"] for r in report["rules"]]
            if names == ([expect] if expect else []):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the daemon did not load {expect!r}")


def _cpu_window(pid: int, seconds: float) -> tuple[float, float]:
    """The daemon's own and its reaped children's CPU seconds over ``seconds``."""
    own0, children0 = cpu_ticks(pid)
    time.sleep(seconds)
    own1, children1 = cpu_ticks(pid)
    return (own1 - own0) / CLK_TCK, (children1 - children0) / CLK_TCK


def _connect_floor(init_pid: int, n: int = 2000) -> float:
    """CPU seconds of one blocking connect to the container's server and its
    reset, from one socket made once in its namespace: a probe's kernel work
    with nothing of Python's or trio's around it."""
    with tcp_socket_of(init_pid) as sock:
        t0 = time.thread_time()
        for _ in range(n):
            sock.connect(("127.0.0.1", PORT))
            if not disconnect(sock.fileno()):
                raise RuntimeError("the kernel refused to dissolve a connection")
        return (time.thread_time() - t0) / n


def _reads_alone(parent: str, names: list[str], passes: int = 4) -> float:
    """CPU seconds to read, through the cgroup driver, what a scrape reads
    of every container, with nothing rendered: the median of ``passes``
    after a first that warms the driver objects, as the daemon's are."""
    manager = open_manager(parent=parent)
    cgroups = [manager.open(name) for name in names]
    took = []
    for _ in range(passes + 1):
        t0 = time.thread_time()
        for cg in cgroups:
            cg.cpu_usage_ns()
            cg.memory_bytes()
            cg.inactive_file_bytes()
            cg.process_count()
        took.append(time.thread_time() - t0)
    return statistics.median(took[1:])


def _probes(b: Bench, c: Client, rules: _Rules, pid: int, names: list[str]) -> Operation:
    count, every, window = len(names), b.size["probe_every"], b.size["window"]
    op = Operation("probes", f"17. health probes: {count} containers")
    rules.set(f'[[rule]]\nname = "tcp"\ncontainers = "ob-*"\n'
              f'health = {{ tcp = {PORT}, every = "{every:g}s", timeout = "2s" }}\n', "tcp")
    time.sleep(2 * every)  # every container probed, its verdict given
    healthy = sum(1 for row in c.call("list") if row["health"] == "healthy")
    own, _ = _cpu_window(pid, window)
    probes = count * window / every
    tcp_pct = own / window * 100
    floor_ms = _connect_floor(c.call("info", {"name": names[-1]})["pid"]) * 1e3
    op.scalars += [
        Scalar(f"healthy after {2 * every:g} s (tcp {PORT})", LXCFLOW, healthy, "containers"),
        Scalar(f"daemon CPU, tcp probes every {every:g} s", LXCFLOW, tcp_pct, "% of a core"),
        Scalar("daemon CPU per tcp probe", LXCFLOW, own / probes * 1e3, "ms"),
        Scalar("floor: blocking connect + reset, one socket, per probe", FLOOR, floor_ms, "ms"),
        Scalar(f"floor, {count / every:g} probes a second", FLOOR,
               floor_ms / 1e3 * count / every * 100, "% of a core"),
    ]
    execs = b.size["exec_probes"]
    rules.set('[[rule]]\nname = "exec"\ncontainers = "ob-x-*"\n'
              'health = { exec = ["true"], every = "1s", timeout = "5s" }\n', "exec")
    time.sleep(2.0)
    own, children = _cpu_window(pid, window)
    probes = execs * window
    op.scalars += [
        Scalar(f"daemon CPU, exec probes of {execs} every 1 s", LXCFLOW, own / window * 100,
               "% of a core"),
        Scalar("daemon CPU per exec probe (true)", LXCFLOW, own / probes * 1e3, "ms"),
        Scalar("attach process CPU per exec probe", LXCFLOW, children / probes * 1e3, "ms"),
    ]
    rules.set(None, None)
    op.checks = [Check(f"daemon CPU, tcp probes of {count} every {every:g} s", tcp_pct, 5.0,
                       "% of a core")]
    op.note = (f"probes counted as containers x window / every; busybox httpd answers "
               f"on 127.0.0.1:{PORT} in each container's own network namespace")
    if healthy != count:
        op.note += f"; only {healthy} of {count} were healthy: the figures are suspect"
    return op


def _scrapes(b: Bench, c: Client, monitor: Monitor, daemon: Daemon, port: int,
             names: list[str]) -> Operation:
    count, pid = len(names), daemon.pid
    op = Operation("scrape", f"18. metrics: GET /metrics of {count} containers")
    wall = op.add("scrape, at the scraper", LXCFLOW)
    cpu: list[float] = []
    for _ in range(b.size["scrapes"]):
        t0, cpu0 = time.perf_counter(), _thread_cpu_ns(pid)
        body = _scrape(port)
        wall.samples_s.append(time.perf_counter() - t0)
        cpu.append((_thread_cpu_ns(pid) - cpu0) / 1e9)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    quiet = op.add("SIGKILL of init -> STOPPING at subscriber, no scrape", LXCFLOW)
    during = op.add("SIGKILL of init -> STOPPING at subscriber, during a scrape", LXCFLOW)
    scrape_s = statistics.median(wall.samples_s)
    victim = names[-1]  # killed, waited for, started again: the count stays
    rng = random.Random(17)
    for i in range(b.size["kills"]):
        for series in (quiet, during) if i % 2 else (during, quiet):
            scraper = None
            if series is during:
                scraper = threading.Thread(target=_scrape, args=(port,))
                scraper.start()
                time.sleep(rng.uniform(0.1, 0.8) * scrape_s)
            mark = monitor.mark()
            t0 = time.time_ns()
            os.kill(c.call("info", {"name": victim})["pid"], signal.SIGKILL)
            series.samples_s.append((monitor.wait_for(victim, "STOPPING", mark)[0] - t0) / 1e9)
            monitor.wait_for(victim, "STOPPED", mark)
            if scraper is not None:
                scraper.join()
            c.call("start", {"name": victim})
    cpu_ms = statistics.median(cpu) * 1e3
    delay_ms = during.stats()["median_ms"] - quiet.stats()["median_ms"]
    op.scalars += [
        Scalar("samples in a scrape", LXCFLOW, samples, ""),
        Scalar("the same cgroup reads alone, nothing rendered (bench process)", LXCFLOW,
               _reads_alone(daemon.paths.cgroup_parent, names) * 1e3, "ms"),
        Scalar("daemon CPU per scrape (trio thread), median", LXCFLOW, cpu_ms, "ms"),
        Scalar("daemon CPU per scrape (trio thread), max", LXCFLOW, max(cpu) * 1e3, "ms"),
        Scalar("transition delayed by a scrape, median", LXCFLOW, delay_ms, "ms"),
    ]
    op.checks = [Check(f"daemon CPU per scrape of {count}, median", cpu_ms, 50.0, "ms"),
                 Check("a transition's delay during a scrape, median", delay_ms, 5.0, "ms")]
    op.note = "the kill lands at 10-80 % of a median scrape's time; kills alternate A B B A"
    return op


def op_observe(b: Bench, empty: Path) -> list[Operation]:
    """Both operations, on one daemon of their own with ``count`` containers."""
    count = b.size["scale"]
    rules_dir = b.base / "observe-rules"
    rules_dir.mkdir()
    port = _free_port()
    daemon = Daemon(b.base, "observe", rules_dir, metrics=f"127.0.0.1:{port}")
    execs = b.size["exec_probes"]
    names = [f"ob-x-{i:04d}" if i < execs else f"ob-t-{i:04d}" for i in range(count)]
    www = b.base / "www"  # the containers share the host's root: they see it
    www.mkdir()
    (www / "index.html").write_text("ok\n")
    config = b.base / "observe.conf"
    config.write_text("lxc.uts.name = ob\nlxc.net.0.type = empty\nlxc.init.cmd = "
                      f"/bin/busybox httpd -f -p 127.0.0.1:{PORT} -h {www}\n")
    try:
        daemon.start()
        with Client(daemon.paths, spawn=False) as c:
            try:
                for name in names:
                    c.call("create", {"name": name, "config": str(config)})
                    c.call("start", {"name": name})
                monitor = Monitor(daemon.paths)
                try:
                    scrapes = _scrapes(b, c, monitor, daemon, port, names)
                finally:
                    monitor.close()
                probes = _probes(b, c, _Rules(c, rules_dir), daemon.pid, names)
            finally:
                (rules_dir / "observe.toml").unlink(missing_ok=True)
                stop_all(c, names)
                destroy_all(c, names)
    finally:
        daemon.clean_up(empty)
    return [probes, scrapes]
