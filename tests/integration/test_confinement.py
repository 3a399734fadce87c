"""Confinement on the real kernel: the seccomp filter every container gets
(LXC's common.seccomp unless the config names a profile), compiled once by
the shim, loaded for the init and every attach; no_new_privs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lxcflow.runtime.automount import MASKED_FILES
from tests.integration.conftest import Env, needs_root

pytestmark = needs_root

#: init_module(NULL, 0, ""): EPERM under the filter; root without one gets EFAULT
INIT_MODULE = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True);"
               " r = libc.syscall(175, None, 0, b''); print(os.strerror(ctypes.get_errno()))")
AUDIT_ARCH = {"x86_64": 0xC000003E, "i386": 0x40000003}


def status(text: str, key: str) -> str:
    return next(line.split()[1] for line in text.splitlines() if line.startswith(key + ":"))


def programs(lxc: Env) -> list[Path]:
    return sorted((lxc.paths.rundir / "seccomp").glob("*.bpf"))


def test_the_default_filter_for_the_init_and_every_attach(lxc: Env) -> None:
    lxc.ok("create", "-n", "sc", "-f", str(lxc.config("lxc.uts.name = sc\n")))
    lxc.ok("start", "-n", "sc", "--", "sleep", "1000")
    init = json.loads(lxc.ok("info", "-n", "sc", "--json"))["pid"]
    assert status(Path(f"/proc/{init}/status").read_text(), "Seccomp") == "2"
    assert lxc.ok("attach", "-n", "sc", "--", "python3", "-c", INIT_MODULE).strip() == \
        "Operation not permitted"
    attached = lxc.ok("attach", "-n", "sc", "--", "cat", "/proc/self/status")
    assert status(attached, "Seccomp") == "2"
    assert status(attached, "NoNewPrivs") == "0"
    [program] = programs(lxc)
    # [all]: this machine's arch and its compat ones, each checked in the program
    ks = {struct.unpack_from("<HBBI", program.read_bytes(), i)[3]
          for i in range(0, program.stat().st_size, 8)}
    assert set(AUDIT_ARCH.values()) <= ks
    # compiled once: a second start finds it
    before = program.stat().st_mtime_ns
    lxc.ok("stop", "-n", "sc", "-k")
    lxc.ok("start", "-n", "sc", "--", "sleep", "1000")
    assert programs(lxc) == [program]
    assert program.stat().st_mtime_ns == before


def test_a_profile_of_the_users_and_no_new_privs(lxc: Env) -> None:
    profile = lxc.base / "no-mkdir.seccomp"
    profile.write_text("2\ndenylist\n[all]\nmkdir errno 13  # no new directories\n"
                       "mkdirat errno 13\n")
    config = lxc.config(f"lxc.seccomp.profile = {profile}\nlxc.no_new_privs = 1\n")
    r = lxc.run("execute", "-n", "nm", "-f", str(config), "--", "sh", "-c",
                f"mkdir {lxc.base}/made; grep NoNewPrivs /proc/self/status")
    assert "Permission denied" in r.stderr
    assert "NoNewPrivs:\t1" in r.stdout
    assert not (lxc.base / "made").exists()


def test_a_profile_that_does_not_parse_stops_the_start_at_its_line(lxc: Env) -> None:
    profile = lxc.base / "bad.seccomp"
    profile.write_text("2\ndenylist\nmkdir explode\n")
    config = lxc.config(f"lxc.seccomp.profile = {profile}\n")
    lxc.ok("create", "-n", "bad", "-f", str(config))
    r = lxc.run("start", "-n", "bad", "--", "sleep", "1000")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"lxcflow start: container 'bad' failed to start: {profile}:3: seccomp profile: "
        "unknown action 'explode' "
        "(kill, errno N, trap, allow, notify)"]
    assert json.loads(lxc.ok("info", "-n", "bad", "--json"))["state"] == "STOPPED"
    assert list(Path("/sys/fs/cgroup").glob(f"*/{lxc.paths.cgroup_parent}/bad")) == []
    profile.write_text("2\ndenylist\nno_such_syscall errno 1\n")
    r = lxc.run("start", "-n", "bad", "--", "sleep", "1000")
    assert r.stderr.strip() == (f"lxcflow start: container 'bad' failed to start: {profile}:3: "
                                "seccomp profile: unknown "
                                "syscall no_such_syscall")


def opens(lxc: Env, config: Path, *nodes: tuple[str, str, int, int]) -> list[str]:
    """For each (name, type, major, minor): mknod it in the test's directory
    inside the container, then try to read it."""
    script = "; ".join(
        f"mknod {lxc.base}/{name} {kind} {major} {minor} || echo {name} no-mknod;"
        f" if head -c0 {lxc.base}/{name} 2>/dev/null; then echo {name} opens;"
        f" else echo {name} refused; fi; rm -f {lxc.base}/{name}"
        for name, kind, major, minor in nodes)
    r = lxc.run("execute", "-n", "dev", "-f", str(config), "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:-1]


def test_devices_but_lxcs_short_list_are_refused(lxc: Env) -> None:
    """mknod works (LXC allows it), opening what is not on the list does not."""
    default = lxc.config("lxc.uts.name = dev\n")
    assert opens(lxc, default, ("loop0", "b", 7, 0), ("kmsg", "c", 1, 11),
                 ("null", "c", 1, 3), ("urandom", "c", 1, 9)) == [
        "loop0 refused", "kmsg refused", "null opens", "urandom opens"]
    # rules of the config's own replace the default, as in LXC
    own = lxc.config("lxc.cgroup.devices.deny = a\nlxc.cgroup.devices.allow = c 1:3 rwm\n"
                     "lxc.cgroup.devices.allow = c *:* m\n", name="own")
    assert opens(lxc, own, ("null", "c", 1, 3), ("urandom", "c", 1, 9)) == [
        "null opens", "urandom refused"]


def test_a_system_container_in_its_own_root_is_confined_the_same(lxc: Env) -> None:
    """The program and the capabilities reach past pivot_root: the init and
    an attach in a busybox tree (the filter is read while the host's run
    directory is in view)."""
    lxc.ok("create", "-n", "bb", "-t", "busybox")
    lxc.ok("start", "-n", "bb")
    init = json.loads(lxc.ok("info", "-n", "bb", "--json"))["pid"]
    for text in (Path(f"/proc/{init}/status").read_text(),
                 lxc.ok("attach", "-n", "bb", "--", "cat", "/proc/self/status")):
        assert status(text, "Seccomp") == "2"
        assert int(status(text, "CapBnd"), 16) & (1 << 16) == 0  # sys_module
    # /sys read-only, as LXC's sys:mixed
    r = lxc.run("attach", "-n", "bb", "--", "sh", "-c", "touch /sys/kernel/x")
    assert "Read-only file system" in r.stderr


def test_the_hosts_kernel_state_in_proc_is_masked(lxc: Env) -> None:
    present = [f for f in MASKED_FILES if Path(f).exists()]
    if not present:
        pytest.skip("this kernel has none of the masked /proc files")
    config = lxc.config("lxc.uts.name = masked\n")
    r = lxc.run("execute", "-n", "masked", "-f", str(config), "--", "sh", "-c",
                "; ".join(f"echo {f} $(wc -c < {f})" for f in present))
    assert r.stdout.splitlines() == [f"{f} 0" for f in present], r.stderr


def test_attach_keeps_the_inits_confinement_when_the_config_changes(lxc: Env) -> None:
    """A config loosened while the container runs (and a new daemon that read
    it) never gives an attach more than the init has."""
    config = lxc.config("lxc.uts.name = kc\n")
    lxc.ok("create", "-n", "kc", "-f", str(config))
    lxc.ok("start", "-n", "kc", "--", "sleep", "1000")
    allow_all = lxc.base / "allow-all.seccomp"
    allow_all.write_text("2\ndenylist\n")
    created = lxc.paths.config_file("kc")
    created.write_text(created.read_text() + "lxc.cap.drop =\n"
                       f"lxc.seccomp.profile = {allow_all}\n")
    lxc.kill_daemon()
    attached = lxc.ok("attach", "-n", "kc", "--", "cat", "/proc/self/status")
    bounding = int(status(attached, "CapBnd"), 16)
    assert bounding & (1 << 16) == 0  # sys_module, dropped by the default
    # open_by_handle_at: common.seccomp's EPERM; allowed, a NULL handle's EFAULT
    by_handle = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True);"
                 " libc.syscall(304, -1, None, 0); print(os.strerror(ctypes.get_errno()))")
    assert lxc.ok("attach", "-n", "kc", "--", "python3", "-c", by_handle).strip() == \
        "Operation not permitted"
    lxc.ok("stop", "-n", "kc", "-k")
    # and the loosened config is what the next start gets
    lxc.ok("start", "-n", "kc", "--", "sleep", "1000")
    assert lxc.ok("attach", "-n", "kc", "--", "python3", "-c", by_handle).strip() == \
        "Bad address"
    lxc.ok("stop", "-n", "kc", "-k")
