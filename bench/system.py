"""12. A Debian bookworm with systemd (the debian template's tree, tests/debian_rootfs.py):
start until ``systemctl is-system-running --wait`` answers, and a polite stop
until STOPPED, lxcflow beside lxc-start/lxc-stop on copies of the same tree.

Both sides look inside the same way (their own attach), so the time to
answer is in both figures alike. Figures only: the issue sets no target.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from report import LXC, LXCFLOW, Operation
from rig import LXCFLOW_CLI, Bench, timed

from lxcflow.errors import LxcflowError

# The cache's builder lives with the tests that boot it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import debian_rootfs  # noqa: E402

#: what LXC's own containers of this tree get beyond the config lxcflow's get
#: (lxcflow mounts /proc, /sys and /dev itself; LXC needs them spelled out)
LXC_EXTRA = ("lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed\nlxc.autodev = 1\n"
             "lxc.apparmor.profile = unconfined\nlxc.tty.max = 0\n")


def _booted(attach: list[str], env: dict[str, str] | None) -> None:
    """Until systemd answers that booting is over (its socket comes a moment
    after the start)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = subprocess.run([*attach, "systemctl", "is-system-running", "--wait"], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.02)
    raise RuntimeError(f"systemd did not finish booting: {done.stdout}{done.stderr}")


def _cycle(start: Callable[[], object], attach: list[str], env: dict[str, str] | None,
           stop: Callable[[], object], starts: list[float], stops: list[float]) -> None:
    t0 = time.perf_counter()
    start()
    _booted(attach, env)
    starts.append(time.perf_counter() - t0)
    stops.append(timed(stop))


def op_system(b: Bench) -> list[Operation]:
    boot = Operation("system-boot", "12. systemd container: start until booted")
    halt = Operation("system-halt", "13. systemd container: stop (halt) until STOPPED")
    ours_boot, ours_halt = boot.add("lxcflow socket", LXCFLOW), halt.add("lxcflow socket",
                                                                        LXCFLOW)
    lxc_boot = boot.add("lxc-start -d", LXC) if b.lxc else None
    lxc_halt = halt.add("lxc-stop", LXC) if b.lxc else None
    work = Path(tempfile.mkdtemp(prefix="lxcflow-bench-deb-"))
    try:
        debian_rootfs.make(work / "ours")
        config = work / "deb.conf"
        config.write_text(f"lxc.uts.name = deb\nlxc.rootfs.path = {work / 'ours'}\n"
                          "lxc.net.0.type = empty\n")
        b.call("create", name="deb", config=str(config))
        ours_attach = [LXCFLOW_CLI, "--no-spawn", "attach", "-n", "deb", "--clear-env", "--"]
        lxc = b.lxc
        if lxc is not None:
            (lxc.lxcpath / "deb").mkdir()
            debian_rootfs.make(lxc.lxcpath / "deb" / "rootfs")
            (lxc.lxcpath / "deb" / "config").write_text(
                f"lxc.uts.name = deb\nlxc.rootfs.path = dir:{lxc.lxcpath / 'deb' / 'rootfs'}\n"
                "lxc.net.0.type = empty\n" + LXC_EXTRA)
            lxc_attach = lxc.argv("attach", "deb", "--clear-env", "--")
        for _ in range(max(3, b.size["n"] // 10)):
            _cycle(lambda: b.call("start", name="deb"), ours_attach, b.daemon.env,
                   lambda: b.call("stop", name="deb", timeout=60.0), ours_boot.samples_s,
                   ours_halt.samples_s)
            if lxc is not None and lxc_boot and lxc_halt:
                _cycle(lambda: subprocess.run(lxc.argv("start", "deb", "-d"), check=True),
                       lxc_attach, None,
                       lambda: subprocess.run(lxc.argv("stop", "deb"), check=True),
                       lxc_boot.samples_s, lxc_halt.samples_s)
    finally:
        try:
            b.call("stop", name="deb", kill=True)
        except LxcflowError:
            pass  # stopped already, or never created
        shutil.rmtree(work, ignore_errors=True)
    if lxc_boot and lxc_halt:
        boot.pairs = [(ours_boot.label, lxc_boot.label)]
        halt.pairs = [(ours_halt.label, lxc_halt.label)]
    return [boot, halt]
