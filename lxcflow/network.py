"""Bridges over netlink: the one module that talks to the kernel's network stack.

pyroute2 0.9 runs its own event loop and an ``IPRoute`` belongs to the
thread that made it, so every job here is a plain function that opens,
uses and closes its own ``IPRoute``; the supervisor runs each in a worker
thread (``trio.to_thread.run_sync``). Netlink errors come back as
lxcflow errors that say what was wrong.

A bridge made here never gets an uplink unless asked for one by name:
enslaving a physical interface is a deliberate, separate choice.

A container's network namespace is made here before its shim starts: its
interfaces (veth pairs, the host end on a bridge) are named, addressed and
routed inside it, and the shim joins it, so the container's command never
runs before its network is up. The namespace is held by a file descriptor
only (no /run/netns mount): it goes, with every veth in it, when the
container's last process does.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lxcflow import validate
from lxcflow.config import NET_TYPES_STARTED, NetConfig
from lxcflow.errors import NetworkError, NotFound, UsageError
from lxcflow.runstate import Interface
from lxcflow.runtime.netns import inside as netns_inside
from lxcflow.runtime.netns import unshare

IFA_F_NODAD = 0x02


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
    validate.interface_name(name)
    address = ipaddress.IPv4Interface(validate.ip_interface(ipv4)) if ipv4 is not None else None
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
    validate.interface_name(name)
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


# ------------------------------------------------------------------ containers


@dataclass(frozen=True, slots=True)
class Prepared:
    """A ready network namespace (an fd the caller must close) and its interfaces."""

    netns: int
    interfaces: tuple[Interface, ...]


def new_netns() -> int:
    """A new, empty network namespace as an fd: no mount, no process holds it."""
    return unshare()


def _host_name(net: NetConfig, ipr: IPRoute) -> str:
    if net.veth_pair is not None:
        if ipr.link_lookup(ifname=net.veth_pair):
            raise NetworkError(f"lxc.net.{net.index}.veth.pair: interface {net.veth_pair} "
                               "already exists")
        return net.veth_pair
    while True:
        name = f"veth{secrets.token_hex(4)[:7]}"  # as LXC's vethXXXXXXX
        if not ipr.link_lookup(ifname=name):
            return name


def _hwaddr(template: str) -> str:
    """LXC's 'x' digits are random; a random first byte is kept unicast."""
    out = "".join(random.choice("0123456789abcdef") if c in "xX" else c for c in template)
    first = int(out[:2], 16) & 0xFE
    return f"{first:02x}{out[2:]}"


def _bridge(ipr: IPRoute, net: NetConfig) -> int | None:
    if net.link is None:
        return None
    found = ipr.link_lookup(ifname=net.link)
    if not found:
        raise NotFound(f"lxc.net.{net.index}.link: bridge {net.link} does not exist")
    if _kind(ipr.get_links(found[0])[0]) != "bridge":
        raise UsageError(f"lxc.net.{net.index}.link: {net.link} is not a bridge")
    return int(found[0])


def _gateway(ipr: IPRoute, net: NetConfig, bridge: int | None, version: int) -> str | None:
    """``auto`` is the bridge's own first address, as in LXC."""
    wanted = net.ipv4_gateway if version == 4 else net.ipv6_gateway
    if wanted != "auto":
        return wanted
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    addresses = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=family, index=bridge)
                 if a["scope"] == 0] if bridge is not None else []  # global scope only
    if not addresses:
        raise NetworkError(f"lxc.net.{net.index}.ipv{version}.gateway = auto: bridge "
                           f"{net.link} has no IPv{version} address")
    return str(addresses[0])


