"""lxcflow pointed at an lxcpath where LXC made (and runs) a container: it
lists it, refuses to start what LXC runs, and runs LXC's config unchanged
once LXC has let go."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxcflow.runtime import lxc as lxc_side
from tests.integration.conftest import Env, needs_root

pytestmark = [needs_root, pytest.mark.skipif(shutil.which("lxc-start") is None,
                                             reason="needs LXC (make bench installs it)")]

# As LXC writes one for a container on the host's root (no console without a
# tty, its own /proc, an empty network namespace).
LXC_CONFIG = ("lxc.uts.name = lx\nlxc.console.path = none\nlxc.mount.auto = proc:mixed\n"
              "lxc.net.0.type = empty\nlxc.init.cmd = sleep 100000\n")


def _pivots() -> set[Path]:
    root = Path("/sys/fs/cgroup")
    return set(root.glob("*/lxc.pivot")) | set(root.glob("lxc.pivot"))


@pytest.fixture(autouse=True)
def no_lxc_pivot_left() -> Iterator[None]:
    """lxc-start moves itself into an lxc.pivot cgroup in every hierarchy and
    never removes it: the ones this test caused go again."""
    before = _pivots()
    yield
    for pivot in sorted(_pivots() - before):
        pivot.rmdir()  # empty once LXC's processes are gone


@pytest.fixture
def lxc_running(lxc: Env) -> Iterator[str]:
    """Container ``lx``, defined as LXC defines it in the test's lxcpath and
    started by LXC, before any lxcflow daemon looks there; stopped after."""
    (lxc.paths.lxcpath / "lx").mkdir(parents=True)
    (lxc.paths.lxcpath / "lx" / "config").write_text(LXC_CONFIG)
    argv = ["-P", str(lxc.paths.lxcpath), "-n", "lx"]
    subprocess.run(["lxc-start", *argv, "-d"], check=True, capture_output=True)
    try:
        yield "lx"
    finally:
        subprocess.run(["lxc-stop", *argv, "-k"], capture_output=True)


def test_what_lxc_runs_is_listed_and_not_started_twice(lxc: Env, lxc_running: str) -> None:
    assert lxc_side.runs(lxc.paths.lxcpath, lxc_running)
    assert not lxc_side.runs(lxc.paths.lxcpath, "nope")
    assert lxc.ok("ls").split() == ["lx"]
    r = lxc.run("start", "-n", "lx")
    assert (r.returncode, r.stderr) == (
        1, "lxcflow start: container 'lx' is running under LXC: stop it with lxc-stop first\n")
    subprocess.run(["lxc-stop", "-P", str(lxc.paths.lxcpath), "-n", "lx", "-k"], check=True,
                   capture_output=True)
    assert not lxc_side.runs(lxc.paths.lxcpath, "lx")
    lxc.ok("start", "-n", "lx")  # LXC's config file, unchanged
    info = json.loads(lxc.ok("info", "-n", "lx", "--json"))
    assert info["state"] == "RUNNING"
    assert Path(f"/proc/{info['pid']}/cmdline").read_bytes() == b"sleep\x00100000\x00"
    assert (lxc.paths.lxcpath / "lx" / "config").read_text() == LXC_CONFIG
    lxc.ok("stop", "-n", "lx", "-k")


def test_a_long_lxcpath_hashes_the_socket_name_as_lxc_does(lxc: Env) -> None:
    """Past 106 bytes LXC names the socket by a hash: found the same way."""
    lxcpath = lxc.base / ("p" * 110) / "lib"
    (lxcpath / "lx").mkdir(parents=True)
    (lxcpath / "lx" / "config").write_text(LXC_CONFIG)
    assert lxc_side.command_socket(lxcpath, "lx").startswith(b"\0lxc/")
    argv = ["-P", str(lxcpath), "-n", "lx"]
    subprocess.run(["lxc-start", *argv, "-d"], check=True, capture_output=True)
    try:
        assert lxc_side.runs(lxcpath, "lx")
    finally:
        subprocess.run(["lxc-stop", *argv, "-k"], check=True, capture_output=True)
    assert not lxc_side.runs(lxcpath, "lx")
    assert lxc_side.command_socket(Path("/var/lib/lxc"), "web") == b"\0/var/lib/lxc/web/command"
