"""lxcflow beside LXC: every operation an automation engine does, timed in one run.

Run as root (``make bench``, or ``make bench-quick`` for the small-n mode
CI runs):

    .venv/bin/python bench/suite.py [--quick] [--out DIR] [--only KEY ...]

Each operation is done the ways it can be done, interleaved in one loop
(lxcflow through its socket from a persistent client, as rules and
pipelines inside the engine act; lxcflow's CLI, a new process per call, as
a shell script would; LXC's own command; and, where one applies, the
kernel's floor), so every way sees the same machine at the same moment.
For each it prints n, median, p90 and p99 and the ratio lxcflow/LXC, then
writes ``results.json``, ``results.md`` and ``results.png`` to ``--out``.

Targets are printed beside what was measured; nothing is asserted, since
the machine is shared and noisy. Everything the run makes (containers of
both systems, cgroups, lxc-monitord, LXC's new ``lxc.pivot`` cgroups, the
temp dir) is removed at the end, also on failure or ^C.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import report
import restart
from attach import op_attach
from common import (
    CLK_TCK,
    IDLE,
    Daemon,
    cpu_ticks,
    destroy_all,
    pss_kib,
    run,
    stop_all,
)
from confinement import op_confinement, op_unprivileged
from fleet import op_fleet
from keepers import op_keepers
from lxc_side import Lxc, version
from observe import op_observe
from report import FLOOR, LXC, LXCFLOW, Check, Operation, Scalar
from rig import LXCFLOW_CLI, TRUE, Bench, in_parallel, ratio_check, timed
from system import op_system
from wake import op_wake

from lxcflow.cgroups import open_manager
from lxcflow.client import Client
from lxcflow.daemon import batch
from lxcflow.runstate import RunState

SIZES: dict[str, dict[str, Any]] = {
    "full": {"n": 100, "wait": 30, "transitions": 1000, "kills": 100, "deaths": 200,
             "scale": 1000, "parallel": 16, "crashloop": 100, "warmup": 5.0, "window": 30.0,
             "idle_window": 10.0, "ls": 20, "keepers": 100, "probe_every": 5.0,
             "exec_probes": 50, "scrapes": 20, "wakes": 40},
    "quick": {"n": 10, "wait": 3, "transitions": 100, "kills": 10, "deaths": 20,
              "scale": 20, "parallel": 8, "crashloop": 10, "warmup": 2.0, "window": 4.0,
              "idle_window": 2.0, "ls": 5, "keepers": 10, "probe_every": 1.0,
              "exec_probes": 5, "scrapes": 5, "wakes": 8},
}
UNSHARE = ["unshare", "--fork", "--pid", "--mount-proc", "--mount", "--uts", "--ipc", "--net"]
CGROUP2 = Path("/sys/fs/cgroup/unified") if Path("/sys/fs/cgroup/unified/cgroup.procs").exists() \
    else Path("/sys/fs/cgroup")


def run_all(*argvs: list[str]) -> None:
    """Run commands one after the other, each as :func:`run`."""
    for argv in argvs:
        run(argv)


# ---------------------------------------------------------------- operations


#: what a CLI call's interpreter start leaves the kernel: this long without
#: a cgroup.procs write (about `python -I -S`'s start here), after which the
#: next one waits for an RCU grace period; socket calls measured "after a
#: quiet spell" sleep this long first, so the CLI is compared with them alike
QUIET = 0.012
INTERPRETER = [sys.executable, "-I", "-S", "-c", "pass"]


def quietly(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    """Seconds ``fn(...)`` took, called after :data:`QUIET` seconds asleep."""
    time.sleep(QUIET)
    return timed(fn, *args, **kwargs)


def cli_check(op: Operation, cli: str, interpreter: str, socket_quiet: str) -> Check:
    """The target: the CLI costs at most 3 ms above the interpreter's start
    plus the same request through the socket after the same quiet spell."""
    extra = (op.get(cli).stats()["median_ms"] - op.get(interpreter).stats()["median_ms"]
             - op.get(socket_quiet).stats()["median_ms"])
    return Check(f"{cli} - interpreter - socket after a quiet spell, median", extra, 3.0, "ms")


def op_execute(b: Bench) -> Operation:
    op = Operation("execute", "1. execute /bin/true, start to exit")
    floor_exec, floor_unshare = op.add("floor: fork+exec /bin/true", FLOOR), op.add(
        "floor: unshare (6 namespaces) /bin/true", FLOOR)
    interpreter = op.add("floor: python -I -S -c pass", FLOOR)
    sock, cli = op.add("lxcflow socket", LXCFLOW), op.add("lxcflow CLI", LXCFLOW)
    sock_quiet = op.add(f"lxcflow socket, after {QUIET * 1e3:g} ms quiet", LXCFLOW)
    b.create("ex")
    theirs = op.add("lxc-execute", LXC) if b.lxc else None

    def via_socket() -> None:
        *_, result = b.client.stream("execute", {"name": "ex", "command": TRUE, "cwd": "/"},
                                     fds=(b.devnull, b.devnull, b.devnull))
        if result["exit_code"] != 0:
            raise RuntimeError(f"execute via the socket: {result}")

    for _ in range(b.size["n"]):
        floor_exec.samples_s.append(timed(run, TRUE))
        floor_unshare.samples_s.append(timed(run, UNSHARE + TRUE))
        interpreter.samples_s.append(timed(run, INTERPRETER))
        sock.samples_s.append(timed(via_socket))
        sock_quiet.samples_s.append(quietly(via_socket))
        cli.samples_s.append(timed(b.cli, "execute", "-n", "ex", "--", *TRUE))
        if b.lxc and theirs:
            lxc = b.lxc
            theirs.samples_s.append(timed(run, lxc.argv("execute", "ex", "--", *TRUE)))
    op.checks = [cli_check(op, cli.label, interpreter.label, sock_quiet.label)]
    if theirs:
        op.pairs = [(sock.label, theirs.label), (cli.label, theirs.label)]
        op.checks += [ratio_check(op, sock.label, theirs.label, 0.6)]
    return op


def p99_check(op: Operation, label: str, limit_ms: float) -> Check:
    return Check(f"{label}, p99", op.get(label).stats()["p99_ms"], limit_ms, "ms")


def join_cgroups_floor(procs_files: list[Path]) -> float:
    """Seconds to spawn a process and put it into one cgroup per hierarchy,
    as any container start must (the first cgroup.procs write after a quiet
    spell waits for an RCU grace period); it is killed afterwards."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(IDLE)
    for procs in procs_files:
        procs.write_text(str(proc.pid))
    took = time.perf_counter() - t0
    proc.kill()
    proc.wait()
    return took


