"""Event latency, and freeze-until-FROZEN against LXC, measured in one run.

Prints, as root:
1. observation -> subscriber: for >= 1,000 transitions (freeze/unfreeze
   cycles), the time from the supervisor's observation (the event's
   time_ns) to its arrival at a separate monitor connection;
2. kill -> subscriber: SIGKILL of a container's init (the kernel event)
   to the STOPPING event's arrival at the monitor;
3. freeze until FROZEN is confirmed, idle and CPU-busy containers:
   lxcflow through the socket (a persistent client) and through the CLI
   (a process per call), against `lxc-freeze` + `lxc-wait -s FROZEN`,
   interleaved A B A B in this one run, with the ratio.

    .venv/bin/python bench/events.py [-n 1000] [--freezes 100]

Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import LXC_CONFIG, stop_daemon

from lxcflow.client import Client
from lxcflow.paths import Paths

BUSY = ["sh", "-c", "while :; do :; done"]
IDLE = ["sleep", "100000"]


def figures(label: str, samples_s: list[float]) -> dict[str, float]:
    v = sorted(samples_s)
    out = {
        "n": len(v),
        "median_ms": statistics.median(v) * 1e3,
        "p90_ms": v[int(len(v) * 0.9)] * 1e3,
        "p99_ms": v[min(len(v) - 1, int(len(v) * 0.99))] * 1e3,
    }
    print(f"{label:<44} n={out['n']:<5} median {out['median_ms']:8.3f} ms  "
          f"p90 {out['p90_ms']:8.3f} ms  p99 {out['p99_ms']:8.3f} ms")
    return out


class Monitor:
    """A separate connection that records when each event arrives."""

    def __init__(self, paths: Paths) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(paths.socket))
        self.sock.sendall(b'{"op": "monitor", "args": {}}\n')
        self.arrivals: list[tuple[int, dict]] = []  # (arrival ns, event)
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
                    result = json.loads(line)["result"]
                    if "container" in result:
                        self.arrivals.append((now, result))
                self.cond.notify_all()

    def wait_for(self, container: str, to: str, after: int) -> int:
        """Arrival time of the first matching event at index >= ``after``."""
        with self.cond:
            while True:
                for now, e in self.arrivals[after:]:
                    if e["container"] == container and e["to"] == to:
                        return now
                self.cond.wait(10)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join()
        self.sock.close()


def lxcflow_side(paths: Paths, n_transitions: int, kills: int) -> dict[str, dict[str, float]]:
    config = paths.lxcpath.parent / "config"
    out: dict[str, dict[str, float]] = {}
    with Client(paths) as c:
        c.call("create", {"name": "ev", "config": str(config)})
        c.call("start", {"name": "ev", "command": IDLE})
        mon = Monitor(paths)
        time.sleep(0.2)
        first = len(mon.arrivals)
        while len(mon.arrivals) - first < n_transitions:
            c.call("freeze", {"name": "ev"})
            c.call("unfreeze", {"name": "ev"})
        time.sleep(0.2)
        with mon.cond:
            lat = [(now - e["time_ns"]) / 1e9 for now, e in mon.arrivals[first:]]
        out["observation_to_subscriber"] = figures(
            "event: observation -> subscriber", lat)
        c.call("stop", {"name": "ev", "kill": True})
        deaths = []
        for _ in range(kills):
            pid = c.call("start", {"name": "ev", "command": IDLE})["pid"]
            mark = len(mon.arrivals)
            t0 = time.time_ns()
            os.kill(pid, signal.SIGKILL)
            deaths.append((mon.wait_for("ev", "STOPPING", mark) - t0) / 1e9)
            mon.wait_for("ev", "STOPPED", mark)
        out["kill_to_subscriber"] = figures("event: SIGKILL of init -> subscriber", deaths)
        mon.close()
        c.call("destroy", {"name": "ev", "force": True})
    return out


def freeze_side_by_side(paths: Paths, base: Path, rounds: int) -> dict[str, dict[str, float]]:
    have_lxc = shutil.which("lxc-freeze") is not None
    lxcpath = base / "lxc"
    lxcpath.mkdir()
    lxc_config = base / "lxc.conf"
    lxc_config.write_text(LXC_CONFIG)
    config = base / "config"
    out: dict[str, dict[str, float]] = {}
    cli = [sys.executable, "-m", "lxcflow"]
    env = dict(os.environ, LXCFLOW_PATH=str(paths.lxcpath), LXCFLOW_SOCKET=str(paths.socket),
               LXCFLOW_CGROUP=paths.cgroup_parent)
    with Client(paths) as c:
        for kind, command in (("idle", IDLE), ("busy", BUSY)):
            name = f"fr-{kind}"
            c.call("start", {"name": name, "config": str(config), "command": command})
            if have_lxc:
                subprocess.run(["lxc-start", "-P", str(lxcpath), "-n", name, "-f",
                                str(lxc_config), "-d", "--", *command], check=True)
            sock_t, cli_t, lxc_t = [], [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                c.call("freeze", {"name": name})
                sock_t.append(time.perf_counter() - t0)
                c.call("unfreeze", {"name": name})
                t0 = time.perf_counter()
                subprocess.run([*cli, "freeze", "-n", name], env=env, check=True)
                cli_t.append(time.perf_counter() - t0)
                c.call("unfreeze", {"name": name})
                if have_lxc:
                    lxc = ["-P", str(lxcpath), "-n", name, "--rcfile", str(lxc_config)]
                    t0 = time.perf_counter()
                    subprocess.run(["lxc-freeze", *lxc], check=True)
                    subprocess.run(["lxc-wait", *lxc, "-s", "FROZEN"], check=True)
                    lxc_t.append(time.perf_counter() - t0)
                    subprocess.run(["lxc-unfreeze", *lxc], check=True)
            out[f"freeze_{kind}_socket"] = figures(f"freeze {kind}: lxcflow via socket", sock_t)
            out[f"freeze_{kind}_cli"] = figures(f"freeze {kind}: lxcflow CLI", cli_t)
            if lxc_t:
                out[f"freeze_{kind}_lxc"] = theirs = figures(
                    f"freeze {kind}: lxc-freeze + lxc-wait", lxc_t)
                for how in ("socket", "cli"):
                    ours = out[f"freeze_{kind}_{how}"]
                    print(f"  ratio lxcflow {how}/LXC: median "
                          f"{ours['median_ms'] / theirs['median_ms']:.3f}  p90 "
                          f"{ours['p90_ms'] / theirs['p90_ms']:.3f}")
                subprocess.run(["lxc-stop", "-P", str(lxcpath), "-n", name, "-k"],
                               capture_output=True)
            c.call("stop", {"name": name, "kill": True})
    if not have_lxc:
        print("LXC not installed (apt-get install lxc): no side-by-side figures")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="transitions to time")
    parser.add_argument("--kills", type=int, default=100, help="death cycles to time")
    parser.add_argument("--freezes", type=int, default=100, help="freeze rounds per kind")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lxcflow-bench-"))
    paths = Paths(lxcpath=base / "lib", socket=base / "run" / "s.sock",
                  cgroup_parent=f"lxcflow-bench-{os.getpid()}")
    (base / "config").write_text("lxc.uts.name = bench\n")
    try:
        results = lxcflow_side(paths, args.n, args.kills)
        results.update(freeze_side_by_side(paths, base, args.freezes))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        stop_daemon(paths)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
