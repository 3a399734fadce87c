"""Bridges over netlink: the one module that talks to the kernel's network stack.

pyroute2 0.9 runs its own event loop and an ``IPRoute`` belongs to the
thread that made it, so every job here is a plain function that opens,
uses and closes its own ``IPRoute``; the supervisor runs each in a worker
thread (``trio.to_thread.run_sync``). Netlink errors come back as
lxcflow errors that say what was wrong.

A bridge made here never gets an uplink unless asked for one by name:
enslaving a physical interface is a deliberate, separate choice.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lxcflow.errors import NetworkError, NotFound, UsageError

#: interface names are at most this long (IFNAMSIZ - 1)
IFNAMSIZ = 15


def check_ifname(name: str, what: str = "interface") -> str:
    """Return ``name`` if the kernel would take it as an interface name."""
    if not name or len(name) > IFNAMSIZ:
        raise UsageError(f"{what} name {name!r} must be 1 to {IFNAMSIZ} characters")
    if name in (".", "..") or any(c in name for c in "/: \t\n") or not name.isprintable():
        raise UsageError(f"{what} name {name!r} may not contain '/', ':' or spaces")
    return name


def parse_ipv4(text: str) -> ipaddress.IPv4Interface:
    """``198.18.0.1/24`` -> an interface address (a prefix length is required)."""
    try:
        if "/" not in text:
            raise ValueError("no prefix length")
        return ipaddress.IPv4Interface(text)
    except ValueError as e:
        raise UsageError(f"bad IPv4 address {text!r} (want ADDRESS/PREFIXLEN): {e}") from None


def _kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NotFound(f"interface {name} does not exist")
    return int(found[0])


def _failed(e: NetlinkError, what: str) -> NetworkError:
    reason = {
        errno.EEXIST: "it already exists", errno.EPERM: "not permitted (root?)",
        errno.EBUSY: "it is busy", errno.EADDRINUSE: "the address is in use",
    }.get(e.code, str(e))
    return NetworkError(f"{what}: {reason}")


def bridge_add(name: str, ipv4: str | None = None, uplink: str | None = None) -> None:
    """Create bridge ``name`` (forward delay 0, up), with an address if given,
    and enslave ``uplink`` only when it is named. Nothing is left half-made."""
    check_ifname(name, "bridge")
    address = parse_ipv4(ipv4) if ipv4 is not None else None
    with IPRoute() as ipr:
        if ipr.link_lookup(ifname=name):
            raise NetworkError(f"interface {name} already exists")
        up_index = _index(ipr, uplink) if uplink is not None else None
        try:
            ipr.link("add", ifname=name, kind="bridge", br_forward_delay=0)
        except NetlinkError as e:
            raise _failed(e, f"cannot create bridge {name}") from None
        try:
            index = _index(ipr, name)
            if address is not None:
                ipr.addr("add", index=index, address=str(address.ip),
                         prefixlen=address.network.prefixlen)
            if up_index is not None:
                ipr.link("set", index=up_index, master=index)
            ipr.link("set", index=index, state="up")
        except NetlinkError as e:
            ipr.link("del", ifname=name)
            raise _failed(e, f"cannot set up bridge {name}") from None


def bridge_del(name: str) -> None:
    """Remove bridge ``name``; refused for anything that is not a bridge, and
    for a bridge that still has ports (containers or an uplink on it)."""
    check_ifname(name, "bridge")
    with IPRoute() as ipr:
        index = _index(ipr, name)
        link = ipr.get_links(index)[0]
        if _kind(link) != "bridge":
            raise UsageError(f"{name} is not a bridge")
        ports = [p.get_attr("IFLA_IFNAME") for p in ipr.get_links() if
                 p.get_attr("IFLA_MASTER") == index]
        if ports:
            raise NetworkError(f"bridge {name} still has ports: {', '.join(sorted(ports))}")
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            raise _failed(e, f"cannot remove bridge {name}") from None


def bridges() -> list[dict[str, Any]]:
    """Every bridge on the host: name, state, IPv4 addresses, ports."""
    with IPRoute() as ipr:
        links = ipr.get_links()
        out = []
        for link in links:
            if _kind(link) != "bridge":
                continue
            index = link["index"]
            addresses = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                         for a in ipr.get_addr(family=2, index=index)]
            out.append({
                "name": link.get_attr("IFLA_IFNAME"),
                "state": link.get_attr("IFLA_OPERSTATE"),
                "ipv4": addresses,
                "ports": sorted(p.get_attr("IFLA_IFNAME") for p in links
                                if p.get_attr("IFLA_MASTER") == index),
            })
        return sorted(out, key=lambda b: b["name"])
