"""Wake on traffic: a container its idle rule froze is thawed by the first
packet sent to it, from a client in another namespace on a test bridge, and
the bridge's chatter (ARP, broadcast, multicast) wakes nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.integration.conftest import Env, needs_root
from tests.integration.test_health import run_daemon

pytestmark = needs_root

SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen()
while True:
    c, _ = s.accept()
    c.recv(100)
    c.sendall(b"hello from svc\\n")
    c.close()
"""

# ARP (a raw frame), a UDP broadcast and a multicast, each towards the frozen one.
CHATTER = """
import socket, struct
me, svc = socket.inet_aton("198.18.70.30"), socket.inet_aton("198.18.70.20")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
u.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, me)
for _ in range(3):
    u.sendto(b"x", ("198.18.70.255", 9))
    u.sendto(b"x", ("224.0.0.1", 9))
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
p.bind(("eth0", 0))
mac = p.getsockname()[4]
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + me + bytes(6) + svc
for _ in range(3):
    p.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
"""

CLIENT = """
import socket
c = socket.create_connection(("198.18.70.20", 8080), timeout=10)
c.sendall(b"ping")
print(c.recv(100).decode(), end="")
"""


def state(lxc: Env, name: str) -> str:
    return json.loads(lxc.ok("info", "-n", name, "--json"))["state"]


def test_a_frozen_service_wakes_for_a_tcp_client_and_not_for_chatter(
    lxc: Env, bridge: str, tmp_path: Path
) -> None:
    lxc.kill_daemon(signal.SIGTERM)  # the bridge fixture's: this test's has rules
    rules = lxc.base / "rules"
    rules.mkdir()
    (rules / "sleepy.toml").write_text("""
[[rule]]
name = "sleepy"
containers = "svc"
sample = { cpu_below = "5%", for = "1s", every = "100ms" }
wake_on = "traffic"
actions = ["freeze"]
""")
    (tmp_path / "server.py").write_text(SERVER)
    net = (f"lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\nlxc.net.0.flags = up\n"
           "lxc.net.0.ipv4.address = 198.18.70.{}/24\n")
    svc = lxc.config(f"lxc.init.cmd = python3 {tmp_path / 'server.py'}\n" + net.format(20),
                     "svc.conf")
    client = lxc.config(net.format(30), "client.conf")
    daemon = run_daemon(lxc, rules)
    try:
        lxc.ok("create", "-n", "svc", "-f", str(svc))
        lxc.ok("start", "-n", "svc")
        lxc.ok("wait", "-n", "svc", "-s", "FROZEN", "-t", "20")

        r = lxc.run("execute", "-n", "chatter", "-f", str(client), "--", "python3", "-c",
                    CHATTER)
        assert r.returncode == 0, r.stderr
        time.sleep(0.5)
        assert state(lxc, "svc") == "FROZEN"

        r = lxc.run("execute", "-n", "client", "-f", str(client), "--", "python3", "-c", CLIENT)
        assert (r.returncode, r.stdout) == (0, "hello from svc\n"), r.stderr
        events = [json.loads(line) for line in
                  lxc.ok("monitor", "--since", "0", "--no-follow", "--json").splitlines()]
        thaws = [e for e in events if e["container"] == "svc" and e["from"] == "FROZEN"]
        assert thaws, events
        assert (thaws[0]["to"], thaws[0]["cause"], thaws[0]["detail"]) == (
            "RUNNING", "rule:sleepy", "woken by traffic")
        # Idle again, it freezes again; a daemon restarted meanwhile listens
        # again for what the rule froze, and the next request wakes it.
        lxc.ok("wait", "-n", "svc", "-s", "FROZEN", "-t", "20")
        daemon.terminate()
        daemon.wait(timeout=30)
        daemon = run_daemon(lxc, rules)
        assert state(lxc, "svc") == "FROZEN"
        r = lxc.run("execute", "-n", "client", "-f", str(client), "--", "python3", "-c", CLIENT)
        assert (r.returncode, r.stdout) == (0, "hello from svc\n"), r.stderr
        lxc.ok("stop", "-n", "svc", "-k")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
