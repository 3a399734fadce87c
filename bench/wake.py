"""19. Wake on traffic: a request to a frozen service, beside the same
request to it running.

A service container (busybox httpd on a test bridge, 198.18.70.20) under a
rule that freezes it after 300 ms idle with ``wake_on = "traffic"``, and a
client container on the same bridge (198.18.70.30). This process makes
each request from a socket it made in the client's network namespace: the
time from connect() (the SYN leaves) to the first byte of the reply. Each
round: wait for the rule to freeze the service, one request (the frozen
one), then at once the same request again (it runs now). No proxy: the
first packet towards the frozen container thaws it.
"""

from __future__ import annotations

import secrets
import time

from common import tcp_socket_of
from report import LXCFLOW, Check, Operation
from rig import Bench

SERVICE, CLIENT = "198.18.70.20", "198.18.70.30"
PORT = 8080
RULE = """[[rule]]
name = "wake-bench"
containers = "wk-svc"
sample = { cpu_below = "20%", for = "300ms", every = "50ms" }
wake_on = "traffic"
actions = ["freeze"]
"""


def _first_byte(client_pid: int) -> float:
    """Seconds from connect() to the reply's first byte, from the client's namespace."""
    with tcp_socket_of(client_pid) as sock:
        sock.settimeout(10)
        t0 = time.perf_counter()
        sock.connect((SERVICE, PORT))
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        if not sock.recv(1):
            raise RuntimeError("the service closed without a reply")
        return time.perf_counter() - t0


def _rule_loaded(b: Bench, name: str | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(r["name"] == name for r in b.call("rules")["rules"]) == (name is not None):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the daemon did not {'load' if name else 'drop'} the wake rule")


def op_wake(b: Bench) -> Operation:
    op = Operation("wake", "19. wake on traffic: SYN -> first byte of the reply")
    frozen = op.add("lxcflow: request to a frozen service", LXCFLOW)
    running = op.add("lxcflow: the same request, running", LXCFLOW)
    bridge = f"lxwk{secrets.token_hex(3)}"
    www = b.base / "wake-www"
    www.mkdir()
    (www / "index.html").write_text("awake\n")
    net = (f"lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\nlxc.net.0.flags = up\n"
           "lxc.net.0.ipv4.address = {}/24\n")
    httpd = f"lxc.init.cmd = /bin/busybox httpd -f -p {PORT} -h {www}\n"
    configs = {
        "wk-svc": httpd + net.format(SERVICE),
        "wk-cli": "lxc.init.cmd = sleep 100000\n" + net.format(CLIENT),
    }
    rules = b.daemon.rules / "wake.toml"
    b.call("bridge_add", name=bridge, ipv4="198.18.70.1/24")
    try:
        for name, text in configs.items():
            (b.base / f"{name}.conf").write_text(text)
            b.call("create", name=name, config=str(b.base / f"{name}.conf"))
            b.call("start", name=name)
        client_pid = b.call("info", name="wk-cli")["pid"]
        rules.write_text(RULE)
        _rule_loaded(b, "wake-bench")
        for _ in range(b.size["wakes"]):
            mark = b.monitor.mark()
            b.monitor.wait_for("wk-svc", "FROZEN", mark)
            frozen.samples_s.append(_first_byte(client_pid))
            running.samples_s.append(_first_byte(client_pid))
    finally:
        rules.unlink(missing_ok=True)
        _rule_loaded(b, None)
        for name in configs:
            try:
                b.call("stop", name=name, kill=True)
            except Exception:  # noqa: BLE001 (never started, or already stopped)
                pass
            b.call("destroy", name=name)
        b.call("bridge_del", name=bridge)
    op.pairs = [(frozen.label, running.label)]
    op.checks = [Check("request to a frozen service, SYN -> first byte, median",
                       frozen.stats()["median_ms"], 20.0, "ms")]
    op.note = ("busybox httpd on a test bridge; the client's socket is made in the client "
               "container's network namespace; no proxy")
    return op
