"""Restart policies: death -> RUNNING again, and what a crashloop costs the daemon.

Prints, as root:
1. death -> RUNNING: one container ("crash", lxc.uts.name = crash) whose
   command dies on its own shortly after it starts (``sh -c 'sleep 0.05;
   exit 1'``: the bench sends no signal, so neither its requests nor a
   cgroup kill are part of what is timed), under ``restart = "always"``
   with a 0 s backoff. For each of ``-n`` deaths: the kernel-observed death
   (its RUNNING -> STOPPING event, cause kernel) to its next STARTING ->
   RUNNING event, both the daemon's own time_ns, read from a monitor stream
   on a separate connection; then the legs (death -> STOPPED: teardown,
   STOPPED -> STARTING: the policy's decision, STARTING -> RUNNING: the start).
   Target: median at most 10 ms;
2. crashloop CPU: ``--crashloop`` containers whose command exits 1 at once,
   under ``restart = "on-failure"`` with the default backoff (100 ms, x2,
   30 s cap), no max_restarts. After ``--warmup`` seconds, the daemon's own
   CPU time (utime + stime of its threads, /proc/PID/stat) over ``--window``
   seconds, as % of one core, and the restarts (STARTING events) a second in
   that window. First with a restart budget that never throttles, then
   (unless --no-default-budget) with the default one (120/min), in a second
   daemon; also the daemon's CPU time per restart, which does not depend on
   where the window falls in the backoff's doubling. Target: under 5 % of
   one core;
3. idle: the daemon's CPU with ``--idle`` RUNNING sleeping containers and no
   rule firing (none matches them), over ``--idle-window`` seconds.

    .venv/bin/python bench/restart.py [-n 200] [--crashloop 100] [--window 30]
    .venv/bin/python bench/restart.py --quick          # CI smoke: 30, 20, 5 s
    .venv/bin/python bench/restart.py --json out.json  # also write the figures

Each daemon runs as ``lxcflow daemon --rules DIR --restart-budget N`` in a
temp dir (mkdtemp, honours TMPDIR) with its own cgroup parent
(lxcflow-bench-<hex>); everything is stopped and removed at the end, also on
failure or ^C. Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from common import CLK_TCK, IDLE, Daemon, Monitor, cpu_ticks, destroy_all, figures, stop_all

from lxcflow.client import Client

CRASH = ["sh", "-c", "sleep 0.05; exit 1"]
FAIL = ["sh", "-c", "exit 1"]
#: never throttles a measurement (the default is 120 a minute)
HIGH_BUDGET = 100_000.0
TARGET_MS, TARGET_CPU = 10.0, 5.0

# A command is always given, and every config names one too: a container
# with neither on the host's root would boot the host's own /sbin/init. No
# network keys: a container then shares the host's, and configures nothing.
CONFIGS = {
    "crash": "lxc.uts.name = crash\nlxc.init.cmd = sh -c 'sleep 0.05; exit 1'\n",
    "loop": "lxc.uts.name = loop\nlxc.init.cmd = sh -c 'exit 1'\n",
    "idle": "lxc.uts.name = idle\nlxc.init.cmd = sleep 100000\n",
}
RULES = """\
[[rule]]
name = "bench-crash-always"
containers = "crash"
restart = "always"
backoff = { initial = "0s" }

