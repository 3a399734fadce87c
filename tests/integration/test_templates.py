"""create -t: templates fill a container's root file system and config, as
LXC's do; the busybox one boots busybox's own init."""

from __future__ import annotations

import json
import time

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def info(lxc: Env, name: str) -> dict:
    return json.loads(lxc.ok("info", "-n", name, "--json"))


def leftovers(lxc: Env) -> list[str]:
    return [p.name for p in lxc.paths.lxcpath.iterdir() if not p.name.startswith(".")]


def test_busybox_boots_halts_and_reboots(lxc: Env) -> None:
    lxc.ok("create", "-n", "bb", "-t", "busybox")
    directory = lxc.paths.lxcpath / "bb"
    config = (directory / "config").read_text()
    # Its own network (never the host's), and busybox init's signals.
    for line in ("lxc.net.0.type = empty", f"lxc.rootfs.path = {directory}/rootfs",
                 "lxc.signal.halt = SIGUSR1", "lxc.signal.reboot = SIGTERM"):
        assert line in config.splitlines(), config
    lxc.ok("start", "-n", "bb")
    r = lxc.run("attach", "-n", "bb", "--clear-env", "--", "sh", "-c",
                "hostname; readlink /bin/ls; cat /proc/1/cmdline", input=b"\n")
    assert r.stdout.replace("\x00", " ").split() == ["bb", "/bin/busybox", "init"], r
    before = info(lxc, "bb")["pid"]
    lxc.ok("stop", "-n", "bb", "-r", "-t", "30")
    assert info(lxc, "bb")["state"] == "RUNNING"
    assert info(lxc, "bb")["pid"] != before
    t0 = time.monotonic()
    lxc.ok("stop", "-n", "bb", "-t", "30")
    assert time.monotonic() - t0 < 20
    # busybox init halted (reboot(2) ends a namespace's init by SIGINT): no SIGKILL.
    assert info(lxc, "bb")["last_exit"] == {"code": None, "signal": 2}


def test_a_failed_template_leaves_nothing(lxc: Env) -> None:
    r = lxc.run("create", "-n", "bb", "-t", "busybox", "--", "--busybox", "/no/busybox")
    assert (r.returncode, r.stderr) == (
        1, "lxcflow create: template busybox failed (exit 1): busybox template: no busybox "
           "found (install Debian's busybox-static)\n")
    assert leftovers(lxc) == []
    assert "bb" not in lxc.ok("ls").split()


def test_bad_requests_are_one_line(lxc: Env) -> None:
    r = lxc.run("create", "-n", "x", "-t", "no-such-template")
    assert r.returncode == 2
    assert r.stderr.startswith("lxcflow create: no template 'no-such-template' (there are: ")
    assert "busybox" in r.stderr
    r = lxc.run("create", "-n", "x")
    assert (r.returncode, r.stderr) == (
        2, "lxcflow create: create needs -f CONFIG, -t TEMPLATE or both\n")
    shared = lxc.config("lxc.net.0.type = none\n")
    r = lxc.run("create", "-n", "x", "-t", "busybox", "-f", str(shared))
    assert (r.returncode, r.stderr) == (
        2, "lxcflow create: a template's container needs a network of its own: "
           "lxc.net.N.type = none shares the host's\n")
    assert leftovers(lxc) == []