def kill_namespaced_init_floor() -> float:
    """Seconds from SIGKILL of a 6-namespace init to its parent's exit being
    readable on a pidfd: the kernel's part of any stop -k."""
    parent = subprocess.Popen(UNSHARE + IDLE, stderr=subprocess.DEVNULL)
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    deadline = time.monotonic() + 10
    while not children.read_text().split():
        if time.monotonic() > deadline:
            raise RuntimeError("unshare started no child in 10 s")
        time.sleep(0.001)
    init = int(children.read_text().split()[0])
    pidfd = os.pidfd_open(parent.pid)
    t0 = time.perf_counter()
    os.kill(init, signal.SIGKILL)
    select.select([pidfd], [], [])
    took = time.perf_counter() - t0
    os.close(pidfd)
    parent.wait()
    return took


def op_start_stop(b: Bench) -> list[Operation]:
    start = Operation("start", "2. start until RUNNING")
    stop = Operation("stop", "4. stop -k until STOPPED")
    b.create("st", IDLE)
    s_floor = start.add("floor: spawn + join a cgroup per hierarchy", FLOOR)
    k_floor = stop.add("floor: SIGKILL of a 6-namespace init -> reaped", FLOOR)
    s_interpreter = start.add("floor: python -I -S -c pass", FLOOR)
    s_quiet_floor = start.add(f"floor: the same, after {QUIET * 1e3:g} ms quiet", FLOOR)
    s_sock, s_cli = start.add("lxcflow socket", LXCFLOW), start.add("lxcflow CLI", LXCFLOW)
    s_sock_quiet = start.add(f"lxcflow socket, after {QUIET * 1e3:g} ms quiet", LXCFLOW)
    k_sock, k_cli = stop.add("lxcflow socket", LXCFLOW), stop.add("lxcflow CLI", LXCFLOW)
    s_lxc = start.add("lxc-start -d", LXC) if b.lxc else None
    k_lxc = stop.add("lxc-stop -k", LXC) if b.lxc else None
    floors = open_manager(parent=f"lxcflow-bench-floor-{secrets.token_hex(4)}")
    probe = floors.create("probe")
    not_running = 0
    try:
        for _ in range(b.size["n"]):
            s_floor.samples_s.append(join_cgroups_floor(probe.procs_files()))
            time.sleep(QUIET)
            s_quiet_floor.samples_s.append(join_cgroups_floor(probe.procs_files()))
            s_interpreter.samples_s.append(timed(run, INTERPRETER))
            k_floor.samples_s.append(kill_namespaced_init_floor())
            s_sock.samples_s.append(timed(b.call, "start", name="st"))
            k_sock.samples_s.append(timed(b.call, "stop", name="st", kill=True))
            s_sock_quiet.samples_s.append(quietly(b.call, "start", name="st"))
            b.call("stop", name="st", kill=True)
            s_cli.samples_s.append(timed(b.cli, "start", "-n", "st"))
            k_cli.samples_s.append(timed(b.cli, "stop", "-n", "st", "-k"))
            if b.lxc and s_lxc and k_lxc:
                lxc = b.lxc
                s_lxc.samples_s.append(timed(run, lxc.argv("start", "st", "-d")))
                # lxc-start exits 0 even when the payload did not run: check it did.
                pid = lxc.init_pid("st")
                if not pid or not Path(f"/proc/{pid}").exists():
                    not_running += 1
                k_lxc.samples_s.append(timed(run, lxc.argv("stop", "st", "-k")))
    finally:
        probe.remove()
        floors.remove_parent_if_empty()
    start.checks = [cli_check(start, s_cli.label, s_interpreter.label, s_sock_quiet.label)]
    if s_lxc and k_lxc:
        start.pairs = [(s_sock.label, s_lxc.label), (s_cli.label, s_lxc.label)]
        start.checks += [ratio_check(start, s_sock.label, s_lxc.label, 0.5)]
        stop.pairs = [(k_sock.label, k_lxc.label), (k_cli.label, k_lxc.label)]
        stop.checks = [ratio_check(stop, k_sock.label, k_lxc.label, 0.4)]
        if not_running:
            start.note = f"lxc-start exited 0 {not_running} times without a running init"
    return [start, stop]


