"""``lxcflow top`` in a real pseudo-terminal: what it draws is read back
through a terminal emulator (pyte), keys are typed at it, the window is
resized under it."""

from __future__ import annotations

import os
import select
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pyte

from tests.integration.conftest import Env, Terminal, cli_on_a_terminal, needs_root

pytestmark = needs_root


class Screen:
    """What a terminal of ``rows`` x ``columns`` shows of what top wrote."""

    def __init__(self, terminal: Terminal, rows: int, columns: int) -> None:
        self.terminal = terminal
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def until(self, done: Callable[[list[str]], bool], what: str, timeout: float = 15) -> list[str]:
        """Read what top draws until the screen satisfies ``done``."""
        deadline = time.monotonic() + timeout
        while not done(self.lines()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {what}:\n" +
                                     "\n".join(self.lines()))
            if select.select([self.terminal.master], [], [], 0.1)[0]:
                self.stream.feed(os.read(self.terminal.master, 65536))
        return self.lines()

    def resize(self, rows: int, columns: int) -> None:
        self.screen.resize(rows, columns)
        termios.tcsetwinsize(self.terminal.master, (rows, columns))


def rows_of(lines: list[str]) -> list[list[str]]:
    """The table's rows (after the title and the header), split into cells."""
    return [line.split() for line in lines[2:] if line.strip()]


def test_top_draws_sorts_resizes_and_quits_in_a_real_terminal(lxc: Env, tmp_path: Path) -> None:
    busy = tmp_path / "busy.sh"
    busy.write_text("while :; do :; done\n")
    for name, init in (("busy", f"sh {busy}"), ("idle", "sleep 1000"), ("off", "sleep 1000")):
        config = lxc.config(f"lxc.uts.name = {name}\nlxc.init.cmd = {init}\n", f"{name}.conf")
        lxc.ok("create", "-n", name, "-f", str(config))
    lxc.ok("start", "-n", "busy")
    lxc.ok("start", "-n", "idle")
    lxc.env["TERM"] = "xterm"
    with cli_on_a_terminal(lxc, "top", "-i", "0.3", size=(24, 100)) as terminal:
        screen = Screen(terminal, 24, 100)

        def busy_has_a_rate(lines: list[str]) -> bool:
            return any(r[:2] == ["busy", "RUNNING"] and r[3] != "-" for r in rows_of(lines))

        lines = screen.until(busy_has_a_rate, "a CPU rate for busy")
        assert lines[0].startswith("lxcflow top: 3 containers, 2 running; sorted by CPU v")
        assert lines[1].split() == ["NAME", "STATE", "HEALTH", "CPU%", "MEM", "PROCS", "RX/s",
                                    "TX/s", "RESTARTS", "FROZEN"]
        table = rows_of(lines)
        # busy spins a whole core: first by CPU, and nearly a core's worth
        assert [r[0] for r in table] == ["busy", "idle", "off"]
        assert float(table[0][3]) > 30.0, table
        assert table[1][:4] == ["idle", "RUNNING", "-", "0.0"]
        assert table[2] == ["off", "STOPPED", "-", "-", "-", "-", "-", "-", "0", "-"]

        terminal.type(b"n")  # by name, then by name the other way
        screen.until(lambda ls: "sorted by name ^" in ls[0], "the sort by name")
        terminal.type(b"n")
        lines = screen.until(lambda ls: "sorted by name v" in ls[0], "the reversed sort")
        assert [r[0] for r in rows_of(lines)] == ["off", "idle", "busy"]

        lxc.ok("freeze", "-n", "idle")
        screen.until(lambda ls: any(r[:2] == ["idle", "FROZEN"] for r in rows_of(ls)),
                     "idle frozen")

        screen.resize(8, 40)  # the columns that fit, the rows that fit
        lines = screen.until(lambda ls: ls[1].split() == ["NAME", "STATE", "CPU%", "MEM"],
                             "the narrow header")
        assert all(len(line) <= 40 for line in lines)
        screen.resize(2, 40)
        screen.until(lambda ls: ls[0] == "enlarge the terminal", "the plea to enlarge it")

        terminal.type(b"q")
        assert terminal.wait() == 0
        try:
            while select.select([terminal.master], [], [], 0.2)[0]:
                terminal.seen += os.read(terminal.master, 65536)
        except OSError:
            pass  # the terminal's last holder is gone
        assert b"Traceback" not in terminal.seen
    lxc.ok("unfreeze", "-n", "idle")


def test_top_without_a_terminal_or_with_a_bad_interval_says_so(lxc: Env) -> None:
    r = lxc.run("top")
    assert (r.returncode, r.stderr) == (
        2, "lxcflow top: top needs a terminal (for a script: ls -f, or info --json)\n")
    lxc.env["TERM"] = "xterm"
    with cli_on_a_terminal(lxc, "top", "-i", "0.01", size=(24, 80)) as terminal:
        assert terminal.wait() == 2
        seen = terminal.until(b"\n")
    assert b"lxcflow top: top's interval must be at least 0.1 s" in seen
    assert b"Traceback" not in seen
