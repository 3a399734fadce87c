"""A container made by LXC's own ``lxc-create -t debian`` (its config
includes debian.common.conf and common.conf: lxc.cap.drop, both device
lists, LXC's common.seccomp, lxc.apparmor.profile = generated,
lxc.mount.auto, a veth on lxcbr0) runs under lxcflow from LXC's lxcpath,
unchanged, with the confinement LXC would give it and systemd up.

LXC's template caches its download in /var/cache/lxc (the first run here
takes a few minutes, later ones seconds). The bridge its config names is
made by the test (no uplink, an address from 198.18.0.0/15) unless the host
has one of that name, in which case the test's own bridge stands in.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

TEMPLATE = Path("/usr/share/lxc/templates/lxc-debian")


@pytest.fixture(scope="module")
def lxc_made() -> Iterator[Path]:
    """LXC's lxcpath with one container, d1, as lxc-create made it."""
    if not TEMPLATE.exists():
        pytest.skip("LXC's templates are not installed (make test installs them)")
    base = Path(tempfile.mkdtemp(prefix="lxcflow-lxcp-"))
    try:
        done = subprocess.run(["lxc-create", "-P", str(base), "-n", "d1", "-t", "debian", "--",
                               "-r", "bookworm"], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_stock_lxc_debian_container_boots_confined_and_halts(lxc: Env, lxc_made: Path) -> None:
    config = (lxc_made / "d1" / "config").read_text()
    assert "lxc.include = /usr/share/lxc/config/debian.common.conf" in config
    link = next(line.split("=", 1)[1].strip() for line in config.splitlines()
                if line.startswith("lxc.net.0.link"))
    env = {**lxc.env, "LXCFLOW_PATH": str(lxc_made)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lxcflow", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    made_bridge = not Path(f"/sys/class/net/{link}").exists()
    if not made_bridge:  # never the host's own: the test's stands in
        link = f"lxft{secrets.token_hex(4)}"
        (lxc_made / "d1" / "config").write_text(
            config.replace("lxc.net.0.link = lxcbr0", f"lxc.net.0.link = {link}"))
    assert run("net", "bridge-add", link, "--ipv4", "198.18.71.1/24").returncode == 0
    try:
        assert run("ls").stdout.split() == ["d1"]
        started = run("start", "-n", "d1")
        assert started.returncode == 0, started.stderr
        # systemd answers (its socket comes a moment after the start). Its
        # boot does not end soon: the template's eth0 asks DHCP, which no
        # one on the test's bridge answers, so "starting" counts too.
        deadline = time.monotonic() + 30
        while True:
            state = run("attach", "-n", "d1", "--", "systemctl", "is-system-running")
            if state.stdout.strip() in ("starting", "running", "degraded") \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert state.stdout.strip() in ("starting", "running", "degraded"), \
            state.stdout + state.stderr
        status = run("attach", "-n", "d1", "--", "cat", "/proc/1/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Seccomp"].strip() == "2"
        bounding = int(fields["CapBnd"], 16)
        assert bounding & ((1 << 16) | (1 << 17) | (1 << 25) | (1 << 32) | (1 << 33)) == 0
        info = run("info", "-n", "d1")
        assert "AppArmor:       not enabled on this kernel (lxc.apparmor.profile = generated " \
               "has no effect)" in info.stdout
        # the device lists of common.conf hold: a loop device cannot be opened
        loop = run("attach", "-n", "d1", "--", "sh", "-c",
                   "mknod /tmp/l0 b 7 0 && head -c1 /tmp/l0; echo rc=$?; rm -f /tmp/l0")
        assert "Operation not permitted" in loop.stderr
        stopped = run("stop", "-n", "d1", "-t", "30")
        assert stopped.returncode == 0, stopped.stderr
        last = json.loads(run("info", "-n", "d1", "--json").stdout)["last_exit"]
        assert last["signal"] != 9  # halted, not killed
    finally:
        run("stop", "-n", "d1", "-k")
        run("net", "bridge-del", link)


def test_an_unprivileged_container_lxc_made_runs_as_lxc_left_it(lxc: Env) -> None:
    """lxc-create with lxc.idmap chowns its tree to the mapped ids and makes
    the container's directory the mapped root's: lxcflow mounts that tree as
    it is (not idmapped again) and leaves LXC's modes alone."""
    base = Path(tempfile.mkdtemp(prefix="lxcflow-lxcu-"))
    try:
        base.chmod(0o755)
        ids = base / "userns.conf"
        ids.write_text("lxc.net.0.type = empty\nlxc.idmap = u 0 100000 65536\n"
                       "lxc.idmap = g 0 100000 65536\n")
        done = subprocess.run(["lxc-create", "-P", str(base), "-n", "u1", "-f", str(ids),
                               "-t", "busybox"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        directory = base / "u1"
        assert 'lxc.uts.name = "u1"' in (directory / "config").read_text()  # LXC's quotes
        before = directory.stat()
        assert before.st_uid == 100000
        env = {**lxc.env, "LXCFLOW_PATH": str(base)}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "lxcflow", *args], env=env,
                                  capture_output=True, text=True, timeout=60)

        started = run("start", "-n", "u1")
        assert started.returncode == 0, started.stderr
        inside = run("attach", "-n", "u1", "--", "sh", "-c",
                     "id -u; stat -c %u /bin/busybox; hostname; grep ' / ' /proc/self/mounts")
        uid, owner, hostname, root_mount = inside.stdout.splitlines()
        assert (uid, owner, hostname) == ("0", "0", "u1")
        assert "idmapped" not in root_mount
        pid = json.loads(run("info", "-n", "u1", "--json").stdout)["pid"]
        uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
        assert uids.split()[1:] == ["100000"] * 4
        stopped = run("stop", "-n", "u1", "-t", "10")
        assert stopped.returncode == 0, stopped.stderr
        after = directory.stat()
        assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    finally:
        subprocess.run(["lxc-destroy", "-P", str(base), "-n", "u1", "-f"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