class RawCgroup:
    """A bare cgroup v2 directory with one process in it: the kernel's floor
    for freezing, without any supervisor."""

    def __init__(self, command: list[str]) -> None:
        self.dir = CGROUP2 / f"lxcflow-bench-raw-{secrets.token_hex(4)}"
        self.dir.mkdir()
        # Moved in after the spawn: a preexec_fn is unsafe beside the monitor's thread.
        self.proc = subprocess.Popen(command)
        (self.dir / "cgroup.procs").write_text(str(self.proc.pid))

    def set_frozen(self, frozen: bool) -> None:
        """Write cgroup.freeze and re-read cgroup.events until it agrees
        (a read loop is the floor: no notification is faster)."""
        (self.dir / "cgroup.freeze").write_text("1" if frozen else "0")
        want = f"frozen {int(frozen)}"
        events = self.dir / "cgroup.events"
        while want not in events.read_text():
            pass

    def close(self) -> None:
        (self.dir / "cgroup.freeze").write_text("0")
        self.proc.kill()
        self.proc.wait()
        while (self.dir / "cgroup.procs").read_text().strip():
            time.sleep(0.01)
        self.dir.rmdir()


def op_freeze(b: Bench) -> Operation:
    op = Operation("freeze", "3. freeze until FROZEN, unfreeze until RUNNING")
    _freeze_kind(b, op, "idle", IDLE)
    _freeze_kind(b, op, "busy", b.busy)
    op.note = ("LXC: lxc-freeze + lxc-wait -s FROZEN (lxc-unfreeze + lxc-wait -s RUNNING); "
               "each container stays frozen but for its own turn, 20 ms running between "
               "unfreeze and freeze")
    return op


