"""The seed's ssh container, end to end: the distribution's sshd in a tiny
rootfs that shares /bin, /sbin, /lib and /usr read-only, on a test bridge,
reached by the real ssh client; frozen, thawed, killed, and nothing left.

The bridge has no uplink and the addresses come from 198.18.0.0/15: the only
traffic is between the host's end of the test bridge and the container.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

SSHD = Path("/usr/sbin/sshd")


def ssh(key: Path, command: str, timeout: float = 10) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ssh", "-i", str(key), "-F", "/dev/null", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "root@198.18.70.2", command],
        capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def make_rootfs(base: Path) -> tuple[Path, Path]:
    """The rootfs (a few KB of its own) and the client's key."""
    rootfs = base / "rootfs"
    binds = [d for d in ("bin", "sbin", "lib", "lib64", "usr") if Path("/" + d).exists()]
    for d in [*binds, "etc/ssh", "root/.ssh", "run/sshd", "tmp", "var/empty", "dev"]:
        (rootfs / d).mkdir(parents=True)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                       "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n")
    (rootfs / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(rootfs / "etc/ssh/host_key")], check=True)
    key = base / "client_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shutil.copy(f"{key}.pub", rootfs / "root/.ssh/authorized_keys")
    (rootfs / "etc/ssh/sshd_config").write_text(
        "ListenAddress 0.0.0.0:22\nHostKey /etc/ssh/host_key\nPermitRootLogin prohibit-password\n"
        "AuthorizedKeysFile /root/.ssh/authorized_keys\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nUseDNS no\n")
    (base / "fstab").write_text("".join(f"/{d} {d} none ro,bind 0 0\n" for d in binds))
    return rootfs, key


def listening(address: tuple[str, int]) -> None:
    """Wait (5 s at most) until sshd accepts connections: RUNNING means its
    command was exec'd, not that it has bound its port yet. Nothing tells
    another process when a socket starts listening, so: retry."""
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def namespaces_in_use() -> set[int]:
    """The network namespaces any process is in or holds open (an unused one is gone)."""
    found = set()
    for ns in Path("/proc").glob("[0-9]*/ns/net"):
        try:
            found.add(ns.stat().st_ino)
        except OSError:
            pass  # exited meanwhile
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("net:["):
            found.add(int(target[5:-1]))
    return found


@pytest.mark.skipif(not SSHD.exists(), reason="needs openssh-server (make test installs it)")
def test_seed_ssh_container_end_to_end(lxc: Env, bridge: str) -> None:
    rootfs, key = make_rootfs(lxc.base)
    config = lxc.config(
        "lxc.utsname = my_ssh_container\n"
        f"lxc.network.type = veth\nlxc.network.flags = up\nlxc.network.link = {bridge}\n"
        "lxc.network.ipv4 = 198.18.70.2/24\nlxc.network.name = eth0\n"
        "lxc.mount = ./fstab\nlxc.rootfs = ./rootfs\n"
        "lxc.init.cmd = /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config\n"
    )
    lxc.ok("create", "-n", "ssh", "-f", str(config))
    lxc.ok("start", "-n", "ssh")
    try:
        listening(("198.18.70.2", 22))
        r = ssh(key, "hostname")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.decode() == "my_ssh_container\n"
        r = ssh(key, "cat /proc/1/cmdline")
        # PID 1 is the listening sshd (it retitles itself "sshd: ARGV [listener] ...").
        assert r.stdout.startswith(b"sshd: /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config")

        info = json.loads(lxc.ok("info", "-n", "ssh", "--json"))
        netns = Path(f"/proc/{info['pid']}/ns/net").stat().st_ino
        assert info["ipv4"] == ["198.18.70.2/24"]
        [veth] = info["interfaces"]
        assert (veth["name"], veth["link"]) == ("eth0", bridge)
        assert veth["host_counters"]["tx_bytes"] > 0  # the host end sent our ssh traffic
        assert Path(f"/sys/class/net/{veth['host']}/master").resolve().name == bridge

        lxc.ok("freeze", "-n", "ssh")
        with pytest.raises(subprocess.TimeoutExpired):
            ssh(key, "true", timeout=2)
        lxc.ok("unfreeze", "-n", "ssh")
        assert ssh(key, "true").returncode == 0

        lxc.ok("kill", "-n", "ssh", "-s", "KILL")
        lxc.ok("wait", "-n", "ssh", "-s", "STOPPED", "-t", "10")
    finally:
        lxc.run("stop", "-n", "ssh", "-k")
    assert not Path(f"/sys/class/net/{veth['host']}").exists()
    assert netns not in namespaces_in_use()
    assert str(rootfs) not in Path("/proc/self/mountinfo").read_text()
    cgroups = [d for d in Path("/sys/fs/cgroup").glob(f"*/{lxc.paths.cgroup_parent}/*")
               if d.is_dir()]
    assert cgroups == []


@pytest.mark.skipif(not SSHD.exists(), reason="needs openssh-server (make test installs it)")
def test_the_sshd_template_makes_the_seeds_container(lxc: Env, bridge: str) -> None:
    key = lxc.base / "client_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    lxc.ok("create", "-n", "ssh", "-t", "sshd", "--", "--bridge", bridge,
           "--ipv4", "198.18.70.2/24", "--auth-key", f"{key}.pub")
    rootfs = lxc.paths.lxcpath / "ssh" / "rootfs"
    own = sum(f.stat().st_size for f in rootfs.rglob("*") if f.is_file())
    assert own < 64 * 1024, f"the rootfs holds {own} bytes of its own"
    # The fstab as lxc-sshd writes it: targets absolute, under the rootfs.
    fstab = (lxc.paths.lxcpath / "ssh" / "fstab").read_text()
    assert f"/usr {rootfs}/usr none ro,bind 0 0\n" in fstab
    lxc.ok("start", "-n", "ssh")
    try:
        listening(("198.18.70.2", 22))
        r = ssh(key, "hostname; touch /usr/x || echo read-only")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.decode() == "ssh\nread-only\n"
    finally:
        lxc.run("stop", "-n", "ssh", "-k")
    assert str(rootfs) not in Path("/proc/self/mountinfo").read_text()
