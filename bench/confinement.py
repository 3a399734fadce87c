"""15. What confinement costs a start: start until RUNNING (then stop -k)
of a container with lxcflow's default confinement (LXC's common capability
drop, common.seccomp's list, LXC's device list), beside the same container
with it relaxed (no capability dropped, an allow-all seccomp program, every
device allowed; lxcflow always loads a program, so this is its least), and
beside ``lxc-start -d`` of the same container under LXC's common
confinement.

16. An unprivileged start: a busybox tree owned by host root, started with
container root mapped to host uid 100000 (an idmapped rootfs), beside the
same tree started privileged, and beside ``lxc-start -d`` of the same
unprivileged container (LXC 5's ``lxc.rootfs.options = idmap=container``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common import IDLE, LXC_CONFIG, run
from report import LXC, LXCFLOW, Operation
from rig import Bench, ratio_check, timed

from lxcflow.runtime.capabilities import DEFAULT_DROP
from lxcflow.runtime.device_rules import DEFAULT_RULES

BASE = f"lxc.net.0.type = empty\nlxc.init.cmd = {' '.join(IDLE)}\n"
# LXC's common.conf confinement: its capability drop, common.seccomp and
# device list (the same list lxcflow applies by default)
LXC_COMMON = (f"lxc.cap.drop = {' '.join(DEFAULT_DROP)}\n"
              "lxc.seccomp.profile = /usr/share/lxc/config/common.seccomp\n"
              + "".join(f"lxc.cgroup.{key} = {value}\n" for key, value in DEFAULT_RULES))


def op_confinement(b: Bench) -> Operation:
    op = Operation("confinement", "15. start until RUNNING: confinement's cost")
    allow_all = b.base / "allow-all.seccomp"
    allow_all.write_text("2\ndenylist\n")
    configs = {"cf-on": BASE, "cf-off": BASE + "lxc.cap.drop =\n"
               f"lxc.seccomp.profile = {allow_all}\nlxc.cgroup.devices.allow = a\n"}
    for name, text in configs.items():
        path = b.base / f"{name}.conf"
        path.write_text(f"lxc.uts.name = {name}\n" + text)
        b.call("create", name=name, config=str(path))
    on = op.add("lxcflow socket, default confinement", LXCFLOW)
    off = op.add("lxcflow socket, confinement relaxed", LXCFLOW)
    lxc_on = op.add("lxc-start -d, LXC's common confinement", LXC) if b.lxc else None
    lxc = b.lxc
    if lxc is not None:
        (lxc.lxcpath / "cf-lxc").mkdir(exist_ok=True)
        (lxc.lxcpath / "cf-lxc" / "config").write_text(
            LXC_CONFIG.replace("bench", "cf-lxc") + f"lxc.init.cmd = {' '.join(IDLE)}\n"
            + LXC_COMMON)
    try:
        for _ in range(b.size["n"]):
            on.samples_s.append(timed(b.call, "start", name="cf-on"))
            b.call("stop", name="cf-on", kill=True)
            off.samples_s.append(timed(b.call, "start", name="cf-off"))
            b.call("stop", name="cf-off", kill=True)
            if lxc is not None and lxc_on is not None:
                lxc_on.samples_s.append(timed(run, lxc.argv("start", "cf-lxc", "-d")))
                run(lxc.argv("stop", "cf-lxc", "-k"))
    finally:
        for name in configs:
            b.call("destroy", name=name, force=True)
    op.pairs = [(on.label, off.label)] + ([(on.label, lxc_on.label)] if lxc_on else [])
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
    for name, text in configs.items():
        path = b.base / f"{name}.conf"
        path.write_text(f"lxc.uts.name = {name}\n" + text)
        b.call("create", name=name, config=str(path))
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
    try:
        for _ in range(b.size["n"]):
            unprivileged.samples_s.append(timed(b.call, "start", name="up-on"))
            b.call("stop", name="up-on", kill=True)
            privileged.samples_s.append(timed(b.call, "start", name="up-off"))
            b.call("stop", name="up-off", kill=True)
            if lxc is not None and lxc_side is not None:
                lxc_side.samples_s.append(timed(run, lxc.argv("start", "up-lxc", "-d")))
                run(lxc.argv("stop", "up-lxc", "-k"))
    finally:
        for name in configs:
            b.call("destroy", name=name, force=True)
    op.pairs = [(unprivileged.label, privileged.label)]
    if lxc_side:
        op.pairs.append((unprivileged.label, lxc_side.label))
    return op