def _freeze_kind(b: Bench, op: Operation, kind: str, command: list[str]) -> None:
    """Freeze and thaw one idle or one busy container, each way in turn."""
    name = f"fz-{kind}"
    b.create(name, command)
    b.call("start", name=name)
    raw = RawCgroup(command)
    lxc = b.lxc
    if lxc:
        run(lxc.argv("start", name, "-d"))
    # Each way: (freeze, unfreeze), each returning once the state is reached.
    ways: dict[str, tuple[str, tuple[Callable[[], object], Callable[[], object]]]] = {
        "floor: raw cgroup.freeze": (FLOOR, (lambda: raw.set_frozen(True),
                                             lambda: raw.set_frozen(False))),
        "lxcflow socket": (LXCFLOW, (lambda: b.call("freeze", name=name),
                                     lambda: b.call("unfreeze", name=name))),
        "lxcflow CLI": (LXCFLOW, (lambda: b.cli("freeze", "-n", name),
                                  lambda: b.cli("unfreeze", "-n", name))),
    }
    if lxc:
        ways["LXC"] = (LXC, (
            lambda: run_all(lxc.argv("freeze", name), lxc.argv("wait", name, "-s", "FROZEN")),
            lambda: run_all(lxc.argv("unfreeze", name),
                            lxc.argv("wait", name, "-s", "RUNNING"))))
    series = {(how, verb): op.add(f"{verb} {kind}: {how}", side)
              for how, (side, _) in ways.items() for verb in ("freeze", "unfreeze")}
    try:
        # Each stays frozen but for its own turn: one busy loop runs at a time, so
        # no way is measured on a machine the others keep busy.
        for how, (_, (freeze, _)) in ways.items():
            if how != "lxcflow CLI":  # the socket's container
                freeze()
        for _ in range(b.size["n"]):
            for how, (_, (freeze, unfreeze)) in ways.items():
                series[how, "unfreeze"].samples_s.append(timed(unfreeze))
                time.sleep(0.02)  # running (busy: spinning) before the freeze
                series[how, "freeze"].samples_s.append(timed(freeze))
        for verb in ("freeze", "unfreeze"):
            ours = series["lxcflow socket", verb].label
            st = op.get(ours).stats()
            op.checks += [Check(f"{ours}, p90", st["p90_ms"], 2.0, "ms"),
                          Check(f"{ours}, p99 / p90", st["p99_ms"] / st["p90_ms"], 3.0, "x")]
            if lxc:
                op.pairs += [(ours, series["LXC", verb].label),
                             (series["lxcflow CLI", verb].label, series["LXC", verb].label)]
    finally:
        raw.close()
        b.call("stop", name=name, kill=True)
        if lxc:
            run(lxc.argv("stop", name, "-k"))


def _returns_at(fn: Callable[[], object]) -> tuple[threading.Thread, list[int]]:
    """Run ``fn`` in a thread; the list gets the wall clock (ns) when it returns."""
    at: list[int] = []

    def body() -> None:
        fn()
        at.append(time.time_ns())

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, at


