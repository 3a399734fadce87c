"""top's arithmetic: rates from two snapshots, sorting, what fits a terminal."""

from __future__ import annotations

from typing import Any

from lxcflow.top import View


def row(name: str, *, cpu_ns: int | None = 0, rx: int | None = None, state: str = "RUNNING",
        memory: int | None = 1 << 20, restarts: int = 0, health: str | None = None) -> Any:
    return {"name": name, "state": state, "health": health, "cpu_ns": cpu_ns,
            "memory_bytes": memory, "processes": 1, "rx_bytes": rx, "tx_bytes": rx,
            "restarts": restarts, "frozen_s": 0.0}


def snapshot(t: float, *rows: Any) -> dict[str, Any]:
    return {"time_ns": int(t * 1e9), "containers": list(rows)}


def test_rates_come_from_two_snapshots() -> None:
    view = View()
    view.update(snapshot(10, row("a", cpu_ns=0, rx=1000), row("b", cpu_ns=0)))
    assert all(r["cpu"] is None for r in view.rows)  # one snapshot: no rate yet
    view.update(snapshot(12, row("a", cpu_ns=1_000_000_000, rx=5096), row("b", cpu_ns=None),
                         row("new", cpu_ns=7)))
    rates = {r["name"]: (r["cpu"], r["rx"]) for r in view.rows}
    assert rates == {"a": (50.0, 2048.0), "b": (None, None), "new": (None, None)}


def test_sorting_by_a_key_and_again_the_other_way() -> None:
    view = View()
    view.update(snapshot(0, row("b", cpu_ns=0), row("a", cpu_ns=0), row("c", cpu_ns=0)))
    view.update(snapshot(1, row("b", cpu_ns=10**8), row("a", cpu_ns=9 * 10**8),
                         row("c", cpu_ns=None, state="STOPPED", restarts=4)))
    assert [r["name"] for r in view.sorted_rows()] == ["a", "b", "c"]  # CPU, highest first
    view.key("n")
    assert [r["name"] for r in view.sorted_rows()] == ["a", "b", "c"]
    view.key("n")
    assert [r["name"] for r in view.sorted_rows()] == ["c", "b", "a"]
    view.key("r")
    assert [r["name"] for r in view.sorted_rows()][0] == "c"
    view.key("?")  # not a sort key: nothing changes
    assert view.sort == "r"


def test_a_narrow_terminal_keeps_name_state_cpu_and_memory_and_a_tiny_one_says_so() -> None:
    view = View()
    view.update(snapshot(0, *(row(f"web-{i}") for i in range(30))))
    wide = view.lines(120, 40)
    assert wide[1].split() == ["NAME", "STATE", "HEALTH", "CPU%", "MEM", "PROCS", "RX/s",
                               "TX/s", "RESTARTS", "FROZEN"]
    assert len(wide) == 32
    assert all(len(line) <= 120 for line in wide)
    narrow = view.lines(40, 10)
    assert narrow[1].split() == ["NAME", "STATE", "CPU%", "MEM"]
    assert len(narrow) == 10  # rows cut to fit
    assert all(len(line) <= 40 for line in narrow)
    assert narrow[2].split()[:2] == ["web-0", "RUNNING"]
    assert view.lines(12, 5) == ["enlarge the t"[:12]]
    assert view.lines(80, 2) == ["enlarge the terminal"]
    assert view.lines(80, 0) == []
