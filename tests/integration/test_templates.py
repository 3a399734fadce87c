"""create -t: templates fill a container's root file system and config, as
LXC's do; busybox boots busybox's own init, debian systemd."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests import debian_rootfs
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


def test_debian_boots_systemd_and_a_second_create_copies_the_cache(lxc: Env) -> None:
    """The first create debootstraps (cached with the tests' Debian tree,
    outside the repository); the second copies that tree."""
    lxc.env["LXCFLOW_TEMPLATE_CACHE"] = str(debian_rootfs.TEMPLATE_CACHE)
    first = lxc.run("create", "-n", "deb1", "-t", "debian", "--", "--release", "bookworm",
                    timeout=600)  # a debootstrap when the cache is new: about a minute
    assert first.returncode == 0, first.stderr
    t0 = time.monotonic()
    lxc.ok("create", "-n", "deb2", "-t", "debian", "--", "--release", "bookworm")
    second = time.monotonic() - t0
    assert second < 30, f"the second create took {second:.1f} s"
    directory = lxc.paths.lxcpath / "deb2"
    assert (directory / "rootfs" / "etc" / "hostname").read_text() == "deb2\n"
    config = (directory / "config").read_text().splitlines()
    assert "lxc.net.0.type = empty" in config
    assert "lxc.init.cmd = /sbin/init" in config
    lxc.ok("start", "-n", "deb2")
    state = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # systemd's socket comes a moment after the start
        said = lxc.run("attach", "-n", "deb2", "--clear-env", "--", "systemctl",
                       "is-system-running", "--wait", input=b"\n")
        state = (said.stdout + said.stderr).strip()
        if "Failed to connect to bus" not in state:
            break
        time.sleep(0.05)
    assert state in ("running", "degraded")
    r = lxc.run("attach", "-n", "deb2", "--", "hostname", input=b"\n")
    assert r.stdout == "deb2\n"
    lxc.ok("stop", "-n", "deb2", "-t", "60")
    assert info(lxc, "deb2")["last_exit"] == {"code": None, "signal": 2}


def test_hooks_run_inside_at_lxcs_points(lxc: Env) -> None:
    """pre-mount, mount and autodev in the container's namespaces before it
    pivots (the host's files still in view), start inside its root."""
    lxc.ok("create", "-n", "bb", "-t", "busybox")
    record = lxc.base / "hooks"
    config = lxc.paths.lxcpath / "bb" / "config"
    with config.open("a") as f:
        for kind in ("pre-mount", "mount", "autodev"):
            f.write(f"lxc.hook.{kind} = echo $LXC_HOOK_TYPE $(readlink /proc/self/ns/mnt)"
                    f" $(test -c $LXC_ROOTFS_MOUNT/dev/null && echo dev) >> {record}\n")
        f.write("lxc.hook.start = echo inside >> /hooks-ran\n")
    lxc.ok("start", "-n", "bb")
    init = info(lxc, "bb")["pid"]
    mnt = os.readlink(f"/proc/{init}/ns/mnt")
    # (LXC's arguments follow the command: name, section, type)
    assert record.read_text().splitlines() == [
        f"pre-mount {mnt} bb lxc pre-mount", f"mount {mnt} dev bb lxc mount",
        f"autodev {mnt} dev bb lxc autodev"]
    rootfs = lxc.paths.lxcpath / "bb" / "rootfs"
    assert (rootfs / "hooks-ran").read_text() == "inside bb lxc start\n"
    lxc.ok("stop", "-n", "bb", "-k")

    with config.open("a") as f:
        f.write("lxc.hook.mount = echo no room at the inn; exit 3\n")
    failed = lxc.run("start", "-n", "bb")
    assert failed.returncode == 1
    assert "lxc.hook.mount failed (exit 3): no room at the inn" in failed.stderr
    assert info(lxc, "bb")["state"] == "STOPPED"
    assert list(Path("/sys/fs/cgroup").glob(f"*/{lxc.paths.cgroup_parent}/bb")) == []