def op_wait(b: Bench) -> Operation:
    op = Operation("wait", "5. wait started before the container starts: return after RUNNING")
    b.create("wt", IDLE)
    sock, cli = op.add("lxcflow socket", LXCFLOW), op.add("lxcflow CLI", LXCFLOW)
    theirs = op.add("lxc-wait -s RUNNING", LXC) if b.lxc else None
    wait_args = {"names": ["wt"], "states": ["RUNNING"]}

    def running_at(mark: int) -> int:
        return int(b.monitor.wait_for("wt", "RUNNING", mark)[1]["time_ns"])

    for _ in range(b.size["wait"]):
        def wait_on_socket() -> None:
            with Client(b.daemon.paths, spawn=False) as waiter:
                waiter.call("wait", wait_args)

        mark = b.monitor.mark()
        thread, at = _returns_at(wait_on_socket)
        time.sleep(0.05)  # its request is in before the start
        b.call("start", name="wt")
        thread.join(30)
        sock.samples_s.append((at[0] - running_at(mark)) / 1e9)
        b.call("stop", name="wt", kill=True)

        proc = subprocess.Popen([LXCFLOW_CLI, "--no-spawn", "wait", "-n", "wt", "-s", "RUNNING"],
                                env=b.daemon.env)
        mark = b.monitor.mark()
        thread, at = _returns_at(proc.wait)
        time.sleep(0.4)  # the process is up and waiting
        b.call("start", name="wt")
        thread.join(30)
        cli.samples_s.append((at[0] - running_at(mark)) / 1e9)
        b.call("stop", name="wt", kill=True)

        if b.lxc and theirs:
            proc = subprocess.Popen(b.lxc.argv("wait", "wt", "-s", "RUNNING"))
            thread, at = _returns_at(proc.wait)
            time.sleep(0.4)
            run(b.lxc.argv("start", "wt", "-d"))
            started = time.time_ns()  # at or after RUNNING: flatters LXC, if anything
            thread.join(30)
            theirs.samples_s.append((at[0] - started) / 1e9)
            run(b.lxc.argv("stop", "wt", "-k"))
    op.checks = [p99_check(op, sock.label, 5.0)]
    if theirs:
        op.pairs = [(sock.label, theirs.label), (cli.label, theirs.label)]
    op.note = ("lxcflow: from the RUNNING event's own time; LXC: from lxc-start -d's return "
               "(no event time to read)")
    return op


