"""``wait -n HOST:NAME`` and ``ls --fleet``, answered from the fleet's mirror."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from lxcflow.daemon.fleet.view import Entry, FleetView
from lxcflow.errors import OperationTimeout
from lxcflow.states import State

if TYPE_CHECKING:
    from lxcflow.daemon.fleet.link import Fleet


async def wait(
    view: FleetView,
    keys: list[tuple[str, str]],
    wanted: frozenset[State],
    *,
    deadline: float,
    healthy: bool = False,
) -> dict[str, str | None]:
    """Return once every ``(host, container)`` is in one of ``wanted`` (and
    healthy, with ``healthy``), with the states reached. Names that do not
    exist yet are waited for. Watching starts before the mirror is read and
    every change is applied in order, so a state that held only for an
    instant counts.

    Raises:
        OperationTimeout: not all there by ``deadline`` (trio's clock).
    """
    names = {state.value for state in wanted}

    def reached(entry: Entry | None) -> bool:
        if entry is None:
            return False
        return entry.healthy if healthy else entry.state in names

    with view.watch() as changes:
        current = {key: view.entries.get(key) for key in keys}
        with trio.move_on_at(deadline):
            while not all(reached(current[key]) for key in keys):
                change = await changes.receive()
                if change.key in current:
                    current[change.key] = change.entry
    if not all(reached(current[key]) for key in keys):
        what = "RUNNING and healthy" if healthy else "|".join(sorted(names))
        waiting = ", ".join(f"{h}:{n}" for (h, n), e in current.items() if not reached(e))
        raise OperationTimeout(f"waiting for {waiting} to be {what}")
    return {f"{h}:{n}": e.state if e else None for (h, n), e in current.items()}


def fleet_list(fleet: Fleet, local_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``ls --fleet``: this host's containers as they are, the others' as the
    bucket last had them, and each host's heartbeat (``lost`` after 15 s)."""
    view, now = fleet.view, time.time_ns()
    hosts: dict[str, dict[str, Any]] = {fleet.host: {"lost": False, "heartbeat_ns": now,
                                                    "this_host": True}}
    for host, seen in view.heartbeats.items():
        if host != fleet.host:
            hosts[host] = {"lost": view.lost(host, now), "heartbeat_ns": seen,
                           "this_host": False}
    rows = [{**row, "host": fleet.host} for row in local_rows]
    for (host, _), entry in sorted(view.entries.items()):
        if host == fleet.host:
            continue
        hosts.setdefault(host, {"lost": True, "heartbeat_ns": None, "this_host": False})
        rows.append({**entry.value, "host": host, "name": entry.name})
    rows.sort(key=lambda r: (r["host"], r["name"]))
    return {"host": fleet.host, "connected": fleet.status.connected, "hosts": hosts,
            "containers": rows}
