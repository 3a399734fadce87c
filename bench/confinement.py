"""15. What confinement costs a start: start until RUNNING (then stop -k)
of a container with lxcflow's default confinement (LXC's common capability
drop, common.seccomp's list, LXC's device list), beside the same container
with it relaxed (no capability dropped, an allow-all seccomp program, every
device allowed; lxcflow always loads a program, so this is its least), and
beside ``lxc-start -d`` of the same container under LXC's common
confinement. Beside them, the kernel's floor every one of them pays: the
first ``cgroup.procs`` write after a quiet spell, which on a host whose
cgroup2 is mounted without favordynmods waits for an RCU grace period (the
bench writes its own pid where it already is: nothing moves). The starts are
timed twice: back to back (a busy supervisor; the targets), and each after a
quiet spell, where that grace period is in every start, LXC's too.

16. An unprivileged start: a busybox tree owned by host root, started with
container root mapped to host uid 100000 (an idmapped rootfs), beside the
same tree started privileged, and beside ``lxc-start -d`` of the same
unprivileged container (LXC 5's ``lxc.rootfs.options = idmap=container``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from common import IDLE, LXC_CONFIG, run
from lxc_side import Lxc
from report import FLOOR, LXC, LXCFLOW, Operation, Series
from rig import Bench, ratio_check, timed

from lxcflow.runtime.capabilities import DEFAULT_DROP
from lxcflow.runtime.device_rules import DEFAULT_RULES

BASE = f"lxc.net.0.type = empty\nlxc.init.cmd = {' '.join(IDLE)}\n"
# LXC's common.conf confinement: its capability drop, common.seccomp and
# device list (the same list lxcflow applies by default)
LXC_COMMON = (f"lxc.cap.drop = {' '.join(DEFAULT_DROP)}\n"
              "lxc.seccomp.profile = /usr/share/lxc/config/common.seccomp\n"
              + "".join(f"lxc.cgroup.{key} = {value}\n" for key, value in DEFAULT_RULES))


QUIET_S = 0.03  # longer than the grace period the lock's fast path waits out


def after_quiet(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` took, started after a quiet spell, as a supervisor's
    start mostly comes: one right after another's cgroup writes would find
    the cgroup lock's fast path still open and skip the grace period."""
    time.sleep(QUIET_S)
    return timed(fn)


def _own_procs_file() -> str:
    """The cgroup.procs of this process's cgroup: in the v1 pids hierarchy
    where there is one (hybrid, legacy), else in cgroup2."""
    where = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            where[controllers] = path
    if "pids" in where:
        return f"/sys/fs/cgroup/pids{where['pids']}/cgroup.procs"
    return f"/sys/fs/cgroup{where['']}/cgroup.procs"


def _first_cgroup_write(procs: str) -> None:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))


#: one way of starting: the series its times go to, the start, what undoes it
Turn = tuple[Series, Callable[[], object], Callable[[], object]]


def _create(b: Bench, configs: dict[str, str]) -> None:
    for name, text in configs.items():
        path = b.base / f"{name}.conf"
        path.write_text(f"lxc.uts.name = {name}\n" + text)
        b.call("create", name=name, config=str(path))


def _lxcflow(b: Bench, series: Series, name: str) -> Turn:
    return (series, lambda: b.call("start", name=name),
            lambda: b.call("stop", name=name, kill=True))


def _lxc(lxc: Lxc, series: Series, name: str) -> Turn:
    return (series, lambda: run(lxc.argv("start", name, "-d")),
            lambda: run(lxc.argv("stop", name, "-k")))


def _in_turn(n: int, turns: list[Turn],
             timer: Callable[[Callable[[], object]], float] = timed) -> None:
    """Each way once, in order, ``n`` times (A B C A B C ...)."""
    for _ in range(n):
        for series, start, undo in turns:
            series.samples_s.append(timer(start))
            undo()


