"""Before and after: two checkouts of lxcflow measured side by side, in one run.

Run as root:

    .venv/bin/python bench/trees.py OLD_TREE NEW_TREE [--n 60]

Each tree's own daemon runs (``TREE/.venv/bin/python -m lxcflow daemon``, in
a temp dir of its own with its own cgroup parent, lxcflow-bench-<hex>, no
rules, no hooks), with one container each (the host's root, an empty
network namespace, ``sleep 100000`` as its init). After one cycle each that
is not counted (warm-up), one loop alternates old, new, old, new, ``--n``
times; a cycle is, on one persistent socket client as bench/suite.py
measures them: start until RUNNING, freeze until FROZEN, unfreeze until
RUNNING, the CLI's ``info -n`` as a new process (``TREE/.venv/bin/lxcflow``,
the tree's installed launcher), stop -k until STOPPED. Both daemons are
driven by this checkout's client, so only the daemons (and, for ``info``,
the CLIs) differ.

Prints each series' n, median, p90 and p99, then per operation: the median
old, the median new, new/old, and whether that is within +-10 % (the issue's
"no regression" bar, for start, stop -k, freeze and info; unfreeze is shown
too). Figures, not assertions: the machine is shared. Everything it makes
(containers, daemons, cgroups, the temp dir) is removed at the end, also on
failure or ^C.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from common import IDLE, Daemon, run, summary, summary_line

from lxcflow.client import Client

NAME = "tr"
#: (key, label) in the order of a cycle
OPERATIONS = (
    ("start", "start until RUNNING (socket)"),
    ("freeze", "freeze until FROZEN (socket)"),
    ("unfreeze", "unfreeze until RUNNING (socket)"),
    ("info", "lxcflow info -n (CLI, a new process)"),
    ("stop", "stop -k until STOPPED (socket)"),
)
#: the operations the issue's bar is about
JUDGED = ("start", "stop", "freeze", "info")
TOLERANCE = 0.10


@dataclass
class Tree:
    """One checkout: its daemon, a client on that daemon's socket, its samples."""

    label: str
    root: Path
    daemon: Daemon
    client: Client | None = None
    samples: dict[str, list[float]] = field(
        default_factory=lambda: {key: [] for key, _ in OPERATIONS})

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.root / ".venv" / "bin" / "lxcflow"

    def call(self, op: str, **args: Any) -> Any:
        assert self.client is not None
        return self.client.call(op, args)

    def info_cli(self) -> None:
        run([str(self.cli), "--no-spawn", "info", "-n", NAME], self.daemon.env)


def timed(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    """Seconds ``fn(*args, **kwargs)`` took."""
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def cycle(t: Tree, record: bool) -> None:
    """start, freeze, unfreeze, info, stop -k of ``t``'s container, each timed."""
    took = {
        "start": timed(t.call, "start", name=NAME),
        "freeze": timed(t.call, "freeze", name=NAME),
        "unfreeze": timed(t.call, "unfreeze", name=NAME),
        "info": timed(t.info_cli),
        "stop": timed(t.call, "stop", name=NAME, kill=True),
    }
    if record:
        for key, seconds in took.items():
            t.samples[key].append(seconds)


def revision(root: Path) -> str:
    """The tree's commit, +dirty if its tracked files differ (never takes git's locks:
    others may be working in it)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, env=env, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               env=env, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return head + ("+dirty" if dirty else "")


def check_tree(t: Tree) -> None:
    """The tree has a venv and a launcher, and its python imports its own lxcflow
    from here (``python -m`` puts the working directory first on sys.path)."""
    for path in (t.python, t.cli):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"bench/trees.py: {path} is missing (make setup in {t.root})")
    found = subprocess.run(
        [str(t.python), "-c", "import lxcflow; print(lxcflow.__file__)"],
        capture_output=True, text=True, env=t.daemon.env,
    )
    where = Path(found.stdout.strip()).resolve() if found.returncode == 0 else None
    if where is None or not where.is_relative_to(t.root.resolve()):
        raise SystemExit(f"bench/trees.py: {t.python} imports lxcflow from "
                         f"{where or found.stderr.strip()[-300:]}, not from {t.root}")


def verdict(ratio: float) -> str:
    if abs(ratio - 1) <= TOLERANCE:
        return "within ±10 %"
    return "OUTSIDE ±10 % " + ("(new faster)" if ratio < 1 else "(new slower)")


def print_figures(trees: list[Tree]) -> None:
    for key, label in OPERATIONS:
        for t in trees:
            st = summary(t.samples[key])
            if st["n"]:
                print(summary_line(f"{label}, {t.label}", st))
    old, new = trees
    print(f"\n{'operation':<40} {'median old':>12} {'median new':>12} {'new/old':>8}")
    for key, label in OPERATIONS:
        a, b = summary(old.samples[key]), summary(new.samples[key])
        if not a["n"] or not b["n"]:
            continue
        ratio = b["median_ms"] / a["median_ms"]
        judged = verdict(ratio) if key in JUDGED else "(not part of the bar)"
        print(f"{label:<40} {a['median_ms']:9.3f} ms {b['median_ms']:9.3f} ms "
              f"{ratio:8.3f}  {judged}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as ^C does


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, metavar="OLD_TREE", help="the checkout before")
    parser.add_argument("new", type=Path, metavar="NEW_TREE", help="the checkout after")
    parser.add_argument("--n", type=int, default=60, help="cycles of each tree (default 60)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/trees.py: needs root (namespaces, cgroups)", file=sys.stderr)
        return 2
    if args.n < 1:
        parser.error("--n must be at least 1")
    signal.signal(signal.SIGTERM, _interrupt)
    # Each daemon finds its own tree's shim, not one named in our environment.
    os.environ.pop("LXCFLOW_SHIM", None)
    roots = [args.old.resolve(), args.new.resolve()]
    base = Path(tempfile.mkdtemp(prefix="lxcflow-trees-"))
    # `python -m lxcflow` imports the lxcflow of its working directory first:
    # in an empty one, each tree's python finds its own tree's package.
    os.chdir(base)
    empty = base / "no-rules"
    empty.mkdir()
    config = base / f"{NAME}.conf"
    config.write_text(f"lxc.uts.name = {NAME}\nlxc.net.0.type = empty\n"
                      f"lxc.init.cmd = {shlex.join(IDLE)}\n")
    trees = [Tree(label, root, Daemon(base, label, empty, python=str(root / ".venv/bin/python")))
             for label, root in zip(("old", "new"), roots, strict=True)]
    try:
        for t in trees:
            check_tree(t)
            print(f"{t.label}: {t.root} ({revision(t.root)})")
        for t in trees:
            t.daemon.start()
            t.client = Client(t.daemon.paths, spawn=False)
            t.call("create", name=NAME, config=str(config))
            cycle(t, record=False)  # warm-up: first imports, first cgroup writes
        print(f"{args.n} cycles of each, interleaved old, new, old, new, ...\n")
        for _ in range(args.n):
            for t in trees:
                cycle(t, record=True)
        print_figures(trees)
        return 0
    finally:
        # A second ^C must not leave daemons, containers or cgroups behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for t in trees:
            if t.client is not None:
                t.client.close()
            try:
                t.daemon.clean_up(empty)
            except Exception as e:  # the other tree is still to be cleaned up
                print(f"warning: cleaning up the {t.label} daemon: {e}", file=sys.stderr)
        os.chdir("/")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # main has cleaned up by now
        print("bench/trees.py: interrupted; everything it made is removed", file=sys.stderr)
        sys.exit(130)
