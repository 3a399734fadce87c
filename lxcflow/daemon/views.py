"""What ``info``, ``ls``, ``ps`` and ``top`` reply, and what metrics read: a
container as plain data."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from lxcflow.cgroups import ContainerCgroup
from lxcflow.config.idmap import host_root
from lxcflow.daemon.container import Container
from lxcflow.errors import CgroupError, LxcflowError
from lxcflow.runtime import apparmor, proc
from lxcflow.states import State

T = TypeVar("T")

#: seconds of reading (cgroupfs, sysfs) between two turns of the loop: an
#: event passes several tasks on its way out, and waits a slice at each
READ_SLICE = 0.001


def info(c: Container) -> dict[str, Any]:
    """What ``lxc-info`` shows, as a dict."""
    run = c.run
    interfaces = run.interfaces if run else ()
    out: dict[str, Any] = {
        **summary(c),
        "cpu_ns": None,
        "memory_bytes": None,
        "interfaces": [
            {"name": i.name, "host": i.host, "link": i.link, "ipv4": list(i.ipv4),
             "ipv6": list(i.ipv6), "host_counters": host_counters(i.host)}
            for i in interfaces
        ],
        "frozen_since_ns": c.frozen_since_ns,
        "frozen_by": c.frozen_by,
        "frozen_total_ns": int(c.frozen_seconds() * 1e9),
        "health_check": c.health.to_dict() if c.health else None,
    }
    if c.config is not None and c.config.idmap:
        uid, gid = host_root(c.config.idmap)
        out["userns"] = {"host_uid": uid, "host_gid": gid,
                         "idmap": [str(m) for m in c.config.idmap]}
    if c.config is not None and run is not None:
        try:
            out["apparmor"] = apparmor.decide_for(c.config).describe(c.config.apparmor_profile)
        except LxcflowError as e:  # unloaded since the start
            out["apparmor"] = str(e)
    found = figures(c)
    if found is not None:
        out["cpu_ns"], out["memory_bytes"] = found.cpu_ns, found.memory_bytes
    return out


def summary(c: Container) -> dict[str, Any]:
    """One row of ``ls``."""
    run = c.run
    last = c.last_exit
    return {
        "name": c.name,
        "state": c.state.value,
        "pid": run.init_pid if run else None,
        "ephemeral": c.ephemeral,
        "ipv4": [ip for i in (run.interfaces if run else ()) for ip in i.ipv4],
        "last_exit": {"code": last.code, "signal": last.signal} if last else None,
        "health": c.health.status if c.health else None,
    }


@dataclass(frozen=True, slots=True)
class Figures:
    """What a running container uses now, as ``metrics`` and ``top`` show it."""

    cpu_ns: int
    memory_bytes: int | None
    working_set_bytes: int | None  # memory minus inactive file pages (cAdvisor's)
    processes: int
    #: (its name inside, bytes it received, bytes it sent) per interface
    interfaces: tuple[tuple[str, int, int], ...]


def figures(c: Container) -> Figures | None:
    """The container's figures; None when it is not running or is going
    away as they are read."""
    run = c.run
    if run is None or run.cgroup is None or c.state is State.STOPPED:
        return None
    cg = run.cgroup
    try:
        memory = cg.memory_bytes()
        working = (max(0, memory - (cg.inactive_file_bytes() or 0))
                   if memory is not None else None)
        cpu, count = cg.cpu_usage_ns(), cg.process_count()
    except (CgroupError, LxcflowError, OSError):
        return None
    interfaces = []
    for interface in run.interfaces:
        counters = host_counters(interface.host)
        if counters is not None:
            # The host end's transmit is what the container received.
            interfaces.append((interface.name, counters["tx_bytes"], counters["rx_bytes"]))
    return Figures(cpu, memory, working, count, tuple(interfaces))


async def read_each(containers: Iterable[Container], read: Callable[[Container], T]) -> list[T]:
    """``read`` of every container, giving the loop back after each slice of
    :data:`READ_SLICE` seconds: a transition that happens meanwhile waits
    for one slice, not for them all."""
    out = []
    until = time.perf_counter() + READ_SLICE
    for c in containers:
        out.append(read(c))
        if time.perf_counter() > until:
            await trio.lowlevel.checkpoint()
            until = time.perf_counter() + READ_SLICE
    return out


def top_row(c: Container) -> dict[str, Any]:
    """One row of ``top``: the summary's state and health, the figures, the books."""
    found = figures(c)
    return {
        "name": c.name, "state": c.state.value,
        "health": c.health.status if c.health else None,
        "cpu_ns": found.cpu_ns if found else None,
        "memory_bytes": found.working_set_bytes if found else None,
        "processes": found.processes if found else None,
        "rx_bytes": sum(i[1] for i in found.interfaces) if found and found.interfaces else None,
        "tx_bytes": sum(i[2] for i in found.interfaces) if found and found.interfaces else None,
        "restarts": c.restarts,
        "frozen_s": c.frozen_seconds(),
    }


def processes(cgroup: ContainerCgroup) -> list[dict[str, Any]]:
    """What ``ps`` lists: every process of a container's cgroup."""
    found = (proc.process_info(pid) for pid in sorted(cgroup.pids()))
    return [{"pid": p.pid, "ns_pid": p.ns_pid, "command": p.command} for p in found if p]


def host_counters(host: str) -> dict[str, int] | None:
    """rx/tx bytes and packets of a host-side interface (None once it is gone);
    from sysfs, so ``info`` needs no netlink."""
    base = Path("/sys/class/net", host, "statistics")
    try:
        return {key: int((base / key).read_text())
                for key in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")}
    except (OSError, ValueError):
        return None
