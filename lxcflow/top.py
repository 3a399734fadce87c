"""``lxcflow top``: one row per container, redrawn at every snapshot the
daemon sends on one open request (``top``), sortable, ``q`` quits.

curses draws it: it is in the standard library (no dependency for one
screen), knows every terminal terminfo knows, and redraws only what
changed. Only this command imports it. The arithmetic (rates from two
snapshots, sorting, which columns fit) is :class:`View`, pure.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lxcflow.client import Client
from lxcflow.errors import UsageError

Row = dict[str, Any]


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _seconds(s: float) -> str:
    if s < 1:
        return "-"
    if s < 120:
        return f"{s:.0f}s"
    return f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.1f}h"


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # what a row holds it under, and what sorting by it reads
    title: str
    width: int
    show: Callable[[Any], str]
    sort_key: str  # the key that sorts by it
    numeric: bool = True


COLUMNS = (
    Column("name", "NAME", 0, str, "n", numeric=False),
    Column("state", "STATE", 8, str, "s", numeric=False),
    Column("health", "HEALTH", 9, lambda v: v or "-", "h", numeric=False),
    Column("cpu", "CPU%", 6, lambda v: "-" if v is None else f"{v:.1f}", "c"),
    Column("memory", "MEM", 7, _bytes, "m"),
    Column("processes", "PROCS", 5, lambda v: "-" if v is None else str(v), "p"),
    Column("rx", "RX/s", 7, _bytes, "x"),
    Column("tx", "TX/s", 7, _bytes, "x"),
    Column("restarts", "RESTARTS", 8, str, "r"),
    Column("frozen", "FROZEN", 6, _seconds, "f"),
)
#: the order columns are given up in as the terminal narrows (name and
#: state always stay)
DROP_ORDER = ("frozen", "tx", "rx", "processes", "restarts", "health", "memory", "cpu")
NAME_MIN = 8
SORT_NAMES = {"n": "name", "s": "state", "h": "health", "c": "CPU", "m": "memory",
              "p": "processes", "x": "network", "r": "restarts", "f": "frozen"}


class View:
    """The table: the last two snapshots make the rates."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.sort = "c"
        self.descending = True
        self._last: tuple[int, dict[str, Row]] | None = None

    def update(self, snapshot: dict[str, Any]) -> None:
        """Take the daemon's next snapshot."""
        now = snapshot["time_ns"]
        before = self._last[1] if self._last else {}
        seconds = (now - self._last[0]) / 1e9 if self._last else 0.0
        rows = []
        for c in snapshot["containers"]:
            old = before.get(c["name"])

            def rate(key: str, scale: float = 1.0, c: Row = c, old: Row | None = old) -> Any:
                if old is None or seconds <= 0 or c[key] is None or old[key] is None:
                    return None
                return max(0.0, (c[key] - old[key]) / seconds * scale)

            rows.append({
                "name": c["name"], "state": c["state"], "health": c["health"],
                "cpu": rate("cpu_ns", 100 / 1e9), "memory": c["memory_bytes"],
                "processes": c["processes"], "rx": rate("rx_bytes"), "tx": rate("tx_bytes"),
                "restarts": c["restarts"], "frozen": c["frozen_s"],
            })
        self._last = (now, {c["name"]: c for c in snapshot["containers"]})
        self.rows = rows

    def key(self, ch: str) -> None:
        """A sort key: that column (again: the other way round)."""
        if ch not in SORT_NAMES:
            return
        if ch == self.sort:
            self.descending = not self.descending
        else:
            self.sort, self.descending = ch, ch not in ("n", "s", "h")

    def sorted_rows(self) -> list[Row]:
        def value(row: Row) -> Any:
            if self.sort == "x":
                return (row["rx"] or 0) + (row["tx"] or 0)
            column = next(c for c in COLUMNS if c.sort_key == self.sort)
            v = row[column.key]
            return (v is not None, v if v is not None else 0) if column.numeric else (v or "")

        by_name = sorted(self.rows, key=lambda r: r["name"])
        return sorted(by_name, key=value, reverse=self.descending)

    def columns(self, width: int) -> list[Column]:
        """The columns that fit in ``width`` cells."""
        shown = list(COLUMNS)
        for drop in DROP_ORDER:
            if NAME_MIN + sum(c.width + 1 for c in shown[1:]) <= width:
                break
            shown = [c for c in shown if c.key != drop]
        return shown

    def lines(self, width: int, height: int) -> list[str]:
        """The screen as text: a title, the header, as many rows as fit."""
        if width < NAME_MIN + 10 or height < 3:
            return ["enlarge the terminal"[:width]][:height]
        running = sum(r["state"] == "RUNNING" for r in self.rows)
        order = "v" if self.descending else "^"
        title = (f"lxcflow top: {len(self.rows)} containers, {running} running; sorted by "
                 f"{SORT_NAMES[self.sort]} {order}; q quits, "
                 + "/".join(SORT_NAMES) + " sort")
        shown = self.columns(width)
        name_width = max(NAME_MIN, width - sum(c.width + 1 for c in shown[1:]))

        def line(cells: list[str]) -> str:
            out = [cells[0][:name_width].ljust(name_width)]
            out += [cell[:c.width].rjust(c.width) if c.numeric else cell[:c.width].ljust(c.width)
                    for c, cell in zip(shown[1:], cells[1:], strict=True)]
            return " ".join(out)[:width]

        out = [title[:width], line([c.title for c in shown])]
        for row in self.sorted_rows()[: height - 2]:
            out.append(line([c.show(row[c.key]) for c in shown]))
        return out


def run(client: Client, interval: float) -> int:
    """Draw until ``q`` (or ^C)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("top needs a terminal (for a script: ls -f, or info --json)")
    import curses

    stream = client.stream("top", {"interval": interval})
    try:
        return int(curses.wrapper(_loop, client, stream))
    except KeyboardInterrupt:
        return 0


def _loop(screen: Any, client: Client, stream: Iterator[Any]) -> int:
    import curses

    try:
        curses.curs_set(0)
    except curses.error:
        pass  # a terminal that cannot hide its cursor
    screen.nodelay(True)
    view = View()
    view.update(next(stream))
    while True:
        _draw(screen, view)
        ready = [client.fileno()] if client.reply_buffered() else select.select(
            [client.fileno(), sys.stdin], [], [])[0]
        while (ch := screen.getch()) != -1:
            if ch in (ord("q"), ord("Q")):
                return 0
            if 0 < ch < 256:
                view.key(chr(ch))
        if client.fileno() in ready:
            view.update(next(stream))


def _draw(screen: Any, view: View) -> None:
    import curses

    height, width = screen.getmaxyx()
    screen.erase()
    # The bottom-right cell cannot be written without an error: one short.
    for y, text in enumerate(view.lines(width - 1, height)):
        screen.addstr(y, 0, text, curses.A_REVERSE if y == 1 else curses.A_NORMAL)
    screen.refresh()
