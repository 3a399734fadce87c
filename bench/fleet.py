"""20-21. Beyond one host: two daemons as two hosts on one NATS server (Debian's
nats-server with JetStream, on a loopback port, its own store).

20: a transition on host A to a ``wait`` returning, on host B (``wait -n
host-a:NAME``) and on A itself (``wait -n NAME``), both waiting on the same
transition; latency from the event's own timestamp to the return.

21: the publisher. Live: events made as fast as mass freezes and thaws of
many containers make them, and how far the stream lags at the end. Outage:
the broker killed, events made meanwhile, the broker back after the outage;
the time until the daemon reconnects, until the stream has every event,
the events per second of that catch-up (nothing else runs on the daemon
then) and the daemon's CPU per event.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from common import Daemon, Monitor
from report import LXCFLOW, Operation, Scalar
from rig import Bench

from lxcflow.client import Client

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
#: how often the daemon is asked whether it has published everything (each
#: ask is an ``info``, which costs the daemon a little CPU too)
POLL_S = 0.01
CONFIG = "lxc.uts.name = fleetbench\nlxc.init.cmd = sleep 100000\n"
SIZES: dict[str, dict[str, Any]] = {
    "full": {"rounds": 100, "containers": 50, "live_events": 3000, "outage_s": 60.0,
             "outage_events": 10_000},
    "quick": {"rounds": 10, "containers": 10, "live_events": 300, "outage_s": 5.0,
              "outage_events": 500},
}


class Broker:
    """One nats-server with JetStream on a free loopback port."""

    def __init__(self, base: Path) -> None:
        self.base = base / "nats"
        self.base.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (self.base / "nats.conf").write_text(
            f"listen: 127.0.0.1:{self.port}\njetstream {{ store_dir: \"{self.base / 'store'}\", "
            "max_memory_store: 64MB, max_file_store: 512MB }\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.base / "nats.log", "ab") as log:
            self.proc = subprocess.Popen([NATS_SERVER, "-c", str(self.base / "nats.conf")],
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("nats-server did not listen")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fleet(c: Client, name: str) -> dict[str, Any]:
    return c.call("info", {"name": name})["fleet"]


def _drained(c: Client, name: str, connected: bool = True, timeout: float = 300) -> float:
    """Wait until the daemon is connected and has nothing left to publish; the time."""
    deadline = time.monotonic() + timeout
    while True:
        fleet = _fleet(c, name)
        if fleet["connected"] == connected and (not connected or fleet["unpublished"] == 0):
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the publisher did not catch up: {fleet}")
        time.sleep(POLL_S)


def _make_events(c: Client, count: int) -> int:
    """Freeze and thaw every fb-* container until ``count`` events are made; how many."""
    made = 0
    while made < count:
        frozen = c.call("freeze", {"names": ["fb-*"]})["done"]
        thawed = c.call("unfreeze", {"names": ["fb-*"]})["done"]
        made += 2 * frozen + thawed  # FREEZING, FROZEN; RUNNING
    return made


def _wait_latency(a: Daemon, b: Daemon, rounds: int) -> Operation:
    op = Operation("fleet-wait", "20. fleet: a transition on host A -> wait returns")
    there = op.add("lxcflow: wait -n host-a:NAME on host B", LXCFLOW)
    here = op.add("lxcflow: wait -n NAME on host A (same event)", LXCFLOW)
    monitor = Monitor(a.paths)
    with Client(a.paths, spawn=False) as ca:
        ca.call("create", {"name": "fw", "config": str(a.root / "fb.conf")})
        ca.call("start", {"name": "fw"})
        with Client(b.paths, spawn=False) as cb:
            cb.call("wait", {"names": ["host-a:fw"], "states": ["RUNNING"], "timeout": 30})
        for i in range(rounds):
            target = "FROZEN" if i % 2 == 0 else "RUNNING"
            returned: dict[str, int] = {}

            def waiter(paths: Any, name: str, key: str, target: str = target,
                       returned: dict[str, int] = returned) -> None:
                with Client(paths, spawn=False) as c:
                    c.call("wait", {"names": [name], "states": [target], "timeout": 30})
                returned[key] = time.time_ns()

            threads = [threading.Thread(target=waiter, args=(b.paths, "host-a:fw", "there")),
                       threading.Thread(target=waiter, args=(a.paths, "fw", "here"))]
            for t in threads:
                t.start()
            time.sleep(0.05)  # both waits are in their daemons
            mark = monitor.mark()
            ca.call("freeze" if target == "FROZEN" else "unfreeze", {"name": "fw"})
            _, event = monitor.wait_for("fw", target, mark)
            for t in threads:
                t.join()
            there.samples_s.append((returned["there"] - event["time_ns"]) / 1e9)
            here.samples_s.append((returned["here"] - event["time_ns"]) / 1e9)
        ca.call("stop", {"name": "fw", "kill": True})
        ca.call("destroy", {"name": "fw"})
    op.pairs = [(there.label, here.label)]
    op.note = ("from the transition's timestamp (host A's daemon) to the wait's reply in "
               "this process; B learns it from the bucket, through NATS on loopback")
    return op


def _fleet_of(d: Daemon, names: list[str]) -> Client:
    """A client of ``d``, with ``names`` created from fb.conf and RUNNING."""
    c = Client(d.paths, spawn=False)
    for name in names:
        c.call("create", {"name": name, "config": str(d.root / "fb.conf")})
    c.call("start", {"names": ["fb-*"]})
    return c


def _live(c: Client, d: Daemon, count: int, fleet: bool) -> tuple[int, float, float, float]:
    """Events made (mass freezes and thaws), seconds making them, seconds
    more until the stream has them all (with ``fleet``), and the daemon's
    CPU seconds over both."""
    cpu0, t0 = _cpu_s(d.pid), time.perf_counter()
    made = _make_events(c, count)
    t1 = time.perf_counter()
    t2 = _drained(c, "fb-000") if fleet else t1
    return made, t1 - t0, t2 - t1, _cpu_s(d.pid) - cpu0


def _publisher(a: Daemon, solo: Daemon, broker: Broker, size: dict[str, Any]) -> Operation:
    op = Operation("fleet-publish", "21. fleet: publishing the journal to JetStream")
    names = [f"fb-{i:03d}" for i in range(size["containers"])]
    with _fleet_of(solo, names) as c:
        solo_made, _, _, solo_cpu = _live(c, solo, size["live_events"], fleet=False)
        c.call("stop", {"names": ["fb-*"], "kill": True})
        c.call("destroy", {"names": ["fb-*"]})
    with _fleet_of(a, names) as c:
        _drained(c, names[0])
        made, making, behind, cpu = _live(c, a, size["live_events"], fleet=True)
        op.scalars += [
            Scalar("live: events made per second (mass freeze/thaw)", LXCFLOW, made / making,
                   "events/s"),
            Scalar("live: stream behind at the last event", LXCFLOW, behind * 1e3, "ms"),
            Scalar("live: events made and published per second", LXCFLOW,
                   made / (making + behind), "events/s"),
            Scalar("live: daemon CPU per event, with --nats", LXCFLOW, cpu / made * 1e3,
                   "ms/event"),
            Scalar("live: daemon CPU per event, without --nats", LXCFLOW,
                   solo_cpu / solo_made * 1e3, "ms/event"),
        ]
        broker.kill()
        down = time.perf_counter()
        _drained(c, names[0], connected=False)
        queued = _make_events(c, size["outage_events"])
        time.sleep(max(0.0, size["outage_s"] - (time.perf_counter() - down)))
        outage = time.perf_counter() - down
        broker.start()
        up = time.perf_counter()
        deadline = time.monotonic() + 60
        while not _fleet(c, names[0])["connected"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not reconnect")
            time.sleep(POLL_S)
        linked = time.perf_counter()
        cpu0 = _cpu_s(a.pid)
        done = _drained(c, names[0])
        cpu = _cpu_s(a.pid) - cpu0
        op.scalars += [
            Scalar(f"outage: {queued} events queued in {outage:.0f} s", LXCFLOW, queued,
                   "events"),
            Scalar("outage: broker back -> daemon reconnected", LXCFLOW, linked - up, "s"),
            Scalar("outage: reconnected -> stream has every event", LXCFLOW, done - linked, "s"),
            Scalar("outage: catch-up rate", LXCFLOW, queued / (done - linked), "events/s"),
            Scalar("outage: daemon CPU per event caught up", LXCFLOW, cpu / queued * 1e3,
                   "ms/event"),
        ]
        c.call("stop", {"names": ["fb-*"], "kill": True})
        c.call("destroy", {"names": ["fb-*"]})
    op.note = (f"{len(names)} containers; one publish in flight, each acknowledged by "
               "JetStream (file store) before the next; the reconnect waits for the retry "
               "backoff (0.1 s doubling to 2 s); CPU from the reconnect to the last event, "
               f"with an info request every {POLL_S * 1e3:g} ms; times to {POLL_S * 1e3:g} ms")
    return op


def op_fleet(b: Bench, empty_rules: Path) -> list[Operation]:
    """Both fleet operations, on their own broker, two daemons as hosts and a
    third without --nats."""
    size = SIZES["quick" if b.size["n"] < 100 else "full"]
    broker = Broker(b.base)
    hosts = [Daemon(b.base, f"fleet-{h}", empty_rules,
                    extra=("--nats", broker.url, "--host", f"host-{h}")) for h in "ab"]
    solo = Daemon(b.base, "fleet-solo", empty_rules)  # the same load, without --nats
    try:
        broker.start()
        for host in [*hosts, solo]:
            host.start()
            (host.root / "fb.conf").write_text(CONFIG)
        return [_wait_latency(hosts[0], hosts[1], size["rounds"]),
                _publisher(hosts[0], solo, broker, size)]
    finally:
        if broker.proc is None or broker.proc.poll() is not None:
            broker.start()  # the daemons' clean-up must not wait for it
        for host in [*hosts, solo]:
            host.clean_up(empty_rules)
        broker.kill()
