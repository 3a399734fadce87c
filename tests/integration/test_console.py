"""Consoles, ttys and console logs: the container's own devpts, the pty
masters its keeper holds, ``lxcflow console`` on a real terminal and
``lxcflow logs``. The busybox template's container runs a getty on tty1 and
a shell on the console, as LXC's does."""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Env, Terminal, cli_on_a_terminal, needs_root

pytestmark = needs_root


@pytest.fixture
def bb(lxc: Env) -> str:
    lxc.ok("create", "-n", "bb", "-t", "busybox")
    lxc.ok("start", "-n", "bb")
    return "bb"


def inside(lxc: Env, *command: str) -> str:
    return lxc.ok("attach", "-n", "bb", "--clear-env", "--", *command)


def detach(terminal: Terminal) -> None:
    terminal.type(b"\x01q")
    assert terminal.wait() == 0


def test_the_ttys_are_the_containers_own(lxc: Env, bb: str) -> None:
    listing = inside(lxc, "sh", "-c", "stat -c '%n %t:%T' /dev/console /dev/tty1;"
                     " readlink /dev/ptmx; tr '\\0' '\\n' < /proc/1/environ")
    lines = listing.splitlines()
    # slaves of the container's devpts (major 136), not the host's 5:1 and 4:1
    assert lines[:2] == ["/dev/console 88:0", "/dev/tty1 88:1"]
    assert lines[2] == "pts/ptmx"
    assert "container_ttys=pts/1" in lines
    init = json.loads(lxc.ok("info", "-n", bb, "--json"))["pid"]
    # the init's stdio is the console, a pts of its own devpts, not the host's
    assert os.readlink(f"/proc/{init}/fd/1") == "/dev/pts/0"
    assert os.stat(f"/proc/{init}/fd/1").st_dev != os.stat("/dev/pts/ptmx").st_dev
    # the rest of LXC's autodev /dev
    assert inside(lxc, "stat", "-c", "%a", "/dev/shm").strip() == "1777"
    assert inside(lxc, "readlink", "/dev/fd").strip() == "/proc/self/fd"


def test_console_reaches_the_getty_and_the_console_shell(lxc: Env, bb: str) -> None:
    with cli_on_a_terminal(lxc, "console", "-n", bb) as terminal:
        # the getty wrote its prompt before anyone looked: the keeper kept it
        terminal.until(b"bb login: ")
        detach(terminal)
    with cli_on_a_terminal(lxc, "console", "-n", bb, "-t", "0", "-e", "^b") as terminal:
        terminal.until(b"Ctrl+b q")
        terminal.type(b"\r")  # busybox's askfirst: Enter starts the shell
        terminal.until(b"# ")
        terminal.type(b"tty; echo $((6*7))\r")
        terminal.until(b"42\r\n")
        assert b"/dev/console\r\n" in terminal.seen
        assert b"job control turned off" not in terminal.seen
        terminal.type(b"\x01q")  # not the escape any more: goes to the shell
        terminal.type(b"\x02q")
        assert terminal.wait() == 0
    assert "Please press Enter to activate this console" in lxc.ok("logs", "-n", bb)


def test_one_console_per_tty_and_bad_ttys(lxc: Env, bb: str) -> None:
    with cli_on_a_terminal(lxc, "console", "-n", bb) as terminal:
        terminal.until(b"login: ")
        busy = lxc.run("console", "-n", bb)
        assert (busy.returncode, busy.stderr) == (
            1, "lxcflow console: tty 1 is in use by another console\n")
        detach(terminal)
    beyond = lxc.run("console", "-n", bb, "-t", "2")
    assert (beyond.returncode, beyond.stderr) == (
        2, "lxcflow console: container 'bb' has no tty 2: lxc.tty.max is 1\n")
    lxc.ok("stop", "-n", bb, "-k")
    stopped = lxc.run("console", "-n", bb)
    assert (stopped.returncode, stopped.stderr) == (
        1, "lxcflow console: container 'bb' is not running\n")


