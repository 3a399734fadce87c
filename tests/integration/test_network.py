"""Bridges on the real kernel through netlink (pyroute2), and the `net` commands.

Test bridges are named lxft<hex>, never get an uplink, take addresses from
198.18.0.0/15 only, and are removed even when a test fails.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from lxcflow import network
from lxcflow.errors import NetworkError, NotFound, UsageError
from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Fresh interface names; whatever of them exists at the end is removed."""
    made = [f"lxft{secrets.token_hex(4)}" for _ in range(3)]
    try:
        yield made
    finally:
        with IPRoute() as ipr:
            for name in made:
                for index in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=index)


def test_bridge_add_list_and_delete(names: list[str]) -> None:
    br = names[0]
    network.bridge_add(br, "198.18.40.1/24")
    assert Path(f"/sys/class/net/{br}/bridge/forward_delay").read_text().strip() == "0"
    assert int(Path(f"/sys/class/net/{br}/flags").read_text(), 16) & 0x1  # IFF_UP
    listed = {b["name"]: b for b in network.bridges()}
    assert listed[br]["ipv4"] == ["198.18.40.1/24"]
    assert listed[br]["ports"] == []  # no uplink unless named
    network.bridge_del(br)
    assert not exists(br)


def test_bad_requests_leave_nothing_behind(names: list[str]) -> None:
    br = names[0]
    with pytest.raises(UsageError, match=r"is not an interface name \(1-15 characters"):
        network.bridge_add("lxft-far-too-long-name")
    with pytest.raises(UsageError, match="'198.18.40.300/24' is not an IPv4 address with prefix"):
        network.bridge_add(br, "198.18.40.300/24")
    with pytest.raises(UsageError, match="'198.18.40.1' is not an IPv4 address with prefix"):
        network.bridge_add(br, "198.18.40.1")
    with pytest.raises(NotFound, match=f"interface {names[1]} does not exist"):
        network.bridge_add(br, uplink=names[1])
    assert not exists(br)
    with pytest.raises(UsageError, match="lo is not a bridge"):
        network.bridge_del("lo")
    assert exists("lo")
    with pytest.raises(NotFound, match=f"interface {br} does not exist"):
        network.bridge_del(br)
    network.bridge_add(br)
    with pytest.raises(NetworkError, match=f"interface {br} already exists"):
        network.bridge_add(br)


def test_a_bridge_with_ports_is_not_removed(names: list[str]) -> None:
    br, host_end, peer = names
    network.bridge_add(br)
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_end, kind="veth", peer=peer)
        ipr.link("set", index=ipr.link_lookup(ifname=host_end)[0],
                 master=ipr.link_lookup(ifname=br)[0])
    with pytest.raises(NetworkError, match=f"bridge {br} still has ports: {host_end}"):
        network.bridge_del(br)
    assert exists(br)
    assert {b["name"]: b for b in network.bridges()}[br]["ports"] == [host_end]


def test_net_commands_through_the_cli(lxc: Env, names: list[str]) -> None:
    br = names[0]
    lxc.ok("net", "bridge-add", br, "--ipv4", "198.18.41.1/24")
    listed = {b["name"]: b for b in json.loads(lxc.ok("net", "ls", "--json"))}
    assert listed[br]["ipv4"] == ["198.18.41.1/24"]
    table = lxc.ok("net", "ls").splitlines()
    assert table[0].split() == ["BRIDGE", "STATE", "IPV4", "PORTS"]
    assert any(line.split()[0] == br for line in table[1:])
    r = lxc.run("net", "bridge-add", br)
    assert (r.returncode, r.stderr.strip()) == (1, f"lxcflow net: interface {br} already exists")
    r = lxc.run("net", "bridge-del", "lo")
    assert (r.returncode, r.stderr.strip()) == (2, "lxcflow net: lo is not a bridge")
    r = lxc.run("net", "bridge-add", names[1], "--ipv4", "nonsense")
    assert r.returncode == 2
    assert "'nonsense' is not an IPv4 address with prefix" in r.stderr
    lxc.ok("net", "bridge-del", br)
    assert not exists(br)