def op_confinement(b: Bench) -> Operation:
    op = Operation("confinement", "15. start until RUNNING: confinement's cost")
    allow_all = b.base / "allow-all.seccomp"
    allow_all.write_text("2\ndenylist\n")
    configs = {"cf-on": BASE, "cf-off": BASE + "lxc.cap.drop =\n"
               f"lxc.seccomp.profile = {allow_all}\nlxc.cgroup.devices.allow = a\n"}
    _create(b, configs)
    on = op.add("lxcflow socket, default confinement", LXCFLOW)
    off = op.add("lxcflow socket, confinement relaxed", LXCFLOW)
    lxc_on = op.add("lxc-start -d, LXC's common confinement", LXC) if b.lxc else None
    cold = op.add("lxcflow socket, default confinement, after a quiet spell", LXCFLOW)
    lxc_cold = op.add("lxc-start -d, after a quiet spell", LXC) if b.lxc else None
    floor = op.add("floor: first cgroup.procs write after a quiet spell", FLOOR)
    procs = _own_procs_file()
    lxc = b.lxc
    if lxc is not None:
        (lxc.lxcpath / "cf-lxc").mkdir(exist_ok=True)
        (lxc.lxcpath / "cf-lxc" / "config").write_text(
            LXC_CONFIG.replace("bench", "cf-lxc") + f"lxc.init.cmd = {' '.join(IDLE)}\n"
            + LXC_COMMON)
    busy = [_lxcflow(b, on, "cf-on"), _lxcflow(b, off, "cf-off")]
    quiet = [_lxcflow(b, cold, "cf-on")]
    if lxc is not None and lxc_on is not None and lxc_cold is not None:
        busy.append(_lxc(lxc, lxc_on, "cf-lxc"))
        quiet.append(_lxc(lxc, lxc_cold, "cf-lxc"))
    quiet.append((floor, lambda: _first_cgroup_write(procs), lambda: None))
    try:
        # Back to back, as a busy supervisor starts: each start's cgroup
        # writes come while the previous one's keep the lock's fast path open.
        _in_turn(b.size["n"], busy)
        # And each after a quiet spell, beside the floor that spell brings.
        _in_turn(b.size["n"], quiet, after_quiet)
    finally:
        for name in configs:
            b.call("destroy", name=name, force=True)
    op.pairs = [(on.label, off.label)] + ([(on.label, lxc_on.label)] if lxc_on else [])
    if lxc_cold:
        op.pairs.append((cold.label, lxc_cold.label))
    op.checks = [ratio_check(op, on.label, off.label, 1.2)]
    if lxc_on:
        op.checks.append(ratio_check(op, on.label, lxc_on.label, 0.65))
    return op


IDMAP = "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n"
BUSYBOX_IDLE = "lxc.init.cmd = /bin/busybox sleep 100000\n"


def _busybox_tree(rootfs: Path) -> None:
    """The least a rootfs needs here: busybox and the mount points."""
    for d in ("bin", "proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")


def op_unprivileged(b: Bench) -> Operation:
    op = Operation("unprivileged", "16. start until RUNNING: an unprivileged container")
    tree = b.base / "up-tree"
    _busybox_tree(tree)
    common = f"lxc.rootfs.path = {tree}\nlxc.net.0.type = empty\n{BUSYBOX_IDLE}"
    configs = {"up-on": common + IDMAP, "up-off": common}
    _create(b, configs)
    unprivileged = op.add("lxcflow socket, unprivileged (idmapped rootfs)", LXCFLOW)
    privileged = op.add("lxcflow socket, the same tree privileged", LXCFLOW)
    lxc_side = op.add("lxc-start -d, unprivileged (idmap=container)", LXC) if b.lxc else None
    lxc = b.lxc
    if lxc is not None:
        # LXC walks to the rootfs as container root (lxcflow hands its init
        # the rootfs as its working directory): the bench's 0700 directories
        # must let anyone through for LXC's side.
        for directory in (b.base, lxc.lxcpath):
            directory.chmod(0o711)
        own = lxc.lxcpath / "up-lxc"
        _busybox_tree(own / "rootfs")
        (own / "config").write_text(
            "lxc.uts.name = up-lxc\nlxc.console.path = none\nlxc.net.0.type = empty\n"
            f"lxc.rootfs.path = dir:{own / 'rootfs'}\nlxc.rootfs.options = idmap=container\n"
            f"lxc.mount.auto = proc:mixed sys:mixed\n{BUSYBOX_IDLE}{IDMAP}{LXC_COMMON}")
    turns = [_lxcflow(b, unprivileged, "up-on"), _lxcflow(b, privileged, "up-off")]
    if lxc is not None and lxc_side is not None:
        turns.append(_lxc(lxc, lxc_side, "up-lxc"))
    try:
        _in_turn(b.size["n"], turns)  # back to back, as op 15's first loop
    finally:
        for name in configs:
            b.call("destroy", name=name, force=True)
    op.pairs = [(unprivileged.label, privileged.label)]
    if lxc_side:
        op.pairs.append((unprivileged.label, lxc_side.label))
    return op
