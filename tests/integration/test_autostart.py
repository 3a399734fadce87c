"""lxcflow autostart and the daemon's start at boot: lxc.start.auto, lxc.group,
lxc.start.order and lxc.start.delay, as lxc-autostart reads them."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def define(lxc: Env, name: str, extra: str) -> None:
    config = lxc.config(f"lxc.uts.name = {name}\nlxc.init.cmd = sleep 100000\n{extra}",
                        name=f"{name}.conf")
    lxc.ok("create", "-n", name, "-f", str(config))


def states(lxc: Env) -> dict[str, str]:
    return {c["name"]: c["state"] for c in json.loads(lxc.ok("ls", "--json"))}


def events(lxc: Env, to: str) -> list[tuple[str, int]]:
    """(container, time in ns) of every transition to ``to``, oldest first."""
    out = lxc.ok("monitor", "--since", "0", "--no-follow", "--json")
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(e["container"], e["time_ns"]) for e in found if e["to"] == to]


def define_set(lxc: Env) -> None:
    define(lxc, "cc", "lxc.start.auto = 1\n")
    define(lxc, "aa", "lxc.start.auto = 1\nlxc.start.delay = 1\n")
    define(lxc, "bb", "lxc.start.auto = 1\nlxc.start.order = -1\n")
    define(lxc, "manual", "lxc.start.auto = 0\n")
    define(lxc, "web", "lxc.start.auto = 1\nlxc.group = web\n")


def test_order_delay_groups_and_the_reverse_for_stops(lxc: Env) -> None:
    define_set(lxc)
    listed = lxc.ok("autostart", "-L").split()
    assert listed == ["NAME", "ORDER", "DELAY", "GROUPS", "bb", "-1", "0", "-",
                      "aa", "0", "1", "-", "cc", "0", "0", "-"]
    lxc.ok("autostart")
    assert states(lxc) == {"aa": "RUNNING", "bb": "RUNNING", "cc": "RUNNING",
                           "manual": "STOPPED", "web": "STOPPED"}
    started = events(lxc, "STARTING")
    assert [name for name, _ in started] == ["bb", "aa", "cc"]
    after_aa = started[2][1] - started[1][1]
    assert after_aa >= 1e9, f"cc started {after_aa / 1e9:.2f} s after aa (delay 1)"

    lxc.ok("autostart", "-g", "web")
    assert states(lxc)["web"] == "RUNNING"
    lxc.ok("autostart", "-s", "-t", "5")
    assert [name for name, _ in events(lxc, "STOPPING")] == ["cc", "aa", "bb"]
    assert states(lxc) == {"aa": "STOPPED", "bb": "STOPPED", "cc": "STOPPED",
                           "manual": "STOPPED", "web": "RUNNING"}
    lxc.ok("autostart", "-a", "-k")
    assert set(states(lxc).values()) == {"STOPPED"}


def test_the_daemon_starts_them_once_per_boot(lxc: Env) -> None:
    define_set(lxc)
    marker = lxc.paths.lxcpath / ".autostart-boot"
    this_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert marker.read_text().strip() == this_boot  # the first daemon, on an empty lxcpath
    marker.write_text("an-earlier-boot\n")
    lxc.kill_daemon(signal.SIGTERM)
    lxc.ok("ls")  # a new daemon: a new boot to it
    lxc.ok("wait", "-n", "cc", "-s", "RUNNING", "-t", "10")
    assert states(lxc) == {"aa": "RUNNING", "bb": "RUNNING", "cc": "RUNNING",
                           "manual": "STOPPED", "web": "STOPPED"}
    assert marker.read_text().strip() == this_boot
    lxc.ok("stop", "-n", "aa", "-k")  # a user's stop
    lxc.kill_daemon(signal.SIGTERM)
    lxc.ok("ls")  # same boot: nothing is started again
    assert lxc.run("wait", "-n", "aa", "-s", "RUNNING", "-t", "2").returncode != 0
    assert states(lxc)["aa"] == "STOPPED"
    assert [name for name, _ in events(lxc, "STARTING")] == ["bb", "aa", "cc"]


def test_bad_input(lxc: Env) -> None:
    r = lxc.run("autostart", "-L", "-k")
    assert (r.returncode, r.stderr) == (
        2, "lxcflow autostart: give at most one of -L, -k, -s, -r\n")
    bad = lxc.config("lxc.start.order = soon\n")
    r = lxc.run("create", "-n", "x", "-f", str(bad))
    assert (r.returncode, r.stderr.strip()) == (
        1, f"lxcflow create: {bad}:1: bad value for lxc.start.order: 'soon' is not an integer")
