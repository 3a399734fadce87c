"""A real distribution's init in a container: Debian bookworm booting systemd
from a debootstrapped root file system, halted and killed as LXC does it.

The tests look inside with lxcflow attach.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root


def info(lxc: Env, name: str) -> dict:
    return json.loads(lxc.ok("info", "-n", name, "--json"))


def inside(lxc: Env, name: str, *command: str, timeout: float = 30) -> str:
    """What ``command`` prints (stdout and stderr), attached to the container."""
    done = subprocess.run(
        [sys.executable, "-m", "lxcflow", "attach", "-n", name, "--clear-env", "--", *command],
        env=lxc.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    return (done.stdout + done.stderr).strip()


def cgroup_dirs(lxc: Env, name: str) -> list[Path]:
    """The container's directories in every hierarchy, name=systemd included."""
    return sorted(Path("/sys/fs/cgroup").glob(f"*/{lxc.paths.cgroup_parent}/{name}"))


@pytest.fixture
def debian(lxc: Env, debian_rootfs: Path) -> str:
    config = lxc.config(
        f"lxc.rootfs.path = {debian_rootfs}\nlxc.uts.name = deb\nlxc.net.0.type = empty\n"
    )
    lxc.ok("create", "-n", "deb", "-f", str(config))
    return "deb"


def boot(lxc: Env, name: str) -> str:
    """Start the container's init and wait until systemd says booting is over."""
    lxc.ok("start", "-n", name)
    # --wait: systemctl blocks until the boot has finished, one way or
    # another; it needs systemd's own socket, which comes a moment after the
    # start (in /run inside the container, where no host inotify reaches).
    deadline = time.monotonic() + 30
    while True:
        state = inside(lxc, name, "systemctl", "is-system-running", "--wait")
        if "Failed to connect to bus" not in state or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_systemd_boots_and_halts_cleanly(lxc: Env, debian: str, debian_rootfs: Path) -> None:
    host_name = socket.gethostname()
    assert boot(lxc, debian) in ("running", "degraded")
    assert inside(lxc, debian, "systemd-detect-virt") == "lxc"
    # systemd names the machine after the tree's /etc/hostname, in its own
    # uts namespace: the host's name stays.
    assert inside(lxc, debian, "hostname") == (debian_rootfs / "etc/hostname").read_text().strip()
    assert socket.gethostname() == host_name
    assert any("/init.scope" in str(d) for d in Path("/sys/fs/cgroup").glob(
        f"*/{lxc.paths.cgroup_parent}/{debian}/*")), "systemd made no cgroups of its own"

    t0 = time.monotonic()
    lxc.ok("stop", "-n", debian, "-t", "60")
    took = time.monotonic() - t0

    # systemd took SIGRTMIN+3, shut down and called reboot(2) to halt, which
    # ends a pid namespace's init with SIGINT; a SIGKILL would mean it never
    # understood the request and waited out the grace.
    assert info(lxc, debian)["last_exit"] == {"code": None, "signal": 2}
    assert took < 30, f"the halt took {took:.1f} s"
    assert cgroup_dirs(lxc, debian) == []


def test_a_killed_systemd_container_leaves_no_cgroups(lxc: Env, debian: str) -> None:
    assert boot(lxc, debian) in ("running", "degraded")
    lxc.ok("stop", "-n", debian, "-k")
    assert info(lxc, debian)["last_exit"] == {"code": None, "signal": 9}
    assert cgroup_dirs(lxc, debian) == []
    # And it boots again from the same tree.
    assert boot(lxc, debian) in ("running", "degraded")
    lxc.ok("stop", "-n", debian, "-t", "60")
    assert cgroup_dirs(lxc, debian) == []