def op_events(b: Bench) -> Operation:
    op = Operation("events", "6. event latency, kernel observation -> subscriber")
    observed = op.add("lxcflow: observation -> subscriber", LXCFLOW)
    killed = op.add("lxcflow: SIGKILL of init -> STOPPING at subscriber", LXCFLOW)
    floor = op.add("floor: SIGKILL -> pidfd readable", FLOOR)
    theirs = op.add("LXC: SIGKILL of init -> STOPPING at lxc-monitor", LXC) if b.lxc else None
    b.create("ev", IDLE)
    b.call("start", name="ev")
    mark = b.monitor.mark()
    for _ in range(b.size["transitions"] // 2):
        b.call("freeze", name="ev")
        b.call("unfreeze", name="ev")
    time.sleep(0.2)
    with b.monitor.cond:
        observed.samples_s += [(now - e["time_ns"]) / 1e9 for now, e in b.monitor.arrivals[mark:]
                               if e["container"] == "ev"]
    b.call("stop", name="ev", kill=True)

    lxc_lines: list[tuple[int, str]] = []
    lxc_monitor = None
    if b.lxc and theirs:
        lxc_monitor = subprocess.Popen(b.lxc.argv("monitor", "ev"), stdout=subprocess.PIPE,
                                       text=True)
        stdout = lxc_monitor.stdout
        assert stdout is not None

        def read_lines() -> None:
            for line in stdout:
                lxc_lines.append((time.time_ns(), line))

        threading.Thread(target=read_lines, daemon=True).start()
        time.sleep(0.3)
    try:
        for _ in range(b.size["kills"]):
            pid = b.call("start", name="ev")["pid"]
            mark = b.monitor.mark()
            t0 = time.time_ns()
            os.kill(pid, signal.SIGKILL)
            killed.samples_s.append((b.monitor.wait_for("ev", "STOPPING", mark)[0] - t0) / 1e9)
            b.monitor.wait_for("ev", "STOPPED", mark)

            sleeper = subprocess.Popen(IDLE)
            pidfd = os.pidfd_open(sleeper.pid)
            t1 = time.perf_counter()
            sleeper.kill()
            select.select([pidfd], [], [])
            floor.samples_s.append(time.perf_counter() - t1)
            os.close(pidfd)
            sleeper.wait()

            if b.lxc and theirs:
                run(b.lxc.argv("start", "ev", "-d"))
                pid = b.lxc.init_pid("ev")
                seen = len(lxc_lines)
                t0 = time.time_ns()
                os.kill(pid, signal.SIGKILL)
                theirs.samples_s.append((_line_after(lxc_lines, seen, "STOPPING") - t0) / 1e9)
                _line_after(lxc_lines, seen, "STOPPED")
    finally:
        if lxc_monitor:
            lxc_monitor.terminate()
            lxc_monitor.wait()
    op.checks = [p99_check(op, observed.label, 5.0), p99_check(op, killed.label, 5.0)]
    if theirs:
        op.pairs = [(killed.label, theirs.label)]
        op.checks.append(ratio_check(op, killed.label, theirs.label, 1.0))
    return op


def _line_after(lines: list[tuple[int, str]], start: int, word: str) -> int:
    """Arrival (ns) of the first line from index ``start`` naming ``[word]``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for at, line in lines[start:]:
            if f"[{word}]" in line:
                return at
        time.sleep(0.0005)
    raise RuntimeError(f"lxc-monitor printed no {word} in 30 s")


def op_restart(b: Bench) -> Operation:
    op = Operation("restart", "7. death -> RUNNING again, immediate restart rule")
    figures = restart.death_to_running(b.base, b.daemon, b.size["deaths"])
    op.add("lxcflow: death (kernel) -> RUNNING", LXCFLOW).samples_s = figures["samples_s"]
    op.checks = [Check("death -> RUNNING, median", figures["death_to_running"]["median_ms"],
                       10.0, "ms")]
    op.note = "LXC has no restart policy to compare with"
    return op


def op_cli_cost(b: Bench) -> Operation:
    op = Operation("cli", "8. CLI fixed cost")
    floor = op.add("floor: python -I -S -c pass", FLOOR)
    info = op.add("lxcflow info", LXCFLOW)
    ls = op.add("lxcflow ls -f", LXCFLOW)
    lxc_info = op.add("lxc-info", LXC) if b.lxc else None
    lxc_ls = op.add("lxc-ls -f", LXC) if b.lxc else None
    b.create("inf", IDLE)
    b.call("start", name="inf")
    if b.lxc:
        run(b.lxc.argv("start", "inf", "-d"))
    try:
        for _ in range(b.size["n"]):
            floor.samples_s.append(timed(run, [sys.executable, "-I", "-S", "-c", "pass"]))
            info.samples_s.append(timed(b.cli, "info", "-n", "inf"))
            ls.samples_s.append(timed(b.cli, "ls", "-f"))
            if b.lxc and lxc_info and lxc_ls:
                lxc = b.lxc
                lxc_info.samples_s.append(timed(run, lxc.argv("info", "inf")))
                lxc_ls.samples_s.append(timed(run, lxc.argv("ls", None, "-f")))
    finally:
        b.call("stop", name="inf", kill=True)
        if b.lxc:
            run(b.lxc.argv("stop", "inf", "-k"))
    op.pairs = [(info.label, floor.label)]
    op.checks = [ratio_check(op, info.label, floor.label, 1.5)]
    if lxc_info and lxc_ls:
        op.pairs += [(info.label, lxc_info.label), (ls.label, lxc_ls.label)]
    return op


def op_scale(b: Bench) -> Operation:
    count, workers = b.size["scale"], b.size["parallel"]
    op = Operation("scale", f"9. scale: {count} running containers")
    names = [f"sc-{i:04d}" for i in range(count)]
    ours = theirs = 0.0
    for name in names:
        b.create(name, IDLE)
    try:
        ours = timed(b.cli, "start", "-n", "sc-*")
        op.scalars.append(Scalar(f"start all from the CLI, one command ({batch.LIMIT} at a time)",
                                 LXCFLOW, ours, "s"))
        if b.lxc:
            lxc = b.lxc
            theirs = in_parallel(lambda n: run(lxc.argv("start", n, "-d")), names, workers)
            op.scalars += [Scalar(f"lxc-start -d all, {workers} at a time", LXC, theirs, "s"),
                           Scalar("ratio lxcflow / LXC, start all", LXCFLOW, ours / theirs, "x")]
        time.sleep(1.0)
        shims = [RunState.load(b.daemon.paths.run_dir(n)).shim_pid for n in names]
        daemon_kib = pss_kib(b.daemon.pid)
        shims_kib = sum(pss_kib(p) for p in shims)
        total_mb = (daemon_kib + shims_kib) / 1024
        op.scalars += [Scalar("lxcflow daemon PSS", LXCFLOW, daemon_kib / 1024, "MiB"),
                       Scalar(f"lxcflow-shim PSS, all {count}", LXCFLOW, shims_kib / 1024, "MiB"),
                       Scalar("lxcflow in all", LXCFLOW, total_mb, "MiB")]
        if b.lxc:
            monitors = b.lxc.monitor_pids()
            lxc_mb = sum(pss_kib(p) for p in monitors) / 1024
            op.scalars += [Scalar(f"[lxc monitor] PSS, all {len(monitors)}", LXC, lxc_mb, "MiB"),
                           Scalar("ratio lxcflow / LXC, memory", LXCFLOW, total_mb / lxc_mb, "x")]
        window = b.size["idle_window"]
        cpu0 = cpu_ticks(b.daemon.pid)[0]
        time.sleep(window)
        idle_pct = (cpu_ticks(b.daemon.pid)[0] - cpu0) / CLK_TCK / window * 100
        op.scalars.append(Scalar(f"daemon CPU while idle ({window:g} s)", LXCFLOW, idle_pct,
                                 "% of a core"))
        ls = op.add("lxcflow ls", LXCFLOW)
        ls_f = op.add("lxcflow ls -f", LXCFLOW)
        lxc_ls = op.add("lxc-ls -f", LXC) if b.lxc else None
        for _ in range(b.size["ls"]):
            ls.samples_s.append(timed(b.cli, "ls"))
            ls_f.samples_s.append(timed(b.cli, "ls", "-f"))
            if b.lxc and lxc_ls:
                lxc = b.lxc
                lxc_ls.samples_s.append(timed(run, lxc.argv("ls", None, "-f")))
        if lxc_ls:
            op.pairs = [(ls_f.label, lxc_ls.label)]
        stop_ours = timed(b.cli, "stop", "-k", "-n", "sc-*")
        op.scalars.append(Scalar(f"stop -k all from the CLI, one command ({batch.LIMIT} at a "
                                 "time)", LXCFLOW, stop_ours, "s"))
        if b.lxc:
            lxc = b.lxc
            stop_theirs = in_parallel(lambda n: run(lxc.argv("stop", n, "-k")), names, workers)
            op.scalars += [Scalar(f"lxc-stop -k all, {workers} at a time", LXC, stop_theirs, "s"),
                           Scalar("ratio lxcflow / LXC, stop -k all", LXCFLOW,
                                  stop_ours / stop_theirs, "x")]
            op.checks += [Check("start all, lxcflow / LXC", ours / theirs, 0.5, "x"),
                          Check("stop -k all, lxcflow / LXC", stop_ours / stop_theirs, 0.5, "x")]
        op.checks += [Check("lxcflow memory in all (daemon + shims, PSS)", total_mb, 150.0, "MiB"),
                     Check("daemon CPU while idle", idle_pct, 2.0, "% of a core"),
                     Check("lxcflow ls, median", ls.stats()["median_ms"], 200.0, "ms")]
    finally:
        stop_all(b.client, names)
        destroy_all(b.client, names)
    return op


def op_crashloop(b: Bench, rules: Path, empty: Path) -> Operation:
    op = Operation("crashloop", f"10. crashloop: {b.size['crashloop']} containers under backoff")
    figures = restart.crashloop(b.base, b.daemon, b.size["crashloop"], b.size["warmup"],
                                b.size["window"], "unthrottled restart budget")
    op.scalars += [Scalar("daemon CPU, unthrottled budget", LXCFLOW, figures["cpu_pct"],
                          "% of a core"),
                   Scalar("restarts a second, unthrottled", LXCFLOW, figures["restarts_per_s"],
                          "/s"),
                   Scalar("daemon CPU per restart", LXCFLOW, figures["cpu_ms_per_restart"], "ms")]
    second = Daemon(b.base, "default-budget", rules)
    try:
        second.start()
        default = restart.crashloop(b.base, second, b.size["crashloop"], b.size["warmup"],
                                    b.size["window"], "default restart budget (120/min)")
    finally:
        second.clean_up(empty)
    op.scalars += [Scalar("daemon CPU, default budget", LXCFLOW, default["cpu_pct"],
                          "% of a core"),
                   Scalar("restarts a second, default budget", LXCFLOW,
                          default["restarts_per_s"], "/s")]
    op.checks = [Check("daemon CPU, default budget", default["cpu_pct"], 4.0, "% of a core"),
                 Check("daemon CPU, unthrottled budget", figures["cpu_pct"], 4.0, "% of a core")]
    op.note = "LXC has no restart policy to compare with"
    return op


# ---------------------------------------------------------------- the run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as ^C does


KEYS = ("execute", "start", "freeze", "wait", "events", "restart", "cli", "scale", "crashloop",
        "attach", "system", "keepers", "confinement", "unprivileged", "observe", "wake",
        "fleet")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n (CI)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"),
                        help="where results.json, .md and .png go (default bench/results)")
    parser.add_argument("--only", nargs="+", choices=KEYS, help="run only these operations")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/suite.py: needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    size = SIZES["quick" if args.quick else "full"]
    wanted = set(args.only or KEYS)
    signal.signal(signal.SIGTERM, _interrupt)
    lxc_version = version()
    if lxc_version is None:
        print("LXC is not installed (make bench installs it): lxcflow's figures only")
    base = Path(tempfile.mkdtemp(prefix="lxcflow-bench-"))
    rules, empty = base / "rules", base / "no-rules"
    rules.mkdir()
    empty.mkdir()
    (rules / "restart.toml").write_text(restart.RULES)
    for kind, text in restart.CONFIGS.items():
        (base / f"{kind}.conf").write_text(text)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "mode": "quick" if args.quick else "full", "kernel": platform.release(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "lxc": lxc_version or "not installed"}
    daemon = Daemon(base, "main", rules, restart.HIGH_BUDGET)
    lxc = Lxc(base) if lxc_version else None
    ops: list[Operation] = []
    benches: list[Bench] = []
    try:
        daemon.start()
        b = Bench(base, daemon, lxc, size)
        benches.append(b)
        steps: list[tuple[str, Callable[[], Operation | list[Operation]]]] = [
            ("execute", lambda: op_execute(b)), ("start", lambda: op_start_stop(b)),
            ("freeze", lambda: op_freeze(b)), ("wait", lambda: op_wait(b)),
            ("events", lambda: op_events(b)), ("restart", lambda: op_restart(b)),
            ("cli", lambda: op_cli_cost(b)), ("scale", lambda: op_scale(b)),
            ("crashloop", lambda: op_crashloop(b, rules, empty)),
            ("attach", lambda: op_attach(b)),
            ("system", lambda: op_system(b)),
            ("keepers", lambda: op_keepers(b)),
            ("confinement", lambda: op_confinement(b)),
            ("unprivileged", lambda: op_unprivileged(b)),
            ("observe", lambda: op_observe(b, empty)),
            ("wake", lambda: op_wake(b)),
            ("fleet", lambda: op_fleet(b, empty)),
        ]
        for key, step in steps:
            if key in wanted:
                done = step()
                for op in done if isinstance(done, list) else [done]:
                    report.print_operation(op)
                    ops.append(op)
        ops.sort(key=lambda op: int(op.title.split(".")[0]))
        args.out.mkdir(parents=True, exist_ok=True)
        report.write_json(args.out / "results.json", meta, ops)
        report.write_markdown(args.out / "results.md", meta, ops)
        report.write_chart(args.out / "results.png", ops)
        print(f"\nwrote {args.out}/results.json, results.md, results.png")
        missed = [c.text for op in ops for c in op.checks if not c.met]
        print(f"targets: {sum(len(op.checks) for op in ops) - len(missed)} met, "
              f"{len(missed)} missed" + (f" ({'; '.join(missed)})" if missed else ""))
        return 0
    finally:
        for bench in benches:
            bench.close()
        daemon.clean_up(empty)
        if lxc is not None:
            lxc.clean_up()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
