"""Unprivileged containers (lxc.idmap) on the real kernel: container root is
host uid 100000, its root file system is the host's tree as it is on disk
(an idmapped mount), its cgroups are its own to divide, and it administers
its own network; Debian's systemd boots and halts in one."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import debian_rootfs
from tests.integration.conftest import Env, cli_on_a_terminal, needs_root
from tests.integration.test_system_container import boot, cgroup_dirs, inside

pytestmark = needs_root

HOST_ROOT = 100000  # what create --unprivileged maps container root to


def status_ids(pid: int, key: str) -> list[int]:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                if x.startswith(key + ":"))
    return [int(v) for v in line.split()[1:]]


def info(lxc: Env, name: str) -> dict:
    return json.loads(lxc.ok("info", "-n", name, "--json"))


@pytest.fixture
def secret() -> Iterator[Path]:
    """A file only host root may read, in a directory anyone may pass through
    (a bind's source must be reachable by the container's root, as in LXC)."""
    share = Path(tempfile.mkdtemp(prefix="lxcflow-share-"))
    try:
        share.chmod(0o755)
        path = share / "secret"
        path.write_text("host root's only\n")
        path.chmod(0o600)
        yield path
    finally:
        shutil.rmtree(share, ignore_errors=True)


def test_an_unprivileged_container_is_nobody_to_the_host(lxc: Env, secret: Path) -> None:
    lxc.ok("create", "-n", "ub", "-t", "busybox", "--unprivileged")
    directory = lxc.paths.container_dir("ub")
    config = directory / "config"
    assert "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n" in config.read_text()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    with config.open("a") as f:
        f.write("lxc.net.0.type = veth\nlxc.net.0.flags = up\n"
                "lxc.net.0.ipv4.address = 198.18.71.2/24\n"
                f"lxc.mount.entry = {secret} secret none bind,create=file 0 0\n")
    lxc.ok("start", "-n", "ub")
    init = info(lxc, "ub")["pid"]
    assert info(lxc, "ub")["userns"] == {"host_uid": HOST_ROOT, "host_gid": HOST_ROOT,
                                          "idmap": ["u 0 100000 65536", "g 0 100000 65536"]}
    assert "User namespace: container root is host uid 100000, gid 100000" in " ".join(
        lxc.ok("info", "-n", "ub").split())
    assert status_ids(init, "Uid") == [HOST_ROOT] * 4
    assert status_ids(init, "Gid") == [HOST_ROOT] * 4
    # inside it is root, of a namespace whose map says so
    assert inside(lxc, "ub", "id", "-u") == "0"
    assert inside(lxc, "ub", "cat", "/proc/self/uid_map").split() == ["0", str(HOST_ROOT), "65536"]

    # host root's file is nobody's inside, and root there cannot read it
    assert inside(lxc, "ub", "stat", "-c", "%u", "/secret") == "65534"
    assert "Permission denied" in inside(lxc, "ub", "cat", "/secret")

    # the tree is as on disk: what root writes there is host uid 0's,
    # setuid bit included, which is why the directory above is 0700
    assert inside(lxc, "ub", "sh", "-c", "cp /bin/busybox /su && chmod 4755 /su && echo ok") == "ok"
    written = (directory / "rootfs" / "su").stat()
    assert (written.st_uid, written.st_gid) == (0, 0)
    assert written.st_mode & stat.S_ISUID

    # its own network, which it administers (sysfs shows it, not the host's)
    assert "198.18.71.2/24" in inside(lxc, "ub", "ip", "-4", "addr", "show", "eth0")
    assert inside(lxc, "ub", "sh", "-c", "ip link set lo mtu 1500 && echo ok") == "ok"
    assert inside(lxc, "ub", "ls", "/sys/class/net").split() == ["eth0", "lo"]

    # its cgroups are its root's to divide, never its limits
    dirs = cgroup_dirs(lxc, "ub")
    assert dirs
    for d in dirs:
        assert d.stat().st_uid == HOST_ROOT
        assert (d / "cgroup.procs").stat().st_uid == HOST_ROOT
    limits = [f for d in dirs for f in d.iterdir() if f.name in ("memory.max", "pids.max")]
    assert limits
    assert all(f.stat().st_uid == 0 for f in limits)

    # confined as any container besides
    attached = inside(lxc, "ub", "cat", "/proc/self/status")
    assert "Seccomp:\t2" in attached
    assert "Operation not permitted" in inside(lxc, "ub", "mknod", "/dev/loop9", "b", "7", "0")

    host_end = info(lxc, "ub")["interfaces"][0]["host"]
    lxc.ok("stop", "-n", "ub", "-t", "10")
    assert cgroup_dirs(lxc, "ub") == []
    links = subprocess.run(["ip", "-o", "link", "show", host_end], capture_output=True, text=True)
    assert links.returncode != 0, f"veth {host_end} left behind"


def test_the_rootfs_is_never_chowned(lxc: Env) -> None:
    lxc.ok("create", "-n", "uc", "-t", "busybox", "--unprivileged")
    rootfs = lxc.paths.container_dir("uc") / "rootfs"
    before = {p: (p.lstat().st_uid, p.lstat().st_gid) for p in rootfs.rglob("*")}
    lxc.ok("start", "-n", "uc")
    lxc.ok("stop", "-n", "uc", "-k")
    assert {p: (p.lstat().st_uid, p.lstat().st_gid) for p in rootfs.rglob("*")} == before
    assert set(before.values()) == {(0, 0)}


def test_unprivileged_needs_a_config_without_idmap_lines(lxc: Env) -> None:
    config = lxc.config("lxc.idmap = u 0 200000 65536\nlxc.idmap = g 0 200000 65536\n")
    r = lxc.run("create", "-n", "ud", "-f", str(config), "--unprivileged")
    assert (r.returncode, r.stderr) == (
        2, f"lxcflow create: --unprivileged: {config} has lxc.idmap lines already\n")
    assert not lxc.paths.container_dir("ud").exists()


def test_an_idmap_without_root_stops_the_start_at_its_line(lxc: Env) -> None:
    config = lxc.config("lxc.uts.name = ue\nlxc.idmap = u 0 100000 65536\n"
                        "lxc.idmap = g 1 100000 65536\n")
    r = lxc.run("execute", "-n", "ue", "-f", str(config), "--", "true")
    assert (r.returncode, r.stderr) == (
        1, f"lxcflow execute: {config}:2: lxc.idmap maps no g range onto container gid 0 "
           "(root)\n")
    assert cgroup_dirs(lxc, "ue") == []


def test_the_debian_template_unprivileged_boots_systemd_and_halts_cleanly(lxc: Env) -> None:
    """The debian template's tree, as host root made it, booting as host uid
    100000: systemd with no failed unit, its console log and a getty on
    tty1, its own cgroups in the delegated subtree, a clean halt."""
    lxc.env["LXCFLOW_TEMPLATE_CACHE"] = str(debian_rootfs.TEMPLATE_CACHE)
    made = lxc.run("create", "-n", "ud", "-t", "debian", "--unprivileged", "--",
                   "--release", "bookworm", timeout=600)
    assert made.returncode == 0, made.stderr
    rootfs = lxc.paths.container_dir("ud") / "rootfs"
    assert (rootfs / "etc" / "passwd").stat().st_uid == 0
    with (lxc.paths.container_dir("ud") / "config").open("a") as f:
        f.write("lxc.tty.max = 1\n")
    assert boot(lxc, "ud") in ("running", "degraded")
    init = info(lxc, "ud")["pid"]
    assert status_ids(init, "Uid") == [HOST_ROOT] * 4
    assert inside(lxc, "ud", "systemctl", "--failed", "--no-legend", "--plain") == ""
    # systemd divided its delegated subtree
    scopes = [d for d in cgroup_dirs(lxc, "ud") for d in d.glob("init.scope")]
    assert scopes
    assert all(s.stat().st_uid == HOST_ROOT for s in scopes)
    # and what runs in it (systemd, PID 1 inside) is host uid 100000
    pids = {int(p) for s in scopes for p in (s / "cgroup.procs").read_text().split()}
    assert init in pids
    assert {status_ids(p, "Uid")[0] for p in pids} == {HOST_ROOT}
    # a console and a tty as a privileged container has them
    assert "Welcome to" in lxc.ok("logs", "-n", "ud")
    with cli_on_a_terminal(lxc, "console", "-n", "ud", "-t", "1") as terminal:
        terminal.type(b"\r")
        terminal.until(b"login: ", timeout=20)
        terminal.type(b"\x01q")
        assert terminal.wait() == 0
    lxc.ok("stop", "-n", "ud", "-t", "60")
    assert info(lxc, "ud")["last_exit"] == {"code": None, "signal": 2}
    assert cgroup_dirs(lxc, "ud") == []
    assert (rootfs / "etc" / "passwd").stat().st_uid == 0


def test_attach_from_a_shell_is_container_root(lxc: Env) -> None:
    lxc.ok("create", "-n", "ua", "-t", "busybox", "--unprivileged")
    lxc.ok("start", "-n", "ua")
    done = subprocess.run(
        [sys.executable, "-m", "lxcflow", "attach", "-n", "ua", "--", "sh", "-c",
         "readlink /proc/self/ns/user"],
        env=lxc.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    ns = done.stdout.strip()
    init = info(lxc, "ua")["pid"]
    assert ns == os.readlink(f"/proc/{init}/ns/user")
    assert ns != os.readlink("/proc/self/ns/user")
    lxc.ok("stop", "-n", "ua", "-k")


def test_a_bind_source_root_cannot_reach_fails_the_start_and_leaves_nothing(lxc: Env) -> None:
    """Mount entries are made as container root, as in LXC: a source under a
    directory only host root may enter (the test's own 0700 base) is out of reach."""
    hidden = lxc.base / "hidden"
    hidden.mkdir()
    lxc.ok("create", "-n", "uf", "-t", "busybox", "--unprivileged")
    with (lxc.paths.container_dir("uf") / "config").open("a") as f:
        f.write("lxc.net.0.type = veth\nlxc.net.0.veth.pair = lxfu0\n"
                f"lxc.mount.entry = {hidden} mnt none bind,create=dir 0 0\n")
    r = lxc.run("start", "-n", "uf")
    assert (r.returncode, r.stderr) == (
        1, f"lxcflow start: container 'uf' failed to start: cannot mount {hidden} on mnt: "
           "Permission denied\n")
    assert info(lxc, "uf")["state"] == "STOPPED"
    assert cgroup_dirs(lxc, "uf") == []
    assert subprocess.run(["ip", "link", "show", "lxfu0"], capture_output=True).returncode != 0


def test_a_new_daemon_adopts_an_unprivileged_container(lxc: Env) -> None:
    """The init is the keeper's child once its setup process is gone, which
    is what a daemon that did not start it checks before adopting it."""
    lxc.ok("create", "-n", "uo", "-t", "busybox", "--unprivileged")
    lxc.ok("start", "-n", "uo")
    init = info(lxc, "uo")["pid"]
    lxc.kill_daemon()
    assert (info(lxc, "uo")["state"], info(lxc, "uo")["pid"]) == ("RUNNING", init)
    lxc.ok("stop", "-n", "uo", "-t", "10")
    assert info(lxc, "uo")["last_exit"] == {"code": None, "signal": 2}
    assert cgroup_dirs(lxc, "uo") == []


def test_a_tree_shifted_already_as_lxc_chowns_one_is_mounted_as_it_is(lxc: Env) -> None:
    """LXC's unprivileged containers have their tree chowned to the mapped
    ids: mapped again it would be nobody's, so it is not idmapped."""
    lxc.ok("create", "-n", "us", "-t", "busybox", "--unprivileged")
    rootfs = lxc.paths.container_dir("us") / "rootfs"
    for path in [rootfs, *rootfs.rglob("*")]:
        os.lchown(path, HOST_ROOT, HOST_ROOT)
    lxc.ok("start", "-n", "us")
    assert status_ids(info(lxc, "us")["pid"], "Uid") == [HOST_ROOT] * 4
    assert "idmapped" not in inside(lxc, "us", "grep", " / ", "/proc/self/mounts")
    assert inside(lxc, "us", "stat", "-c", "%u", "/bin/busybox") == "0"
    assert inside(lxc, "us", "sh", "-c", "echo x > /made && echo ok") == "ok"
    assert (rootfs / "made").stat().st_uid == HOST_ROOT
    lxc.ok("stop", "-n", "us", "-k")


def test_the_default_tree_is_idmapped(lxc: Env) -> None:
    lxc.ok("create", "-n", "ui", "-t", "busybox", "--unprivileged")
    lxc.ok("start", "-n", "ui")
    assert "idmapped" in inside(lxc, "ui", "grep", " / ", "/proc/self/mounts")
    lxc.ok("stop", "-n", "ui", "-k")


def test_a_rootfs_whose_file_system_cannot_be_idmapped_is_refused(lxc: Env) -> None:
    """Never a silent downgrade to the host's ids: ramfs has no idmapped
    mounts, and the start says so (on a mount of the test's own)."""
    mnt = lxc.base / "ramfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "none", str(mnt)], check=True)
    try:
        for d in ("bin", "proc", "sys", "dev"):
            (mnt / d).mkdir()
        shutil.copy2("/bin/busybox", mnt / "bin" / "busybox")
        config = lxc.config(f"lxc.uts.name = ur\nlxc.rootfs.path = {mnt}\n"
                            "lxc.net.0.type = empty\n"
                            "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n")
        r = lxc.run("execute", "-n", "ur", "-f", str(config), "--", "/bin/busybox", "true")
        assert (r.returncode, r.stderr) == (
            1, f"lxcflow execute: container 'ur' failed to start: cannot make an idmapped mount "
               f"of {mnt} (the file system must support idmapped mounts, kernel 5.12+): "
               "Invalid argument\n")
        assert cgroup_dirs(lxc, "ur") == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_hook_inside_reaches_the_rootfs_through_lxc_rootfs_mount(lxc: Env) -> None:
    """The rootfs's host path is out of container root's reach; the hooks'
    LXC_ROOTFS_MOUNT is a way in that is not."""
    lxc.ok("create", "-n", "uh", "-t", "busybox", "--unprivileged")
    directory = lxc.paths.container_dir("uh")
    with (directory / "config").open("a") as f:
        f.write('lxc.hook.mount = sh -c \'id -u > "$LXC_ROOTFS_MOUNT/hooked"\'\n')
    lxc.ok("start", "-n", "uh")
    hooked = directory / "rootfs" / "hooked"
    assert hooked.read_text() == "0\n"  # container root, writing through the idmapped mount
    assert hooked.stat().st_uid == 0
    lxc.ok("stop", "-n", "uh", "-k")


def test_an_unprivileged_container_in_the_hosts_network_gets_the_hosts_sysfs(lxc: Env) -> None:
    """No network configured: the host's, which its root does not own, so the
    kernel mounts no sysfs for it; the host's /sys is bound instead."""
    lxc.ok("create", "-n", "un", "-t", "busybox", "--unprivileged")
    config = lxc.paths.config_file("un")
    config.write_text(config.read_text().replace("lxc.net.0.type = empty\n", ""))
    r = lxc.run("execute", "-n", "un", "--", "sh", "-c",
                "readlink /proc/self/ns/net; ls /sys/class/net; touch /sys/x")
    lines = r.stdout.split()
    assert lines[0] == os.readlink("/proc/self/ns/net")
    assert "lo" in lines[1:]
    assert "Read-only file system" in r.stderr
