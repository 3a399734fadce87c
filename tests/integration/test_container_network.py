"""Containers on bridges: veth pairs made, named, addressed and routed before
the command runs; bad network settings roll the start back completely."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

# Inside, over netlink (the host's /sys is shared here, so it shows the host's):
# the interfaces, addresses and routes.
LINKS = "ip -o link show | awk -F': ' '{split($2, n, \"@\"); print n[1]}' | sort"
SHOW = (LINKS + "; ip -4 -o addr show | awk '{print $2, $4}'; ip -4 route show default; "
        "ip -6 -o addr show scope global | awk '{print $2, $4}'; ip -6 route show default; "
        "ip -o link show eth0 | grep -o 'mtu [0-9]*'; ip -o link show eth0 | "
        "grep -o 'link/ether [0-9a-f:]*'")


def host_veths() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("veth")}


def test_two_interfaces_addressed_and_routed_before_the_command(lxc: Env, bridge: str) -> None:
    config = lxc.config(
        "lxc.uts.name = two\n"
        f"lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\nlxc.net.0.flags = up\n"
        "lxc.net.0.ipv4.address = 198.18.70.20/24\nlxc.net.0.ipv4.gateway = auto\n"
        "lxc.net.0.hwaddr = 02:16:3e:xx:xx:xx\nlxc.net.0.mtu = 1400\n"
        "lxc.net.0.ipv6.address = 2001:db8:70::20/64\nlxc.net.0.ipv6.gateway = 2001:db8:70::1\n"
        f"lxc.net.1.type = veth\nlxc.net.1.link = {bridge}\nlxc.net.1.flags = up\n"
        "lxc.net.1.name = data0\nlxc.net.1.ipv4.address = 198.18.71.20/24\n"
        "lxc.net.1.veth.pair = lxftpair0\n"
    )
    before = host_veths()
    r = lxc.run("execute", "-n", "two", "-f", str(config), "--", "sh", "-c", SHOW)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["data0", "eth0", "lo"]
    assert "eth0 198.18.70.20/24" in lines
    assert "data0 198.18.71.20/24" in lines
    assert "lo 127.0.0.1/8" in lines
    # gateway auto: the bridge's own address
    assert any(line.startswith("default via 198.18.70.1 dev eth0") for line in lines), lines
    assert "eth0 2001:db8:70::20/64" in lines
    assert any(line.startswith("default via 2001:db8:70::1 dev eth0") for line in lines), lines
    assert lines[-2] == "mtu 1400"
    assert lines[-1].startswith("link/ether 02:16:3e:")
    # Gone with the container: the named host end and the generated one.
    assert not Path("/sys/class/net/lxftpair0").exists()
    assert host_veths() == before


def test_empty_gives_only_loopback_and_none_the_hosts_network(lxc: Env) -> None:
    empty = lxc.config("lxc.net.0.type = empty\n", "empty.conf")
    r = lxc.run("execute", "-n", "e", "-f", str(empty), "--", "sh", "-c",
                LINKS + "; ip -o link show lo | grep -o '<[A-Z,_]*>'")
    assert (r.returncode, r.stdout.split()[0]) == (0, "lo")
    assert "UP" in r.stdout.split()[1].strip("<>").split(","), r.stdout  # as LXC leaves it
    none = lxc.config("lxc.net.0.type = none\n", "none.conf")
    r = lxc.run("execute", "-n", "n", "-f", str(none), "--", "sh", "-c", LINKS)
    assert r.returncode == 0
    assert sorted(r.stdout.split()) == sorted(p.name for p in Path("/sys/class/net").iterdir())


def test_bad_network_rolls_the_start_back(lxc: Env, bridge: str) -> None:
    before = host_veths()
    missing = lxc.config("lxc.net.0.type = veth\nlxc.net.0.link = lxftnope\n", "m.conf")
    lxc.ok("create", "-n", "m", "-f", str(missing))
    r = lxc.run("start", "-n", "m", "--", "sleep", "100")
    assert r.returncode == 1
    assert r.stderr.strip() == ("lxcflow start: container 'm' failed to start: "
                                "lxc.net.0.link: bridge lxftnope does not exist")
    not_bridge = lxc.config("lxc.net.0.type = veth\nlxc.net.0.link = lo\n", "nb.conf")
    r = lxc.run("execute", "-n", "nb", "-f", str(not_bridge), "--", "true")
    assert r.returncode == 1
    assert "lxc.net.0.link: lo is not a bridge" in r.stderr
    macvlan = lxc.config("lxc.net.0.type = macvlan\nlxc.net.0.link = lo\n", "mv.conf")
    r = lxc.run("execute", "-n", "mv", "-f", str(macvlan), "--", "true")
    assert "lxc.net.0.type = macvlan is not supported yet" in r.stderr
    events = [json.loads(line) for line in
              lxc.ok("monitor", "-n", "^m$", "--since", "0", "--no-follow", "--json").splitlines()]
    assert [e["to"] for e in events] == ["STARTING", "ABORTING", "STOPPED"]
    assert host_veths() == before
    assert [d for d in Path("/sys/fs/cgroup").glob(f"*/{lxc.paths.cgroup_parent}/*")
            if d.is_dir()] == []


def test_an_address_in_use_is_refused(lxc: Env, bridge: str) -> None:
    config = lxc.config(f"lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\n"
                        "lxc.net.0.ipv4.address = 198.18.70.30/24\n")
    lxc.ok("create", "-n", "a", "-f", str(config))
    lxc.ok("create", "-n", "b", "-f", str(config))
    lxc.ok("start", "-n", "a", "--", "sleep", "100")
    r = lxc.run("start", "-n", "b", "--", "sleep", "100")
    assert r.returncode == 1
    assert r.stderr.strip() == ("lxcflow start: container 'b' failed to start: "
                                "address 198.18.70.30/24 already used by a")
    info = json.loads(lxc.ok("info", "-n", "a", "--json"))
    assert info["ipv4"] == ["198.18.70.30/24"]
    lxc.ok("stop", "-n", "a", "-k")
    lxc.ok("start", "-n", "b", "--", "sleep", "100")  # free again
    lxc.ok("stop", "-n", "b", "-k")


def test_a_new_daemon_knows_the_network_of_what_it_adopts(lxc: Env, bridge: str) -> None:
    config = lxc.config(f"lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\n"
                        "lxc.net.0.ipv4.address = 198.18.70.40/24\n")
    lxc.ok("create", "-n", "a", "-f", str(config))
    lxc.ok("start", "-n", "a", "--", "sleep", "100")
    host = json.loads(lxc.ok("info", "-n", "a", "--json"))["interfaces"][0]["host"]
    lxc.kill_daemon(signal.SIGKILL)
    info = json.loads(lxc.ok("info", "-n", "a", "--json"))  # a new daemon adopts it
    assert info["state"] == "RUNNING"
    assert info["ipv4"] == ["198.18.70.40/24"]
    assert info["interfaces"][0]["host"] == host
    assert Path(f"/sys/class/net/{host}/master").resolve().name == bridge
    lxc.ok("stop", "-n", "a", "-k")
    assert not Path(f"/sys/class/net/{host}").exists()


def test_failed_starts_leak_no_namespace_and_unnamed_interfaces_fit_around_named(
    lxc: Env, bridge: str
) -> None:
    config = lxc.config(f"lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\n"
                        f"lxc.net.1.type = veth\nlxc.net.1.link = {bridge}\n"
                        "lxc.net.1.name = eth0\n")
    r = lxc.run("execute", "-n", "names", "-f", str(config), "--", "sh", "-c", LINKS)
    assert (r.returncode, r.stdout.split()) == (0, ["eth0", "eth1", "lo"])
    pid = lxc.daemon_pid()
    assert pid is not None

    def held() -> list[str]:
        return sorted(os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()
                      if os.readlink(fd).startswith("net:"))

    before, veths = held(), host_veths()
    for _ in range(3):  # the command cannot run: the shim fails after the network is up
        r = lxc.run("execute", "-n", "names", "-f", str(config), "--", "/nonexistent")
        assert r.returncode == 1
        assert "cannot execute /nonexistent" in r.stderr
    # A mount entry only the spec builder can reject: refused before any network is made.
    bad_mount = lxc.config(config.read_text() + "lxc.mount.entry = /tmp mnt none rw 0 0\n",
                           "badmount.conf")
    r = lxc.run("execute", "-n", "names", "-f", str(bad_mount), "--", "true")
    assert r.returncode == 1, r.stderr
    assert held() == before
    assert host_veths() == veths
