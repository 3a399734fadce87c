"""What each running container costs in keeper processes: lxcflow vs LXC.

lxcflow keeps one ``lxcflow-shim`` per container (plus the daemon for all of
them); LXC keeps one ``[lxc monitor]`` per container. Both sets run side by
side in one invocation, N idle containers each, and the script prints PSS
and private dirty memory from /proc/PID/smaps_rollup. Run as root:

    .venv/bin/python bench/keeper_memory.py [-n 100]

Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import LXC_CONFIG, stop_daemon

from lxcflow.client import Client
from lxcflow.paths import Paths


def rollup(pid: int) -> dict[str, int]:
    """kB figures from smaps_rollup (Pss, Private_Dirty, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":")
        out[key] = int(value.split()[0])
    return out


def summarize(label: str, pids: list[int]) -> dict[str, float]:
    rows = [rollup(p) for p in pids]
    n = len(rows)
    pss = sum(r["Pss"] for r in rows)
    dirty = sum(r["Private_Dirty"] for r in rows)
    print(f"{label:<28} n={n:<5} PSS total {pss / 1024:8.2f} MiB  per container "
          f"{pss / n:7.1f} KiB  private dirty per container {dirty / n:7.1f} KiB")
    return {"n": n, "pss_kib_total": pss, "pss_kib_each": pss / n, "dirty_kib_each": dirty / n}


def run_lxcflow(base: Path, n: int) -> tuple[dict[str, float], dict[str, int]]:
    paths = Paths(lxcpath=base / "lib", socket=base / "run" / "s.sock",
                  cgroup_parent=f"lxcflow-bench-{os.getpid()}")
    config = base / "config"
    config.write_text("lxc.uts.name = bench\n")
    names = [f"b{i}" for i in range(n)]
    with Client(paths) as client:
        try:
            for name in names:
                client.call("create", {"name": name, "config": str(config)})
                client.call("start", {"name": name, "command": ["sleep", "100000"]})
            time.sleep(0.5)
            shims = [
                json.loads((paths.rundir / "containers" / name / "state.json").read_text())[
                    "shim_pid"
                ]
                for name in names
            ]
            daemon = int((paths.rundir / "daemon.lock").read_text())
            result = summarize("lxcflow-shim", shims)
            return result, rollup(daemon)
        finally:
            for name in names:
                try:
                    client.call("destroy", {"name": name, "force": True})
                except Exception as e:  # report and keep cleaning
                    print(f"cleanup of {name}: {e}")
            stop_daemon(paths)


def run_lxc(base: Path, n: int) -> dict[str, float] | None:
    if shutil.which("lxc-start") is None:
        print("LXC not installed (apt-get install lxc): no side-by-side figures")
        return None
    config = base / "lxc.conf"
    config.write_text(LXC_CONFIG)
    lxcpath = base / "lxc"
    lxcpath.mkdir()
    names = [f"l{i}" for i in range(n)]
    try:
        for name in names:
            subprocess.run(["lxc-start", "-P", str(lxcpath), "-n", name, "-f", str(config),
                            "-d", "--", "sleep", "100000"], check=True)
        time.sleep(0.5)
        monitors = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"[lxc monitor] " + str(lxcpath).encode()):
                    monitors.append(int(entry.name))
        return summarize("[lxc monitor]", monitors)
    finally:
        for name in names:
            subprocess.run(["lxc-stop", "-P", str(lxcpath), "-n", name, "-k"],
                           capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="containers per system")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lxcflow-bench-"))
    try:
        ours, daemon = run_lxcflow(base, args.n)
        theirs = run_lxc(base, args.n)
        print(f"{'lxcflow daemon (all of them)':<28} PSS {daemon['Pss'] / 1024:.2f} MiB")
        if theirs:
            print(f"ratio lxcflow/LXC per container, PSS: "
                  f"{ours['pss_kib_each'] / theirs['pss_kib_each']:.2f}  private dirty: "
                  f"{ours['dirty_kib_each'] / theirs['dirty_kib_each']:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
