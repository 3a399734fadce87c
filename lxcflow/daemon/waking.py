"""Wake on traffic: a frozen container thawed by the first packet sent to it.

For each veth of the container, a packet socket on its host end takes a
copy of what the host sends towards the container; a classic BPF filter in
the kernel lets through only unicast IP to the container's own addresses
(never ARP, IPv6 neighbour discovery, multicast or broadcast, so that the
chatter on a bridge wakes nothing), and the daemon sleeps on the sockets
until one turns readable: no polling. The packet itself is not lost: the
kernel queues it in the container's namespace while its processes are
frozen (a frozen listener's handshake even completes there), and they take
it once thawed.

The sockets are opened before the freeze is asked for, so that a packet
arriving while it is under way is not missed: it thaws the container as
soon as the freeze is confirmed.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence

import trio

from lxcflow.daemon.container import Container
from lxcflow.daemon.supervisor import Supervisor
from lxcflow.errors import LxcflowError
from lxcflow.runstate import Interface
from lxcflow.states import Actor, State

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
#: SKF_AD_OFF + SKF_AD_PKTTYPE: where classic BPF reads the packet's type
_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF
_LD_W, _LD_H, _LD_B = 0x20, 0x28, 0x30  # BPF_LD | size | BPF_ABS
_JEQ, _JGE, _JGT, _JSET = 0x15, 0x35, 0x25, 0x45  # BPF_JMP | op | BPF_K
_RET = 0x06
_ETH_DST, _ETH_TYPE = 0, 12
_IPV4_DST = 14 + 16
_IPV6_NEXT, _IPV6_DST, _ICMPV6_TYPE = 14 + 6, 14 + 24, 14 + 40
#: ICMPv6 router and neighbour discovery and redirects (RFC 4861): never a wake
_ND_TYPES = (133, 137)


def packet_filter(ipv4: Sequence[str], ipv6: Sequence[str]) -> bytes:
    """A classic BPF program (``struct sock_filter[]``) that accepts the
    frames a host end sends towards the container that are unicast IP to
    one of its addresses (to any, when it has none configured) and drops
    the rest. Addresses may carry a prefix length (``198.18.0.2/24``)."""
    v4 = [int(ipaddress.IPv4Interface(a).ip) for a in ipv4]
    v6 = [ipaddress.IPv6Interface(a).ip.packed for a in ipv6]
    code: list[tuple[int, str | int, str | int, int]] = []  # jumps name labels
    labels: dict[str, int] = {}

    def op(c: int, k: int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        code.append((c, jt, jf, k))

    def label(name: str) -> None:
        labels[name] = len(code)

    op(_LD_W, _PKTTYPE)
    op(_JEQ, PACKET_OUTGOING, 0, "drop")  # sent towards the container, not from it
    op(_LD_B, _ETH_DST)
    op(_JSET, 1, "drop", 0)  # the group bit: multicast and broadcast
    op(_LD_H, _ETH_TYPE)
    op(_JEQ, 0x0800, "ipv4", 0)
    op(_JEQ, 0x86DD, "ipv6", "drop")  # ARP and the rest
    label("ipv4")
    op(_LD_W, _IPV4_DST)
    for v4_address in v4:
        op(_JEQ, v4_address, "accept", 0)
    op(_RET, 0 if v4 else 0xFFFF)
    label("ipv6")
    op(_LD_B, _IPV6_NEXT)
    op(_JEQ, 58, 0, "ipv6-dst")  # ICMPv6: neighbour discovery is chatter
    op(_LD_B, _ICMPV6_TYPE)
    op(_JGE, _ND_TYPES[0], 0, "ipv6-dst")
    op(_JGT, _ND_TYPES[1], "ipv6-dst", "drop")
    label("ipv6-dst")
    for n, packed in enumerate(v6):
        for i, word in enumerate(struct.unpack("!4I", packed)):
            miss = f"v6-{n + 1}" if n + 1 < len(v6) else "drop"
            op(_LD_W, _IPV6_DST + 4 * i)
            op(_JEQ, word, "accept" if i == 3 else 0, miss)
        label(f"v6-{n + 1}")
    op(_RET, 0 if v6 else 0xFFFF)
    label("drop")
    op(_RET, 0)
    label("accept")
    op(_RET, 0xFFFF)

    def offset(at: int, to: str | int) -> int:
        if isinstance(to, int):
            return to
        jump = labels[to] - at - 1
        assert 0 <= jump < 256, "filter too long for a jump"
        return jump

    return b"".join(struct.pack("HBBI", c, offset(i, jt), offset(i, jf), k)
                    for i, (c, jt, jf, k) in enumerate(code))


def _attach(sock: socket.socket, program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


class TrafficListener:
    """Packet sockets on a container's host ends, filtered to traffic for it.

    Raises (on creation):
        OSError: a host end is gone, or packet sockets are not allowed.
    """

    def __init__(self, interfaces: Sequence[Interface]) -> None:
        self.sockets: list[socket.socket] = []
        try:
            for interface in interfaces:
                # Protocol 0 receives nothing until bound: the filter is in
                # place before the first frame can arrive.
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)
                self.sockets.append(sock)
                _attach(sock, packet_filter(interface.ipv4, interface.ipv6))
                sock.bind((interface.host, ETH_P_ALL))
        except BaseException:
            self.close()
            raise

    async def arrived(self) -> None:
        """Return once a packet for the container has been seen (at once if
        one came since the listener was made)."""
        async with trio.open_nursery() as nursery:
            for sock in self.sockets:
                nursery.start_soon(self._readable, sock, nursery.cancel_scope)

    @staticmethod
    async def _readable(sock: socket.socket, done: trio.CancelScope) -> None:
        await trio.lowlevel.wait_readable(sock)
        done.cancel()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


async def freeze_until_traffic(sup: Supervisor, c: Container, rule: str,
                               nursery: trio.Nursery) -> None:
    """Freeze ``c`` for the rule ``rule`` and, in ``nursery``, thaw it at the
    first packet sent towards it. A container with no veth is only frozen."""
    actor = Actor.of_rule(rule)
    run = c.run
    listener = _listen(c, run.interfaces if run is not None else ())
    try:
        await sup.freeze(c.name, by=actor)
    except BaseException:
        if listener is not None:
            await _close(listener)
        raise
    if listener is not None:
        nursery.start_soon(_thaw_at_first_packet, sup, c, actor, listener)


def rearm(sup: Supervisor, rules: Iterable[str], nursery: trio.Nursery) -> None:
    """Listen again for the containers that the rules named ``rules`` froze
    before this daemon started (a restarted daemon adopts them FROZEN)."""
    wanted = set(rules)
    for c in list(sup.containers.values()):
        by = c.frozen_by
        if (c.state is State.FROZEN and by is not None and by.rule in wanted
                and c.run is not None):
            listener = _listen(c, c.run.interfaces)
            if listener is not None:
                nursery.start_soon(_thaw_at_first_packet, sup, c, by, listener)


def _listen(c: Container, interfaces: Sequence[Interface]) -> TrafficListener | None:
    if not interfaces:
        c.log.warning("wake_on_traffic_without_veth")
        return None
    try:
        return TrafficListener(interfaces)
    except OSError as e:
        c.log.error("wake_on_traffic_unavailable", error=str(e))
        return None


async def _thaw_at_first_packet(sup: Supervisor, c: Container, actor: Actor,
                                listener: TrafficListener) -> None:
    run = c.run
    try:
        async with trio.open_nursery() as race:
            async def left_frozen() -> None:
                await c.wait_until(lambda: c.state is not State.FROZEN or c.run is not run)
                race.cancel_scope.cancel()

            race.start_soon(left_frozen)
            await listener.arrived()
            race.cancel_scope.cancel()
        if c.state is not State.FROZEN or c.run is not run:
            return  # thawed or stopped by someone else first
        try:
            await sup.unfreeze(c.name, by=actor, detail="woken by traffic")
        except LxcflowError as e:
            c.log.warning("wake_on_traffic_failed", rule=actor.rule, error=str(e))
    finally:
        await _close(listener)


async def _close(listener: TrafficListener) -> None:
    # Closing a packet socket waits for an RCU grace period (synchronize_net;
    # 5-16 ms measured here): after the thaw, and off the event loop.
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(listener.close)