def test_a_session_outlives_the_daemon(lxc: Env, bb: str) -> None:
    with cli_on_a_terminal(lxc, "console", "-n", bb) as terminal:
        terminal.until(b"login: ")
        lxc.kill_daemon(signal.SIGKILL)
        terminal.type(b"nobody\n")  # busybox getty: the name, then login asks
        terminal.until(b"Password: ")
        detach(terminal)
    assert json.loads(lxc.ok("info", "-n", bb, "--json"))["state"] == "RUNNING"


def test_the_console_ends_with_the_container(lxc: Env, bb: str) -> None:
    with cli_on_a_terminal(lxc, "console", "-n", bb) as terminal:
        terminal.until(b"login: ")
        lxc.ok("stop", "-n", bb, "-k")
        assert terminal.wait() == 0


def test_the_log_is_capped_and_keeps_the_newest(lxc: Env) -> None:
    """A container sharing the host's root has no console: its output goes
    through a pipe to the keeper, which logs it the same way."""
    config = lxc.config("lxc.console.size = 4kB\nlxc.console.logfile = "
                        f"{lxc.base}/app.log\n")
    lxc.ok("create", "-n", "chatty", "-f", str(config))
    lxc.ok("start", "-n", "chatty", "--", "sh", "-c",
           "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo line $i; done; exec sleep 1000")
    log = lxc.base / "app.log"
    deadline = time.monotonic() + 15
    while b"line 2000\n" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.stat().st_size + Path(f"{log}.1").stat().st_size <= 4096
    assert lxc.ok("logs", "-n", "chatty", "--lines", "2") == "line 1999\nline 2000\n"
    everything = lxc.ok("logs", "-n", "chatty").splitlines()
    # the oldest went, what is kept runs without a gap to the newest
    first = int(everything[0].split()[1])
    assert first > 1
    assert everything == [f"line {n}" for n in range(first, 2001)]


def test_logs_follow_until_the_container_stops(lxc: Env, bb: str) -> None:
    follower = subprocess.Popen([sys.executable, "-m", "lxcflow", "logs", "-n", bb, "-f"],
                                env=lxc.env, stdout=subprocess.PIPE)
    assert follower.stdout is not None
    out = follower.stdout.fileno()
    seen = b""

    def until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 15
        while text not in seen and time.monotonic() < deadline:
            if select.select([out], [], [], 0.1)[0]:
                seen += os.read(out, 4096)
        assert text in seen, seen

    try:
        until(b"Please press Enter")
        inside(lxc, "sh", "-c", "echo written later > /dev/console")
        until(b"written later")
        assert seen.count(b"Please press Enter") == 1  # the file, then only what is new
        lxc.ok("stop", "-n", bb, "-k")
        assert follower.wait(timeout=15) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_without_autodev_the_trees_own_nodes_stay_on_disk(lxc: Env) -> None:
    """lxc.autodev = 0: /dev is the tree's own, on disk. The container's
    ttys are bound over the nodes it ships, never put in their place."""
    lxc.ok("create", "-n", "nd", "-t", "busybox")
    rootfs = lxc.paths.lxcpath / "nd" / "rootfs"
    with (lxc.paths.lxcpath / "nd" / "config").open("a") as f:
        f.write("lxc.autodev = 0\n")
    nodes = {"console": (5, 1), "ptmx": (5, 2), "tty1": (4, 1), "null": (1, 3)}
    for name, (major, minor) in nodes.items():
        os.mknod(rootfs / "dev" / name, 0o620 | stat.S_IFCHR, os.makedev(major, minor))
    lxc.ok("start", "-n", "nd")
    seen = lxc.ok("attach", "-n", "nd", "--", "stat", "-c", "%n %t:%T",
                  "/dev/console", "/dev/tty1").splitlines()
    assert seen == ["/dev/console 88:0", "/dev/tty1 88:1"]  # the container's own ptys
    lxc.ok("stop", "-n", "nd", "-k")
    for name, (major, minor) in nodes.items():
        st = os.lstat(rootfs / "dev" / name)
        assert stat.S_ISCHR(st.st_mode), name
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)
