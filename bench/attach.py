"""11. attach -- /bin/true into a running container, beside lxc-attach.

Targets (the issue's): through the socket at most half of lxc-attach; the
CLI at most the bare interpreter's start plus the socket figure plus 3 ms,
since a Python CLI cannot beat a C tool per call. nsenter entering the same
namespaces is the floor.
"""

from __future__ import annotations

import sys

from common import IDLE, run
from report import FLOOR, LXC, LXCFLOW, Check, Operation
from rig import TRUE, Bench, timed


def op_attach(b: Bench) -> Operation:
    op = Operation("attach", "11. attach -- /bin/true, to its exit")
    nsenter = op.add("floor: nsenter -a /bin/true", FLOOR)
    python = op.add("floor: python -I -S -c pass", FLOOR)
    sock, cli = op.add("lxcflow socket", LXCFLOW), op.add("lxcflow CLI", LXCFLOW)
    theirs = op.add("lxc-attach", LXC) if b.lxc else None
    b.create("at", IDLE)
    init = b.call("start", name="at")["pid"]
    if b.lxc:
        run(b.lxc.argv("start", "at", "-d"))
    request = {"name": "at", "command": TRUE, "cwd": "/", "env": {}}

    def via_socket() -> None:
        *_, result = b.client.stream("attach", request, fds=(b.devnull,) * 3)
        if result["exit_code"] != 0:
            raise RuntimeError(f"attach via the socket: {result}")

    try:
        for _ in range(b.size["n"]):
            nsenter.samples_s.append(timed(run, ["nsenter", "-t", str(init), "-a", *TRUE]))
            python.samples_s.append(timed(run, [sys.executable, "-I", "-S", "-c", "pass"]))
            sock.samples_s.append(timed(via_socket))
            cli.samples_s.append(timed(b.cli, "attach", "-n", "at", "--", *TRUE))
            if b.lxc and theirs:
                theirs.samples_s.append(timed(run, b.lxc.argv("attach", "at", "--", *TRUE)))
    finally:
        b.call("stop", name="at", kill=True)
        if b.lxc:
            run(b.lxc.argv("stop", "at", "-k"))
    median = {s.label: s.stats()["median_ms"] for s in (python, sock, cli)}
    over = median[cli.label] - median[python.label] - median[sock.label]
    op.checks = [Check("lxcflow CLI - (python floor + socket), median", over, 3.0, "ms")]
    op.pairs = [(sock.label, nsenter.label)]
    if theirs:
        op.pairs += [(sock.label, theirs.label), (cli.label, theirs.label)]
        op.checks.append(Check(f"{sock.label} / {theirs.label}, median",
                               op.median_ratio(sock.label, theirs.label) or 0.0, 0.5, "x"))
    return op