[[rule]]
name = "bench-crashloop"
containers = "loop-*"
restart = "on-failure"
"""
FULL = {"n": 200, "crashloop": 100, "window": 30.0, "warmup": 5.0, "idle": 100,
        "idle_window": 10.0}
QUICK = {"n": 30, "crashloop": 20, "window": 5.0, "warmup": 5.0, "idle": 20,
         "idle_window": 5.0}


def create_and_start(c: Client, base: Path, kind: str, names: list[str],
                     command: list[str]) -> None:
    for name in names:
        c.call("create", {"name": name, "config": str(base / f"{kind}.conf")})
    for name in names:
        c.call("start", {"name": name, "command": command})


# ------------------------------------------------------------------ 1. death -> RUNNING


def death_cycles(events: list[dict[str, Any]], name: str) -> tuple[list[dict[str, int]], int]:
    """Each kernel-observed death of ``name`` with the times of its STOPPED,
    STARTING and next STARTING -> RUNNING events; and how many starts aborted."""
    cycles: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    aborts = 0
    for e in events:
        if e["container"] != name or e["kind"] != "transition":
            continue
        src, dst, t = e["from"], e["to"], e["time_ns"]
        if src == "RUNNING" and dst == "STOPPING":
            current = {"death": t} if e["cause"] == "kernel" else None
        elif current is None:
            continue
        elif dst == "STOPPED" and src == "STOPPING":
            current["stopped"] = t
        elif dst == "STARTING":
            current["starting"] = t  # the last attempt, if one aborted
        elif dst == "ABORTING":
            aborts += 1
        elif src == "STARTING" and dst == "RUNNING":
            current["running"] = t
            cycles.append(current)
            current = None
    return cycles, aborts


def death_to_running(base: Path, d: Daemon, n: int) -> dict[str, Any]:
    mon = Monitor(d.paths)
    try:
        with Client(d.paths, spawn=False) as c:
            c.call("create", {"name": "crash", "config": str(base / "crash.conf")})
            try:
                c.call("start", {"name": "crash", "command": CRASH})
                mon.wait_until(lambda ev: len(death_cycles(ev, "crash")[0]) >= n,
                               f"{n} restarts of 'crash'")
            finally:
                stop_all(c, ["crash"])
                destroy_all(c, ["crash"])
        with mon.cond:
            events = [e for _, e in mon.arrivals]
    finally:
        mon.close()
    cycles, aborts = death_cycles(events, "crash")
    cycles = cycles[:n]
    out: dict[str, Any] = {}
    print(f"1. death -> RUNNING again, restart = always, backoff 0 s "
          f"(target: median <= {TARGET_MS:g} ms)")
    out["samples_s"] = [(x["running"] - x["death"]) / 1e9 for x in cycles]
    out["death_to_running"] = total = figures("death (kernel) -> RUNNING", out["samples_s"])
    legs = (("death -> STOPPED (teardown)", "death", "stopped"),
            ("STOPPED -> STARTING (policy decides)", "stopped", "starting"),
            ("STARTING -> RUNNING (the start)", "starting", "running"))
    for label, a, b in legs:
        key = f"leg_{a}_to_{b}"
        out[key] = figures(f"  {label}", [(x[b] - x[a]) / 1e9 for x in cycles if a in x and b in x])
    if aborts:
        print(f"  {aborts} restarts aborted (counted in their death's time)")
    out["aborted_starts"] = aborts
    verdict = "met" if total["median_ms"] <= TARGET_MS else "MISSED"
    print(f"  median {total['median_ms']:.3f} ms vs target {TARGET_MS:g} ms: {verdict}")
    return out


# ------------------------------------------------------------------ 2. crashloop CPU


def cpu_window(d: Daemon, mon: Monitor, window: float) -> dict[str, float]:
    """The daemon's CPU over ``window`` seconds, and the events in it."""
    with mon.cond:
        mark = len(mon.arrivals)
    t0, (cpu0, kids0) = time.time_ns(), cpu_ticks(d.pid)
    time.sleep(window)
    t1, (cpu1, kids1) = time.time_ns(), cpu_ticks(d.pid)
    wall = (t1 - t0) / 1e9
    time.sleep(0.2)  # events stamped before t1 still on their way
    with mon.cond:
        inside = [e for _, e in mon.arrivals[max(0, mark - 1000):]
                  if t0 <= e["time_ns"] < t1 and e["kind"] == "transition"]
    starts = sum(1 for e in inside if e["to"] == "STARTING")
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    return {
        "window_s": wall,
        "cpu_pct": cpu_s / wall * 100,
        "cpu_ms_per_restart": cpu_s * 1e3 / starts if starts else 0.0,
        "children_cpu_pct": (kids1 - kids0) / CLK_TCK / wall * 100,
        "restarts_per_s": starts / wall,
        "events_per_s": len(inside) / wall,
    }