def prepare(networks: Sequence[NetConfig], netns: int | None = None) -> Prepared:
    """Make the namespace a container will join, with its interfaces up
    (``netns``: in this namespace, an unprivileged container's, which the
    caller still closes; :attr:`Prepared.netns` is then a copy of the fd).

    Raises:
        NotFound, UsageError, NetworkError: naming the key and the reason;
            nothing is left behind.
    """
    for net in networks:
        if net.type not in NET_TYPES_STARTED:
            raise UsageError(f"lxc.net.{net.index}.type = {net.type} is not supported yet "
                             f"({', '.join(sorted(NET_TYPES_STARTED))} are)")
    fd = new_netns() if netns is None else os.dup(netns)
    made: list[str] = []
    try:
        plans = []
        named = {n.name for n in networks if n.name}
        # Unnamed interfaces take the lowest ethN no other one is named.
        free = (f"eth{k}" for k in range(len(networks) + len(named)) if f"eth{k}" not in named)
        with IPRoute() as ipr:
            for net in (n for n in networks if n.type == "veth"):
                bridge = _bridge(ipr, net)
                host, inside = _host_name(net, ipr), net.name or next(free)
                try:
                    ipr.link("add", ifname=host, kind="veth",
                             peer={"ifname": inside, "net_ns_fd": fd})
                except NetlinkError as e:
                    raise _failed(e, f"lxc.net.{net.index}: cannot create veth {host}") from None
                made.append(host)
                index = _index(ipr, host)
                try:
                    if net.mtu is not None:
                        ipr.link("set", index=index, mtu=net.mtu)
                    if bridge is not None:
                        ipr.link("set", index=index, master=bridge)
                    ipr.link("set", index=index, state="up")
                except NetlinkError as e:
                    raise _failed(e, f"lxc.net.{net.index}: cannot set up {host}") from None
                plans.append((net, inside, _gateway(ipr, net, bridge, 4),
                              _gateway(ipr, net, bridge, 6)))
        with netns_inside(fd), IPRoute() as inner:
            inner.link("set", index=_index(inner, "lo"), state="up")
            for net, inside, gateway, gateway6 in plans:
                _configure_inside(inner, net, inside, gateway, gateway6)
        interfaces = tuple(
            Interface(name=inside, host=host, link=net.link, ipv4=net.ipv4, ipv6=net.ipv6)
            for (net, inside, _, _), host in zip(plans, made, strict=True)
        )
        return Prepared(fd, interfaces)
    except NetlinkError as e:  # one not already put in words above
        os.close(fd)
        release(made)
        raise _failed(e, "cannot set up the container's network") from None
    except BaseException:
        os.close(fd)  # the namespace, and the peers in it, go with it
        release(made)
        raise


def _configure_inside(
    ipr: IPRoute, net: NetConfig, name: str, gateway: str | None, gateway6: str | None
) -> None:
    index = _index(ipr, name)
    try:
        if net.hwaddr is not None:
            ipr.link("set", index=index, address=_hwaddr(net.hwaddr))
        if net.mtu is not None:
            ipr.link("set", index=index, mtu=net.mtu)
        for text in net.ipv4:
            address = ipaddress.IPv4Interface(text)
            ipr.addr("add", index=index, address=str(address.ip),
                     prefixlen=address.network.prefixlen)
        for text in net.ipv6:
            address6 = ipaddress.IPv6Interface(text)
            # No duplicate address detection: the address is usable (and
            # routable through) at once, as the command starts right away.
            ipr.addr("add", index=index, address=str(address6.ip),
                     prefixlen=address6.network.prefixlen, family=socket.AF_INET6,
                     flags=IFA_F_NODAD)
        if "up" in net.flags:
            ipr.link("set", index=index, state="up")
            if gateway is not None:
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway)
            if gateway6 is not None:
                ipr.route("add", dst="::/0", gateway=gateway6, family=socket.AF_INET6)
    except NetlinkError as e:
        raise _failed(e, f"lxc.net.{net.index}: cannot configure {name}") from None


def release(hosts: Sequence[str]) -> None:
    """Remove host ends that are still there (a namespace's end is not
    immediate: its veths are destroyed in the background)."""
    with IPRoute() as ipr:
        for host in hosts:
            for index in ipr.link_lookup(ifname=host):
                try:
                    ipr.link("del", index=index)
                except NetlinkError as e:
                    if e.code != errno.ENODEV:
                        raise _failed(e, f"cannot remove {host}") from None

