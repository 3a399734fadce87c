"""What every benchmark operation works with (:class:`Bench`), and how one is timed."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import Daemon, Monitor, run
from lxc_side import Lxc
from report import Check, Operation

from lxcflow.client import Client

LXCFLOW_CLI = str(Path(sys.executable).parent / "lxcflow")
TRUE = ["/bin/true"]


def in_parallel(fn: Callable[[str], object], names: list[str], workers: int) -> float:
    """Seconds to run ``fn(name)`` for all names, ``workers`` at a time; the
    first error is raised."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(fn, name) for name in names]:
            future.result()
    return time.perf_counter() - t0


def ratio_check(op: Operation, ours: str, theirs: str, limit: float) -> Check:
    """The target ``ours / theirs <= limit``, on medians."""
    return Check(f"{ours} / {theirs}, median", op.median_ratio(ours, theirs) or 0.0, limit, "x")


def timed(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    """Seconds ``fn(*args, **kwargs)`` took."""
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


class Bench:
    """What every operation works with: the daemon, a persistent client on
    its socket, a monitor of its events, LXC's side, the sizes of this run."""

    def __init__(self, base: Path, daemon: Daemon, lxc: Lxc | None, size: dict[str, Any]):
        self.base = base
        self.daemon = daemon
        self.lxc = lxc
        self.size = size
        self.client = Client(daemon.paths, spawn=False)
        self.monitor = Monitor(daemon.paths)
        self.devnull = os.open(os.devnull, os.O_RDWR)
        # A script, not ``sh -c '...'``: lxc.init.cmd does not honour quotes.
        (base / "busy.sh").write_text("while :; do :; done\n")
        self.busy = ["sh", str(base / "busy.sh")]

    def close(self) -> None:
        self.monitor.close()
        self.client.close()
        os.close(self.devnull)

    def call(self, op: str, **args: Any) -> Any:
        return self.client.call(op, args)

    def cli(self, *argv: str) -> None:
        run([LXCFLOW_CLI, "--no-spawn", *argv], env=self.daemon.env)

    def create(self, name: str, init: list[str] | None = None) -> None:
        """Define ``name`` on both sides alike: the host's root, an empty
        network namespace (lo only), an init if given."""
        text = f"lxc.uts.name = {name}\nlxc.net.0.type = empty\n"
        if init:
            text += f"lxc.init.cmd = {shlex.join(init)}\n"
        config = self.base / f"{name}.conf"
        config.write_text(text)
        self.call("create", name=name, config=str(config))
        if self.lxc:
            self.lxc.define(name, init)