def measured(base: Path, d: Daemon, kind: str, names: list[str], command: list[str],
             settle: float, window: float) -> dict[str, float]:
    """Create and start ``names``, let them settle, measure the daemon's CPU
    over ``window``, then stop and destroy them."""
    mon = Monitor(d.paths)
    try:
        with Client(d.paths, spawn=False) as c:
            try:
                create_and_start(c, base, kind, names, command)
                time.sleep(settle)
                return cpu_window(d, mon, window)
            finally:
                stop_all(c, names)
                destroy_all(c, names)
    finally:
        mon.close()


def crashloop(base: Path, d: Daemon, count: int, warmup: float, window: float,
              label: str) -> dict[str, float]:
    names = [f"loop-{i:03d}" for i in range(count)]
    out = measured(base, d, "loop", names, FAIL, warmup, window)
    print(f"{label:<44} daemon CPU {out['cpu_pct']:6.2f} % of one core  "
          f"{out['restarts_per_s']:6.2f} restarts/s  {out['cpu_ms_per_restart']:5.1f} ms CPU "
          f"per restart  ({out['window_s']:.0f} s window; reaped children "
          f"{out['children_cpu_pct']:.2f} %)")
    return out


def idle(base: Path, d: Daemon, count: int, window: float) -> dict[str, float]:
    names = [f"idle-{i:03d}" for i in range(count)]
    out = measured(base, d, "idle", names, IDLE, 1.0, window)
    print(f"3. idle, {count} RUNNING sleeping containers: daemon CPU {out['cpu_pct']:6.3f} % "
          f"of one core  ({out['events_per_s'] * out['window_s']:.0f} events in "
          f"{out['window_s']:.1f} s)")
    return out


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as ^C does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, help="deaths to time (default 200)")
    parser.add_argument("--crashloop", type=int, help="crashlooping containers (default 100)")
    parser.add_argument("--window", type=float, help="crashloop CPU window, s (default 30)")
    parser.add_argument("--warmup", type=float, help="crashloop warm-up, s (default 5)")
    parser.add_argument("--idle", type=int, help="idle containers, 0 to skip (default 100)")
    parser.add_argument("--idle-window", type=float, help="idle CPU window, s (default 10)")
    parser.add_argument("--default-budget", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the crashloop under the default budget (120/min)")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: 30 deaths, 20 crashloop containers, 5 s windows")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    signal.signal(signal.SIGTERM, _interrupt)

    base = Path(tempfile.mkdtemp(prefix="lxcflow-bench-"))
    rules, empty = base / "rules", base / "no-rules"
    rules.mkdir()
    empty.mkdir()
    (rules / "restart.toml").write_text(RULES)
    for kind, text in CONFIGS.items():
        (base / f"{kind}.conf").write_text(text)
    daemons: list[Daemon] = []
    results: dict[str, Any] = {"n": args.n, "crashloop": args.crashloop, "window_s": args.window}
    try:
        d = Daemon(base, "high-budget", rules, HIGH_BUDGET)
        daemons.append(d)
        d.start()
        with Client(d.paths, spawn=False) as c:
            report = c.call("rules")
        if report["errors"] or len(report["rules"]) != 2:
            raise RuntimeError(f"the bench's rules did not load: {report}")
        results.update(death_to_running(base, d, args.n))
        print(f"2. crashloop, restart = on-failure, default backoff "
              f"(target: < {TARGET_CPU:g} % of one core)")
        results["crashloop_high_budget"] = crashloop(
            base, d, args.crashloop, args.warmup, args.window,
            f"{args.crashloop} containers, budget {HIGH_BUDGET:g}/min")
        d.clean_up(empty)
        if args.default_budget or args.idle:
            d2 = Daemon(base, "default-budget", rules, None)
            daemons.append(d2)
            d2.start()
            if args.default_budget:
                results["crashloop_default_budget"] = crashloop(
                    base, d2, args.crashloop, args.warmup, args.window,
                    f"{args.crashloop} containers, default budget 120/min")
            if args.idle:
                results["idle"] = idle(base, d2, args.idle, args.idle_window)
            d2.clean_up(empty)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for daemon in daemons:
            try:
                daemon.clean_up(empty)
            except BaseException as e:  # report and keep cleaning the others
                print(f"clean-up of {daemon.root.name} failed: {e!r}\n{daemon.log_tail()}")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
